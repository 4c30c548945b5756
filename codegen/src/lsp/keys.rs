//! Hovers on keys: the key under the cursor, its path as the language reference spells it
//! (`auth.flows[].steps[].request.method`), and what the reference says of it.
//!
//! The meaning, type, default and allowed values are the reference's own (`reference::KEYS`,
//! read against the compiler's schema), so a hover says what `docs/language-reference.md`
//! says.

use crate::diag::{Pos, Span};
use crate::model::FieldType;
use crate::reference::{self, Key, Walk};
use crate::yaml::{Kind, Node};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// One step of the way from the top of the file to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// The value of the key with this name.
    Key(String),
    /// An item of a list.
    Item,
}

/// The key under the cursor, or the key whose scalar value is under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAt {
    /// The keys and list items leading to it, the key last.
    pub segments: Vec<Segment>,
    /// What the cursor is on: the key, or its value.
    pub span: Span,
    /// The key's value when it is a scalar (`password` in `type: password`).
    pub value: Option<String>,
}

fn contains(span: Span, pos: Pos) -> bool {
    span.start <= pos && pos < span.end
}

/// The key at `pos` in the YAML tree `root`.
pub fn key_at(root: &Node, pos: Pos) -> Option<KeyAt> {
    let mut segments = Vec::new();
    let mut node = root;
    loop {
        match &node.kind {
            Kind::Map(entries) => {
                let mut inner = None;
                for (k, v) in entries {
                    let name = k.as_str()?;
                    if contains(k.span, pos) {
                        segments.push(Segment::Key(name.to_string()));
                        return Some(KeyAt {
                            segments,
                            span: k.span,
                            value: v.as_str().map(str::to_string),
                        });
                    }
                    if contains(v.span, pos) {
                        segments.push(Segment::Key(name.to_string()));
                        inner = Some(v);
                        break;
                    }
                }
                node = inner?;
            }
            Kind::Seq(items) => {
                node = items.iter().find(|i| contains(i.span, pos))?;
                segments.push(Segment::Item);
            }
            Kind::Scalar(text, _) => {
                // A scalar value, or an item of a list of scalars: the key it belongs to.
                while segments.last() == Some(&Segment::Item) {
                    segments.pop();
                }
                return (!segments.is_empty()).then(|| KeyAt {
                    segments,
                    span: node.span,
                    value: Some(text.clone()),
                });
            }
        }
    }
}

/// The compiler's schema and the reference's walk of it, built once.
fn walk() -> &'static Walk<'static> {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    static WALK: OnceLock<Walk<'static>> = OnceLock::new();
    WALK.get_or_init(|| reference::walk(SCHEMA.get_or_init(crate::schema::schema)))
}

/// The reference's entry for the key `segments` lead to: named keys first, then a JSONPath
/// condition (`<$jsonpath>`) or any name (`<name>`), following `SAME_AS` into keys documented
/// at another path.
pub fn reference_key(segments: &[Segment]) -> Option<&'static Key<'static>> {
    let w = walk();
    let find = |p: &str| w.keys.iter().find(|k| k.path == p);
    let join = |base: &str, name: &str| {
        if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}.{name}")
        }
    };
    let mut base = String::new();
    let mut found = None;
    for s in segments {
        match s {
            Segment::Item => base.push_str("[]"),
            Segment::Key(name) => {
                let k = find(&join(&base, name))
                    .or_else(|| {
                        name.starts_with('$')
                            .then(|| find(&join(&base, "<$jsonpath>")))
                            .flatten()
                    })
                    .or_else(|| find(&join(&base, "<name>")))?;
                base = k.same_as.map_or_else(|| k.path.clone(), str::to_string);
                found = Some(k);
            }
        }
    }
    found
}

/// The hover of a key: its path, meaning, type, whether it is required, its default and
/// allowed values; for a field's `type` and `transform`, what the value given means.
pub fn hover(at: &KeyAt) -> Option<String> {
    let k = reference_key(&at.segments)?;
    let mut md = format!("**`{}`**\n\n", k.path);
    if let Some(d) = reference::doc(&k.path) {
        let _ = writeln!(md, "{}\n", d.meaning);
    }
    for (label, text) in reference::facts(k) {
        let _ = writeln!(md, "- **{label}:** {text}");
    }
    if let Some(to) = k.same_as {
        let _ = writeln!(md, "- **Keys:** the same as `{to}`");
    }
    let value = at.value.as_deref().unwrap_or_default();
    if k.path.ends_with("inputs[].type") {
        if let Some((_, t)) = FieldType::ALL.iter().find(|(n, _)| *n == value) {
            let _ = write!(md, "\n`{value}`: {}\n", reference::field_type_doc(*t));
        }
    }
    if k.path.ends_with("inputs[].transform") {
        if let Some((_, m)) = reference::TRANSFORMS.iter().find(|(n, _)| *n == value) {
            let _ = write!(md, "\n`{value}`: {m}\n");
        }
    }
    Some(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: &str, line: usize, col: usize) -> Option<KeyAt> {
        let (root, d) = crate::yaml::parse(src);
        assert!(d.is_empty(), "{d:?}");
        key_at(&root.unwrap(), Pos { line, col })
    }

    fn path(at: &KeyAt) -> String {
        reference_key(&at.segments)
            .map(|k| k.path.clone())
            .unwrap_or_default()
    }

    const SRC: &str = "auth:\n  flows:\n    - id: f\n      steps:\n        - name: S\n          request: { method: POST, path: /x }\n          outcomes:\n            - when: { \"$.ok\": true, status: 200 }\n              extract: { t: { path: \"$.t\" } }\n              prompt: [ { key: otp, label: O, type: password } ]\n";

    #[test]
    fn the_key_under_the_cursor_has_the_references_path() {
        let at = key(SRC, 6, 24).unwrap();
        assert_eq!(path(&at), "auth.flows[].steps[].request.method");
        assert_eq!(at.value.as_deref(), Some("POST"));
        // On the value: the same key.
        assert_eq!(
            path(&key(SRC, 6, 32).unwrap()),
            "auth.flows[].steps[].request.method"
        );
        assert_eq!(path(&key(SRC, 3, 7).unwrap()), "auth.flows[].id");
    }

    #[test]
    fn names_and_conditions_and_keys_documented_elsewhere_are_found() {
        assert_eq!(
            path(&key(SRC, 8, 24).unwrap()),
            "auth.flows[].steps[].outcomes[].when.<$jsonpath>"
        );
        assert_eq!(
            path(&key(SRC, 8, 38).unwrap()),
            "auth.flows[].steps[].outcomes[].when.status"
        );
        assert_eq!(
            path(&key(SRC, 9, 26).unwrap()),
            "auth.flows[].steps[].on_success.extract.<name>"
        );
        assert_eq!(
            path(&key(SRC, 9, 31).unwrap()),
            "auth.flows[].steps[].on_success.extract.<name>.path"
        );
        // `outcomes[].prompt` has the keys of `inputs`.
        let at = key(SRC, 10, 48).unwrap();
        assert_eq!(path(&at), "auth.flows[].inputs[].type");
        let md = hover(&at).unwrap();
        assert!(md.contains("`password`: A secret the user types"), "{md}");
    }

    #[test]
    fn a_message_written_as_a_mapping_has_its_own_keys() {
        let src = "auth:\n  flows:\n    - steps:\n        - outcomes:\n            - message: { from: \"$.m\", fallback: F }\n";
        let at = key(src, 5, 26).unwrap();
        assert_eq!(path(&at), "auth.flows[].steps[].outcomes[].message.from");
        assert!(hover(&at).unwrap().contains("same rules as `fail.from`"));
        assert_eq!(
            path(&key(src, 5, 40).unwrap()),
            "auth.flows[].steps[].outcomes[].message.fallback"
        );
        // The text form is the key itself.
        let src =
            "auth:\n  flows:\n    - steps:\n        - outcomes:\n            - message: Wrong\n";
        assert_eq!(
            path(&key(src, 5, 16).unwrap()),
            "auth.flows[].steps[].outcomes[].message"
        );
    }

    #[test]
    fn nothing_is_found_off_the_keys() {
        assert_eq!(key(SRC, 4, 1), None);
    }
}

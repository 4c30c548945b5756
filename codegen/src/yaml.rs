//! A YAML document as a tree of nodes that remember where they stand in the file.
//!
//! Built from `saphyr-parser` events with an explicit stack, so hostile input cannot overflow
//! ours: nesting is capped, aliases are expanded within a node budget (a "billion laughs" file is
//! an error, quickly), duplicate keys are errors, and `<<` merge keys work.

use crate::diag::{Diagnostic, Pos, Span};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle};
use std::collections::HashMap;

/// Deepest nesting of collections accepted; a provider file needs about ten.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that alias expansion may create in one file (a scalar counting one more per 8
/// bytes): enough to reuse a request or a list of fields many times over, small enough that a
/// few bytes of aliases cannot make checking and emitting slow (each node can become dozens of
/// lines of Rust).
pub const ALIAS_BUDGET: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar(String, ScalarStyle),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
    /// True for `null`, `~` and the empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, ScalarStyle::Plain) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }
    /// A short name of the node's type, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "null",
            Kind::Scalar(..) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
    /// What expanding an alias to this node costs against `ALIAS_BUDGET`: one per node, and a
    /// scalar one more per 8 bytes (a long template repeated by aliases is as costly as many
    /// nodes).
    fn count(&self) -> usize {
        match &self.kind {
            Kind::Scalar(s, _) => 1 + s.len() / 8,
            Kind::Seq(v) => 1 + v.iter().map(Node::count).sum::<usize>(),
            Kind::Map(v) => 1 + v.iter().map(|(k, v)| k.count() + v.count()).sum::<usize>(),
        }
    }
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq(Vec<Node>, Pos, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, usize),
}

/// Parses one YAML document. Returns the root node (if the document could be read at all) and
/// every problem found; a syntax error ends the parse, duplicate keys do not.
pub fn parse(source: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut expanded = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut last = Pos { line: 1, col: 1 };

    while let Some(ev) = parser.next_event() {
        let (ev, span) = match ev {
            Ok(x) => x,
            Err(e) => {
                let p = pos(e.marker());
                diags.push(tab_indentation(source, p.line).unwrap_or_else(|| {
                    Diagnostic::error(
                        "yaml-syntax",
                        Span::point(p),
                        format!("invalid YAML: {}", e.info()),
                    )
                }));
                return (None, diags);
            }
        };
        let (start, end) = (pos(&span.start), pos(&span.end));
        last = end;
        let (node, anchor) = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    diags.push(Diagnostic::error(
                        "yaml-multiple-documents",
                        Span::point(start),
                        "a provider file holds one YAML document; found a second one here",
                    ));
                    return (None, diags);
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    diags.push(Diagnostic::error(
                        "yaml-too-deep",
                        Span::point(start),
                        format!("YAML nested more than {MAX_DEPTH} levels deep"),
                    ));
                    return (None, diags);
                }
                stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new(), start, anchor)
                } else {
                    Frame::Map(Vec::new(), None, start, anchor)
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, s, anchor)) => (
                    Node {
                        kind: Kind::Seq(items),
                        span: Span::new(s, end.max(s)),
                    },
                    anchor,
                ),
                _ => unreachable_frame(&mut diags, start),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, s, anchor)) => {
                    let entries = finish_map(entries, &mut diags);
                    (
                        Node {
                            kind: Kind::Map(entries),
                            span: Span::new(s, end.max(s)),
                        },
                        anchor,
                    )
                }
                _ => unreachable_frame(&mut diags, start),
            },
            Event::Scalar(value, style, anchor, _) => (
                Node {
                    kind: Kind::Scalar(value.into_owned(), style),
                    span: Span::new(start, end),
                },
                anchor,
            ),
            Event::Alias(id) => {
                match anchors.get(&id) {
                    Some((node, count)) => {
                        expanded += count;
                        if expanded > ALIAS_BUDGET {
                            diags.push(Diagnostic::error(
                            "yaml-alias-budget",
                            Span::new(start, end),
                            format!("aliases expand to more than {ALIAS_BUDGET} nodes"),
                        ).with_help("a provider file needs few aliases; this looks like an alias bomb"));
                            return (None, diags);
                        }
                        let mut n = node.clone();
                        n.span = Span::new(start, end);
                        (n, 0)
                    }
                    None => {
                        diags.push(Diagnostic::error(
                            "yaml-syntax",
                            Span::new(start, end),
                            "alias to an unknown anchor",
                        ));
                        return (None, diags);
                    }
                }
            }
        };
        if anchor > 0 {
            let count = node.count();
            anchors.insert(anchor, (node.clone(), count));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if root.is_none() && diags.is_empty() {
        diags.push(
            Diagnostic::error(
                "empty-file",
                Span::point(Pos { line: 1, col: 1 }.min(last)),
                "the provider file is empty",
            )
            .with_help("a provider file starts with `provider:`, `defaults:` and `auth:`"),
        );
    }
    (root, diags)
}

/// A tab in the indentation of the line the scanner stopped at, or of the next one (the
/// scanner often stops at the end of the line above): reported on the tab itself, in words a
/// provider author recognises rather than the scanner's.
fn tab_indentation(source: &str, error_line: usize) -> Option<Diagnostic> {
    let (n, col) = source
        .lines()
        .enumerate()
        .skip(error_line.saturating_sub(1))
        .take(2)
        .find_map(|(n, line)| {
            let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
            line[..indent].find('\t').map(|col| (n, col))
        })?;
    Some(
        Diagnostic::error(
            "yaml-tab-indentation",
            Span::point(Pos {
                line: n + 1,
                col: col + 1,
            }),
            "YAML does not allow tabs for indentation",
        )
        .with_help("indent with spaces"),
    )
}

fn unreachable_frame(diags: &mut Vec<Diagnostic>, at: Pos) -> (Node, usize) {
    // The parser never emits unbalanced events; if it did, report rather than panic.
    diags.push(Diagnostic::error(
        "yaml-syntax",
        Span::point(at),
        "unbalanced YAML structure",
    ));
    (
        Node {
            kind: Kind::Scalar(String::new(), ScalarStyle::Plain),
            span: Span::point(at),
        },
        0,
    )
}

/// Reports duplicate and non-scalar keys, and applies `<<` merge keys (explicit keys win).
fn finish_map(entries: Vec<(Node, Node)>, diags: &mut Vec<Diagnostic>) -> Vec<(Node, Node)> {
    let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
    // Where each key of `out` stands: a lookup per key, not a scan of `out` (a mapping of many
    // thousand keys is checked in linear time).
    let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    let mut merges = Vec::new();
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            diags.push(Diagnostic::error(
                "yaml-complex-key",
                k.span,
                "mapping keys must be plain strings",
            ));
            continue;
        };
        if name == "<<" && matches!(&k.kind, Kind::Scalar(_, ScalarStyle::Plain)) {
            merges.push(v);
            continue;
        }
        if let Some(first) = index.get(name).map(|&i| &out[i].0) {
            diags.push(
                Diagnostic::error("duplicate-key", k.span, format!("duplicate key `{name}`"))
                    .with_help(format!(
                        "`{name}` is first defined at line {}; remove one of them",
                        first.span.start.line
                    )),
            );
            continue;
        }
        index.insert(name.to_string(), out.len());
        out.push((k, v));
    }
    for m in merges {
        let sources = match m.kind {
            Kind::Map(_) => vec![m],
            Kind::Seq(items) => items,
            _ => {
                diags.push(Diagnostic::error(
                    "yaml-merge",
                    m.span,
                    "a `<<` merge key takes a mapping or a list of mappings",
                ));
                continue;
            }
        };
        for src in sources {
            match src.kind {
                Kind::Map(entries) => {
                    for (k, v) in entries {
                        // Keys of a finished mapping are strings; explicit and earlier keys win.
                        let Some(name) = k.as_str() else { continue };
                        if !index.contains_key(name) {
                            index.insert(name.to_string(), out.len());
                            out.push((k, v));
                        }
                    }
                }
                _ => diags.push(Diagnostic::error(
                    "yaml-merge",
                    src.span,
                    "a `<<` merge key takes a mapping or a list of mappings",
                )),
            }
        }
    }
    out
}

/// Maps a character offset inside a scalar's value back to a position in the file.
///
/// Exact for single-line plain and quoted scalars without escapes and for literal blocks (`|`),
/// which is where bodies live; other multi-line scalars fall back to the scalar's start.
pub fn value_pos(node: &Node, offset: usize) -> Pos {
    let Kind::Scalar(value, style) = &node.kind else {
        return node.span.start;
    };
    let start = node.span.start;
    match style {
        ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
            if node.span.end.line == start.line =>
        {
            let quote = usize::from(*style != ScalarStyle::Plain);
            Pos {
                line: start.line,
                col: start.col + quote + offset,
            }
        }
        ScalarStyle::Literal => {
            let before: &str = &value[..value
                .char_indices()
                .nth(offset)
                .map_or(value.len(), |(i, _)| i)];
            let line_in_value = before.matches('\n').count();
            let col_in_line = before.rsplit('\n').next().map_or(0, |s| s.chars().count());
            // The span of a literal block starts at its first content line, at its indentation.
            Pos {
                line: start.line + line_in_value,
                col: start.col + col_in_line,
            }
        }
        _ => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Node {
        let (n, d) = parse(src);
        assert!(d.is_empty(), "{d:?}");
        n.unwrap()
    }

    #[test]
    fn spans_are_one_based() {
        let n = ok("a:\n  bb: c\n");
        let Kind::Map(e) = &n.kind else { panic!() };
        let Kind::Map(inner) = &e[0].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].0.span.start, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].0.span.end, Pos { line: 2, col: 5 });
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let n = ok("a: &x {k: v}\nb: *x\n");
        let Kind::Map(e) = &n.kind else { panic!() };
        assert_eq!(e[0].1.kind, e[1].1.kind);
    }

    #[test]
    fn merge_keys_work_and_explicit_keys_win() {
        let n = ok("base: &b {k: 1, m: 2}\nx:\n  <<: *b\n  k: 3\n");
        let Kind::Map(e) = &n.kind else { panic!() };
        let Kind::Map(x) = &e[1].1.kind else { panic!() };
        let kv: Vec<_> = x
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        assert_eq!(kv, vec![("k", "3"), ("m", "2")]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (_, d) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "duplicate-key");
        assert_eq!(d[0].span.start.line, 3);
    }

    #[test]
    fn a_tab_in_the_indentation_is_reported_on_its_line() {
        for (src, line, col) in [
            ("provider:\n  id: t\n\tname: T\n", 3, 1),
            ("a:\n  b: 1\n  \tc: 2\n", 3, 3),
            ("provider:\n\tid: t\n", 2, 1),
        ] {
            let (_, d) = parse(src);
            assert_eq!(d.len(), 1, "{src:?}: {d:?}");
            assert_eq!(d[0].code, "yaml-tab-indentation", "{src:?}");
            assert_eq!(d[0].message, "YAML does not allow tabs for indentation");
            assert_eq!(
                (d[0].span.start.line, d[0].span.start.col),
                (line, col),
                "{src:?}"
            );
        }
    }

    #[test]
    fn literal_block_positions_map_to_file() {
        let src = "body: |\n  {\n    \"a\": 1\n  }\n";
        let n = ok(src);
        let Kind::Map(e) = &n.kind else { panic!() };
        // offset of `"a"` in the value "{\n  \"a\": 1\n}\n" is 4
        assert_eq!(value_pos(&e[0].1, 4), Pos { line: 3, col: 5 });
    }
}

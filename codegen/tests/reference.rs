//! `docs/language-reference.md` is generated from the compiler's JSON Schema and the prose in
//! `codegen/src/reference.rs`, and kept in sync like the schema itself: every key of the
//! language is documented, no entry documents a key that is gone, every example is valid, and
//! the checked-in page is what `render()` gives.
//! `UPDATE_REFERENCE=1 cargo test -p otvi-codegen --test reference` rewrites the page.

use otvi_codegen::reference::{self, KeyName, FULL_EXAMPLE, KEYS, SAME_AS, TRANSFORMS};
use otvi_codegen::schema::schema;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

const REGENERATE: &str = "UPDATE_REFERENCE=1 cargo test -p otvi-codegen --test reference";

#[test]
fn the_checked_in_reference_is_the_rendered_one() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/language-reference.md");
    let rendered = reference::render();
    if std::env::var_os("UPDATE_REFERENCE").is_some() {
        std::fs::write(&page, &rendered).unwrap();
    }
    let on_disk = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        rendered == on_disk,
        "{} is not what the compiler's model renders; run `{REGENERATE}` and review the diff",
        page.display()
    );
}

#[test]
fn every_key_of_the_language_has_a_description_and_an_example() {
    let missing = reference::undocumented(&schema());
    assert!(
        missing.is_empty(),
        "keys of the language with no entry in KEYS (codegen/src/reference.rs): {missing:#?}\n\
         add a meaning and an example for each, then run `{REGENERATE}`"
    );
    for d in KEYS {
        assert!(!d.meaning.trim().is_empty(), "{}: empty meaning", d.path);
        assert!(!d.example.trim().is_empty(), "{}: empty example", d.path);
    }
}

#[test]
fn no_entry_documents_a_key_the_language_does_not_have() {
    let stale = reference::stale(&schema());
    assert!(
        stale.is_empty(),
        "entries of KEYS / SAME_AS (codegen/src/reference.rs) naming no key of the language: \
         {stale:#?}\nremove or rename them, then run `{REGENERATE}`"
    );
}

#[test]
fn keys_documented_once_for_two_places_have_the_same_schema() {
    let s = schema();
    let w = reference::walk(&s);
    let at = |p: &str| w.keys.iter().find(|k| k.path == p).map(|k| k.schema);
    for (from, to) in SAME_AS {
        let (Some(a), Some(b)) = (at(from), at(to)) else {
            continue; // reported by no_entry_documents_a_key_the_language_does_not_have
        };
        assert_eq!(
            a, b,
            "SAME_AS says `{from}` has the keys of `{to}`, but their schemas differ"
        );
        assert!(
            !SAME_AS.iter().any(|(f, _)| f == to),
            "`{to}` is itself documented elsewhere; point `{from}` at where its keys are"
        );
    }
}

fn as_json(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"))
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let v = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

#[test]
fn every_example_is_yaml_that_its_key_accepts() {
    let s = schema();
    let w = reference::walk(&s);
    for d in KEYS {
        let example = as_json(d.example);
        let Value::Object(entries) = &example else {
            panic!(
                "{}: the example is not a YAML mapping:\n{}",
                d.path, d.example
            );
        };
        let Some(key) = w.keys.iter().find(|k| k.path == d.path) else {
            continue; // a stale entry, reported by its own test
        };
        let problems = match &key.name {
            KeyName::Fixed(name) => match entries.get(name) {
                Some(value) => errors(key.schema, value),
                None => vec![format!("the example has no `{name}` key")],
            },
            // Entries of a mapping of names or of conditions: valid as that mapping.
            KeyName::Pattern(_) | KeyName::Any => errors(key.parent_schema, &example),
        };
        assert!(
            problems.is_empty(),
            "{}: the example does not fit the key: {problems:?}\n{}",
            d.path,
            d.example
        );
    }
}

#[test]
fn the_complete_example_compiles_without_a_diagnostic_and_fits_the_schema() {
    let checked = otvi_codegen::check_one("example.yaml", FULL_EXAMPLE.as_bytes());
    let shown: Vec<String> = checked
        .report
        .diagnostics
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(shown.is_empty(), "{shown:#?}");
    assert!(checked.provider.is_some());
    let problems = errors(&schema(), &as_json(FULL_EXAMPLE));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn every_placeholder_the_compiler_knows_is_documented_and_parses() {
    let documented: Vec<String> = reference::placeholders()
        .iter()
        .map(|v| v.display())
        .collect();
    for (v, text) in reference::placeholders().iter().zip(&documented) {
        let yaml = format!("v: \"{text}\"");
        let (root, diags) = otvi_codegen::yaml::parse(&yaml);
        assert!(diags.is_empty(), "{diags:?}");
        let root = root.unwrap();
        let otvi_codegen::yaml::Kind::Map(entries) = &root.kind else {
            panic!("not a mapping")
        };
        let node = &entries[0].1;
        let mut diags = Vec::new();
        let t = otvi_codegen::template::parse(node.as_str().unwrap(), node, &mut diags);
        assert!(diags.is_empty(), "{text}: {diags:?}");
        let vars: Vec<_> = t.vars().map(|(v, _)| v.clone()).collect();
        assert_eq!(vars, vec![v.clone()], "{text}");
    }
    // The compiler's own list, as its "unknown placeholder" help gives it.
    let yaml = "v: \"{{zzzzzzzz}}\"";
    let (root, _) = otvi_codegen::yaml::parse(yaml);
    let root = root.unwrap();
    let otvi_codegen::yaml::Kind::Map(entries) = &root.kind else {
        panic!("not a mapping")
    };
    let node = &entries[0].1;
    let mut diags = Vec::new();
    otvi_codegen::template::parse(node.as_str().unwrap(), node, &mut diags);
    let help = diags[0].help.clone().unwrap_or_default();
    let list = help
        .strip_prefix("placeholders are ")
        .unwrap_or_else(|| panic!("unexpected help: {help}"));
    let known: HashSet<String> = list.split(", ").map(|n| format!("{{{{{n}}}}}")).collect();
    let documented: HashSet<String> = documented.into_iter().collect();
    assert_eq!(
        known, documented,
        "reference::placeholders() and the compiler's placeholders differ"
    );
}

#[test]
fn every_transform_is_documented() {
    let mut allowed = reference::transform_names(&schema());
    let mut documented: Vec<String> = TRANSFORMS.iter().map(|(n, _)| n.to_string()).collect();
    allowed.sort();
    documented.sort();
    assert!(
        !allowed.is_empty(),
        "no `transform` key found in the schema"
    );
    assert_eq!(
        allowed, documented,
        "TRANSFORMS (codegen/src/reference.rs) and the schema's transforms differ"
    );
}

#[test]
fn anchors_are_unique() {
    let s = schema();
    let w = reference::walk(&s);
    let mut seen = HashSet::new();
    for k in &w.keys {
        assert!(
            seen.insert(reference::anchor(&k.path)),
            "two keys share the anchor of `{}`",
            k.path
        );
    }
}

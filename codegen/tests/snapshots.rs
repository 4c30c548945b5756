//! Snapshot of the code emitted for `tests/fixtures/fixture.yaml`, which uses every encoding of
//! the core language. The root crate compiles the snapshot and runs it against a mock provider.
//! `UPDATE_SNAPSHOTS=1 cargo test -p otvi-codegen --test snapshots` rewrites it after a
//! deliberate change to the emitter; review the diff.

use std::path::Path;

#[test]
fn fixture_emission_matches_the_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = std::fs::read(root.join("tests/fixtures/fixture.yaml")).unwrap();
    let checked = otvi_codegen::check_one("tests/fixtures/fixture.yaml", &yaml);
    assert!(
        checked.report.diagnostics.is_empty(),
        "{:?}",
        checked.report.diagnostics
    );
    let p = checked.provider.unwrap();
    let code = otvi_codegen::emit::provider_module(&p, "tests/fixtures/fixture.yaml");
    let snap = root.join("tests/fixtures/fixture.rs");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, &code).unwrap();
    }
    let expected = std::fs::read_to_string(&snap).unwrap_or_default();
    assert!(
        code == expected,
        "emitted code differs from {}; rerun with UPDATE_SNAPSHOTS=1 and review the diff",
        snap.display()
    );
}

/// Stored values are read through the `keys` constants into each function's `Stored` struct:
/// no lookup by a string in generated code, and every sensitive value (what `explain` marks)
/// typed `Secret`. Over the shipped providers and the fixture.
#[test]
fn stored_values_are_typed_and_named_by_constants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<_> = std::fs::read_dir(root.join("providers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.push(root.join("tests/fixtures/fixture.yaml"));
    let mut structs = 0;
    for file in files {
        let name = file.display().to_string();
        let checked = otvi_codegen::check_one(&name, &std::fs::read(&file).unwrap());
        let p = checked.provider.unwrap();
        let code = otvi_codegen::emit::provider_module(&p, &name);
        assert!(!code.contains("cx.stored(\""), "{name}: a lookup by string");
        assert!(
            !code.contains("field_type: \""),
            "{name}: a field type as a string"
        );
        let sensitivity = otvi_codegen::check::sensitive::Sensitivity::of(&p);
        for line in code.lines() {
            // `name: cx.stored(keys::NAME)?` or `name: Secret::new(cx.stored(keys::NAME)?)`.
            let Some((field, read)) = line.trim().split_once(": ") else {
                continue;
            };
            let Some(konst) = read.split("cx.stored(keys::").nth(1) else {
                continue;
            };
            let konst = konst.split(')').next().unwrap();
            let key = p
                .flows
                .iter()
                .flat_map(|f| &f.steps)
                .flat_map(|s| s.extracts())
                .map(|e| e.key.v.as_str())
                .find(|k| k.to_uppercase() == konst)
                .unwrap_or_else(|| panic!("{name}: no stored value for keys::{konst}"));
            structs += 1;
            assert_eq!(
                read.starts_with("Secret::new("),
                sensitivity.stored(key).is_some(),
                "{name}: `{field}` reads `{key}`"
            );
        }
    }
    assert!(structs > 10, "only {structs} stored reads found");
}

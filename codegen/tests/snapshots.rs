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

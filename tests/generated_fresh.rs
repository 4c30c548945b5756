//! `generated/src` is exactly what the codegen produces from `providers/`: no drift.

use std::path::Path;

#[test]
fn generated_code_matches_the_provider_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = otvi_codegen::collect_files(&[root.join("providers")]).unwrap();
    let outcome = otvi_codegen::check_paths_from(&files, root);
    let providers = outcome
        .providers()
        .expect("the shipped providers check clean");
    let emitted = otvi_codegen::emit::emit_all(&providers);
    let dir = root.join("generated/src");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    on_disk.sort();
    let mut names: Vec<String> = emitted.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        on_disk, names,
        "generated/src has other files than the codegen emits"
    );
    for (name, code) in emitted {
        let current = std::fs::read_to_string(dir.join(&name)).unwrap();
        assert!(
            current == code,
            "generated/src/{name} is stale: run `cargo build` and commit generated/"
        );
    }
}

//! Compiles the provider set into `src/`: `$OTVI_PROVIDERS_DIR`, default the workspace's
//! `providers/`. A broken provider file fails the build with the same diagnostics
//! `otvi-codegen check` prints; files are rewritten only where their content changed.

use otvi_codegen::diag::Format;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().map(PathBuf::from).unwrap_or_default();
    let dir = std::env::var_os("OTVI_PROVIDERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("providers"));
    println!("cargo::rerun-if-env-changed=OTVI_PROVIDERS_DIR");
    println!("cargo::rerun-if-changed={}", dir.display());
    let files = match otvi_codegen::collect_files(std::slice::from_ref(&dir)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: cannot read provider directory {}: {e}",
                dir.display()
            );
            std::process::exit(1);
        }
    };
    for f in &files {
        println!("cargo::rerun-if-changed={}", f.display());
    }
    match otvi_codegen::generate(&files, &root, &manifest.join("src")) {
        Ok((outcome, _)) => {
            for f in &outcome.files {
                eprint!("{}", f.report.render(Format::Human));
                for d in f.report.diagnostics.iter().filter(|d| !d.is_error()) {
                    println!(
                        "cargo::warning={}:{}:{}: {}",
                        f.report.path, d.span.start.line, d.span.start.col, d.message
                    );
                }
            }
            if outcome.errors() > 0 {
                eprintln!(
                    "error: {} error(s) in provider files; run `cargo run -p otvi-codegen -- check {}`",
                    outcome.errors(),
                    dir.display()
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("error: cannot write generated code: {e}");
            std::process::exit(1);
        }
    }
}

//! Compiles the provider set into `src/`: `$OTVI_PROVIDERS_DIR`, default the workspace's
//! `providers/`. A broken provider file fails the build with the same diagnostics
//! `otvi-codegen check` prints; files are rewritten only where their content changed.
//!
//! `src/` is this script's output and also what rustc compiles, so the script reruns whenever
//! anything in `src/` changes too: a `git checkout generated/` or an rsync that brings back
//! another provider set's code is overwritten with what `$OTVI_PROVIDERS_DIR` says before the
//! crate is compiled, and a binary never holds code from another provider set than the one the
//! build was given.

use otvi_codegen::diag::Format;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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
    let out = manifest.join("src");
    // Every file in `src/`, and files added to or removed from it.
    println!("cargo::rerun-if-changed={}", out.display());
    match otvi_codegen::generate(&files, &root, &out) {
        Ok((outcome, changed)) => {
            if changed {
                keep_fresh(&out);
            }
            // Sample files (`file:` samples) are checked too, wherever they are.
            for read in outcome.files.iter().flat_map(|f| &f.reads) {
                println!("cargo::rerun-if-changed={}", read.display());
            }
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

/// Dates what this run wrote in `out` (and `out` itself) back to the run's start.
///
/// Cargo reruns a build script when a `rerun-if-changed` path is newer than the script's last
/// start, which the files the script writes always are: without this, the next build would
/// rerun it once more (to write nothing) and recompile the crate. The start is the modification
/// time of the `invoked.timestamp` file cargo writes next to `OUT_DIR` before running a build
/// script; when it is not there (another cargo), nothing is changed and the cost is that one
/// extra run. Only files newer than the start are touched; rustc still sees the new content,
/// since a rerun build script recompiles its crate whatever the dates.
fn keep_fresh(out: &Path) {
    let Some(started) = std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .and_then(|d| d.parent().map(|p| p.join("invoked.timestamp")))
        .and_then(|t| std::fs::metadata(t).ok())
        .and_then(|m| m.modified().ok())
    else {
        return;
    };
    let entries = std::fs::read_dir(out).into_iter().flatten().flatten();
    for path in entries
        .map(|e| e.path())
        .chain(std::iter::once(out.to_path_buf()))
    {
        let modified = std::fs::metadata(&path).and_then(|m| m.modified());
        if modified.is_ok_and(|m| m > started) {
            set_modified(&path, started);
        }
    }
}

fn set_modified(path: &Path, time: SystemTime) {
    // A file opens for writing (Windows needs that to set its dates); a directory opens for
    // reading on Unix. Where neither works the cost is one extra rerun of this script.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path));
    if let Ok(f) = file {
        let _ = f.set_modified(time);
    }
}

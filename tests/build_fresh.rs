//! A build can't go stale: `generated/src` is rewritten from `$OTVI_PROVIDERS_DIR` whenever it
//! differs, even when something outside cargo (a `git checkout generated/`, an rsync) put
//! another provider set's code there after the last build.
//!
//! The test works on a copy of the workspace in a temporary directory, as a new user would:
//! build with a custom `OTVI_PROVIDERS_DIR` (the shipped providers less one), put the committed
//! `generated/src` back, build again, and ask the rebuilt `otvi providers` what it holds.
//!
//! Speed: the copy's intermediate artifacts go to the build directory of the `cargo test` that
//! runs this test (`build.build-dir`), so the registry crates compiled for the workspace are
//! reused and only the workspace's own crates compile; its final artifacts (the `otvi` binary)
//! go to a target directory of its own (`<build-dir>/otvi-build-fresh/target`), so the
//! workspace's `target/debug/otvi` is never replaced by the copy's. Cargo runs `--offline`:
//! `cargo test` fetched every crate the copy needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The provider left out of the custom set.
const REMOVED: &str = "opentv";

#[test]
fn a_restored_generated_dir_is_regenerated_from_the_providers_the_build_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A fixed place in the build directory when there is one, so that each run compiles the
    // copy under the same path (cargo names artifacts by path): runs reuse, not pile up,
    // their artifacts. Otherwise a temporary directory, and a build from scratch.
    let build_dir = build_dir();
    let tmp = tempfile::tempdir().unwrap();
    let scratch = match &build_dir {
        Some(d) => d.join("otvi-build-fresh"),
        None => tmp.path().to_path_buf(),
    };
    let ws = scratch.join("ws");
    let custom = scratch.join("providers");
    for d in [&ws, &custom] {
        if d.exists() {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    copy_workspace(root, &ws);

    // The custom provider set: the shipped files less one.
    std::fs::create_dir_all(&custom).unwrap();
    for entry in std::fs::read_dir(root.join("providers")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_stem().and_then(|s| s.to_str()) != Some(REMOVED) {
            // Directories too: `samples/` holds the response samples the files name.
            copy_all(&path, &custom.join(path.file_name().unwrap()));
        }
    }
    let shipped: BTreeSet<String> = otvi_generated::PROVIDERS
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert!(shipped.contains(REMOVED), "{shipped:?}");
    let mut expected = shipped.clone();
    expected.remove(REMOVED);

    // The committed generated code, to put back later as `git checkout generated/` would.
    let committed: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(ws.join("generated/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let content = std::fs::read(&p).unwrap();
            (p, content)
        })
        .collect();

    let cargo = Cargo {
        ws: ws.clone(),
        providers_dir: custom.clone(),
        target_dir: scratch.join("target"),
        release: build_dir.as_deref().is_some_and(|d| {
            std::env::current_exe()
                .unwrap()
                .starts_with(d.join("release"))
        }),
        build_dir,
    };
    let first = cargo.providers();
    assert_eq!(first, expected, "the first build with OTVI_PROVIDERS_DIR");
    assert!(!ws.join(format!("generated/src/{REMOVED}.rs")).exists());

    // Let the restored files' dates differ from the build's, as they would after a pause.
    std::thread::sleep(std::time::Duration::from_millis(50));
    for (path, content) in &committed {
        std::fs::write(path, content).unwrap();
    }
    assert!(ws.join(format!("generated/src/{REMOVED}.rs")).exists());

    let rebuilt = cargo.providers();
    assert_eq!(
        rebuilt, expected,
        "the rebuilt binary holds another provider set than OTVI_PROVIDERS_DIR names"
    );
    assert!(
        !ws.join(format!("generated/src/{REMOVED}.rs")).exists(),
        "the restored generated code was not rewritten"
    );

    // Steady state: nothing changed, so neither the build script nor rustc runs again.
    let again = cargo.run(&["build", "-v", "--bin", "otvi"], &[]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains("Fresh otvi-generated") && !log.contains("Compiling"),
        "a build with nothing changed did work:\n{log}"
    );
}

/// The build directory of the `cargo test` running this test: this binary is
/// `<build-dir>/<profile>/deps/build_fresh-<hash>`.
fn build_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent().filter(|d| d.ends_with("deps"))?;
    Some(deps.parent()?.parent()?.to_path_buf())
}

/// Copies the workspace's files (tracked, and new ones not ignored; `target/` is not copied).
/// Copies the file or directory `from` to `to`.
fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            copy_all(&path, &to.join(path.file_name().unwrap()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

fn copy_workspace(from: &Path, to: &Path) {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(from)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let src = from.join(name);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let dst = to.join(name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
    }
}

struct Cargo {
    ws: PathBuf,
    providers_dir: PathBuf,
    target_dir: PathBuf,
    /// Where the copy's intermediate artifacts go: the running `cargo test`'s build directory.
    build_dir: Option<PathBuf>,
    release: bool,
}

impl Cargo {
    /// `cargo <args> --offline [--release] [-- <program>]` in the copy.
    fn run(&self, args: &[&str], program: &[&str]) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(args)
            .arg("--offline")
            .current_dir(&self.ws)
            .env("OTVI_PROVIDERS_DIR", &self.providers_dir)
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("CARGO_TERM_COLOR", "never")
            .env_remove("CARGO_BUILD_TARGET_DIR");
        if self.release {
            c.arg("--release");
        }
        if !program.is_empty() {
            c.arg("--").args(program);
        }
        match &self.build_dir {
            Some(d) => c.env("CARGO_BUILD_BUILD_DIR", d),
            None => c.env_remove("CARGO_BUILD_BUILD_DIR"),
        };
        let out = c.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The providers `otvi providers` of the copy lists, built as `cargo run` builds it.
    fn providers(&self) -> BTreeSet<String> {
        let out = self.run(&["run", "-q", "--bin", "otvi"], &["providers"]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

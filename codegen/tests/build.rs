//! `otvi_codegen::Build`, as a build script runs it: modules written only where it is told
//! (`OUT_DIR/otvi`), every file read declared to cargo, a broken file or a stale audit copy an
//! error that says what to run.

use otvi_codegen::{Build, BuildError};
use std::path::Path;

const GOOD: &str = r#"
provider: { id: tv, name: TV }
defaults: { base_url: "https://tv.example" }
auth:
  flows:
    - id: login
      name: Login
      inputs: [ { key: user, label: User } ]
      steps:
        - name: Sign in
          request: { method: POST, path: /login, body: '{"u": "{{input.user}}"}' }
          on_success:
            extract: { token: "$.token" }
            samples: [ { status: 200, file: samples/ok.json } ]
"#;

fn crate_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("providers/samples")).unwrap();
    std::fs::write(dir.path().join("providers/tv.yaml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("providers/samples/ok.json"),
        r#"{"token": "t"}"#,
    )
    .unwrap();
    dir
}

fn build(dir: &Path) -> Build {
    Build::new()
        .providers(dir.join("providers"))
        .out_dir(dir.join("out"))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn modules_and_their_root_are_written_where_the_build_says() {
    let dir = crate_dir();
    build(dir.path()).compile().unwrap();
    assert_eq!(files(&dir.path().join("out")), ["providers.rs", "tv.rs"]);
    let root = std::fs::read_to_string(dir.path().join("out/providers.rs")).unwrap();
    assert!(root.contains("include!(\"tv.rs\")"), "{root}");
    assert!(root.contains("pub static PROVIDERS"), "{root}");
    // Nothing else in the crate's directory was written.
    assert_eq!(files(dir.path()), ["out", "providers"]);
}

#[test]
fn an_audit_copy_written_by_emit_passes_and_a_changed_one_fails_naming_the_command() {
    let dir = crate_dir();
    let copy = dir.path().join("generated");
    // What `otvi-codegen emit` writes: the same emission.
    build(dir.path()).out_dir(&copy).compile().unwrap();
    build(dir.path()).audit_copy(&copy).compile().unwrap();

    std::fs::write(
        copy.join("tv.rs"),
        std::fs::read_to_string(copy.join("tv.rs")).unwrap() + "// edited\n",
    )
    .unwrap();
    std::fs::write(copy.join("old.rs"), "").unwrap();
    std::fs::remove_file(copy.join("providers.rs")).unwrap();
    let err = build(dir.path()).audit_copy(&copy).compile().unwrap_err();
    let BuildError::StaleAuditCopy { files, command, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        files,
        &[
            "old.rs is not generated",
            "providers.rs is missing",
            "tv.rs differs"
        ]
    );
    assert!(command.starts_with("otvi-codegen emit "), "{command}");
    assert!(
        command.ends_with(&format!("--out {}", copy.display())),
        "{command}"
    );
    assert!(
        err.to_string()
            .contains("refresh it with `otvi-codegen emit"),
        "{err}"
    );
}

#[test]
fn line_endings_do_not_make_a_copy_stale() {
    let dir = crate_dir();
    let copy = dir.path().join("generated");
    build(dir.path()).out_dir(&copy).compile().unwrap();
    let crlf = std::fs::read_to_string(copy.join("tv.rs"))
        .unwrap()
        .replace('\n', "\r\n");
    std::fs::write(copy.join("tv.rs"), crlf).unwrap();
    build(dir.path()).audit_copy(&copy).compile().unwrap();
}

#[test]
fn a_broken_file_is_an_error_that_names_the_check_command_and_writes_nothing() {
    let dir = crate_dir();
    std::fs::write(
        dir.path().join("providers/tv.yaml"),
        GOOD.replace("on_success", "on_sucess"),
    )
    .unwrap();
    let err = build(dir.path()).compile().unwrap_err();
    let BuildError::Invalid { errors, command } = &err else {
        panic!("{err}");
    };
    assert!(*errors >= 1);
    assert!(command.starts_with("otvi-codegen check "), "{command}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn warnings_fail_only_when_denied() {
    let dir = crate_dir();
    // A `channels:` section is ignored, with a warning.
    let ignored = format!("{GOOD}channels: {{ list: [] }}\n");
    std::fs::write(dir.path().join("providers/tv.yaml"), ignored).unwrap();
    build(dir.path()).compile().unwrap();
    let err = build(dir.path()).deny_warnings(true).compile().unwrap_err();
    assert!(matches!(err, BuildError::Invalid { .. }), "{err}");
}

#[test]
fn no_provider_files_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("providers")).unwrap();
    let err = build(dir.path()).compile().unwrap_err();
    assert!(err.to_string().contains("no provider files"), "{err}");
    let err = Build::new().compile().unwrap_err();
    assert!(err.to_string().contains(".providers("), "{err}");
}

#[test]
fn every_file_read_is_declared_to_cargo() {
    // The test binary runs `compile` in a child process to read what it prints: itself, with
    // an argument saying so.
    if let Ok(dir) = std::env::var("OTVI_BUILD_TEST_DIR") {
        build(Path::new(&dir)).compile().unwrap();
        return;
    }
    let dir = crate_dir();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_file_read_is_declared_to_cargo",
            "--nocapture",
        ])
        .env("OTVI_BUILD_TEST_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p = dir.path().join("providers");
    for path in [p.clone(), p.join("tv.yaml"), p.join("samples/ok.json")] {
        let line = format!("cargo::rerun-if-changed={}", path.display());
        assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
    }
}

#[test]
fn in_out_dir_only_the_modules_of_changed_files_are_emitted_again() {
    // `compile` writes to OUT_DIR only in a build script's environment: the test binary runs
    // it in a child process (itself, with an argument saying so) with OUT_DIR set.
    if let Ok(dir) = std::env::var("OTVI_BUILD_CACHE_TEST_DIR") {
        Build::new()
            .providers(Path::new(&dir).join("providers"))
            .compile()
            .unwrap();
        return;
    }
    let dir = crate_dir();
    let other = GOOD.replace("id: tv, name: TV", "id: radio, name: Radio");
    std::fs::write(dir.path().join("providers/radio.yaml"), &other).unwrap();
    let out_dir = dir.path().join("target-out");
    let compile = || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "in_out_dir_only_the_modules_of_changed_files_are_emitted_again",
                "--nocapture",
            ])
            .env("OTVI_BUILD_CACHE_TEST_DIR", dir.path())
            .env("OUT_DIR", &out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let module = |name: &str| std::fs::read_to_string(out_dir.join("otvi").join(name)).unwrap();
    let fresh = || {
        let copy = dir.path().join("fresh");
        build(dir.path()).out_dir(&copy).compile().unwrap();
        ["providers.rs", "radio.rs", "tv.rs"]
            .map(|f| std::fs::read_to_string(copy.join(f)).unwrap())
    };

    compile();
    let list = std::fs::read_to_string(out_dir.join("otvi-emitted.txt")).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert_eq!(
        [module("providers.rs"), module("radio.rs"), module("tv.rs")],
        fresh()
    );

    // A module the list says is up to date is read back, not emitted: a mark left in it
    // stays. The changed file's module is emitted again.
    let marked = module("radio.rs") + "// read back\n";
    std::fs::write(out_dir.join("otvi/radio.rs"), &marked).unwrap();
    std::fs::write(
        dir.path().join("providers/tv.yaml"),
        GOOD.replace("/login", "/signin"),
    )
    .unwrap();
    compile();
    assert_eq!(module("radio.rs"), marked);
    assert!(module("tv.rs").contains("\"/signin\""));
    assert_eq!(module("tv.rs"), fresh()[2]);

    // Without the list (a build that stopped half-way), everything is emitted again.
    std::fs::remove_file(out_dir.join("otvi-emitted.txt")).unwrap();
    compile();
    assert_eq!(
        [module("providers.rs"), module("radio.rs"), module("tv.rs")],
        fresh()
    );
}

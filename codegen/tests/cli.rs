//! The `otvi-codegen` command line as CI uses it: exit codes and the three formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> (i32, String) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_otvi-codegen"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
    )
}

#[test]
fn check_passes_on_the_shipped_providers() {
    let (code, out) = run(&["check", "--deny-warnings", "providers/"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_fails_with_rustc_style_diagnostics() {
    let (code, out) = run(&["check", "tests/invalid/unknown-key-on-sucess.yaml"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("error: unknown key `on_sucess` in a step\n"),
        "{out}"
    );
    assert!(
        out.contains("--> tests/invalid/unknown-key-on-sucess.yaml:15:11\n"),
        "{out}"
    );
    assert!(out.contains("15 |           on_sucess:\n"), "{out}");
    assert!(out.contains("   |           ^^^^^^^^^\n"), "{out}");
    assert!(out.contains("help: did you mean `on_success`?"), "{out}");
}

#[test]
fn check_reports_every_file_in_one_run() {
    let (code, out) = run(&["check", "tests/invalid/"]);
    assert_eq!(code, 1);
    // Every provider file of the corpus but those only `--require-samples` finds fault with.
    let files = std::fs::read_dir(root().join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .contains("# check: --require-samples")
        })
        .count();
    let reported = out
        .lines()
        .filter(|l| l.contains("--> tests/invalid/"))
        .map(|l| l.trim().split(':').next().unwrap())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(reported.len(), files, "{out}");
}

#[test]
fn json_format_prints_one_object_per_diagnostic() {
    let (code, out) = run(&[
        "check",
        "--format",
        "json",
        "tests/invalid/undefined-input.yaml",
    ]);
    assert_eq!(code, 1);
    let diags: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(diags.len(), 2);
    let e = diags.iter().find(|d| d["severity"] == "error").unwrap();
    assert_eq!(e["file"], "tests/invalid/undefined-input.yaml");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(14), Some(31))
    );
    assert_eq!(e["code"], "undefined-input");
    assert_eq!(e["help"], "did you mean `{{input.email}}`?");
    assert!(e["end"]["col"].as_u64().unwrap() > 31);
}

#[test]
fn github_format_prints_workflow_annotations() {
    let (code, out) = run(&[
        "check",
        "--format",
        "github",
        "tests/invalid/auth-refresh.yaml",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("::error file=tests/invalid/auth-refresh.yaml,line=17,col=3,"),
        "{out}"
    );
}

#[test]
fn warnings_pass_unless_denied() {
    let file = "tests/invalid/warning-unused-input.yaml";
    let (code, out) = run(&["check", file]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: input `nickname` is not used"),
        "{out}"
    );
    let (code, out) = run(&["check", "--deny-warnings", file]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: input `nickname` is not used"), "{out}");
}

#[test]
fn schema_prints_a_json_schema() {
    let (code, out) = run(&["schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["additionalProperties"], false);
    assert!(v["properties"]["auth"]["properties"]["flows"].is_object());
}

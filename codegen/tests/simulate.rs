//! `otvi-codegen simulate`: a provider file's flows run through the Rust compiled from that
//! file, against its samples. The transcript is the one the shipped providers' simulation test
//! keeps (`tests/simulations/`), and it follows the file given, not the compiled-in providers.
//! The first run builds the runtime under `target/simulate` (a few minutes); later runs reuse it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `otvi-codegen simulate ARGS` in the workspace root: (exit code, stdout, stderr).
fn simulate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_otvi-codegen"))
        .arg("simulate")
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn kept(provider: &str) -> String {
    std::fs::read_to_string(workspace().join(format!("tests/simulations/{provider}.txt"))).unwrap()
}

#[test]
fn a_shipped_file_simulates_as_its_kept_transcript_and_one_flow_alone() {
    let (code, out, err) = simulate(&["providers/acme.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, kept("acme"));

    let (code, out, err) = simulate(&["providers/indee.yaml", "--flow", "sso"]);
    assert_eq!(code, 0, "{err}");
    let whole = kept("indee");
    let start = whole.find("flow `sso`").unwrap();
    let end = whole[start..]
        .find("\n\nflow `")
        .map_or(whole.len(), |e| start + e + 1);
    assert_eq!(out, whole[start..end]);
    assert!(
        out.contains("Authorization: Bearer <secret.api_key>"),
        "{out}"
    );
    assert!(!out.contains("flow `password`"), "{out}");

    // The session check alone, as the whole file's transcript ends with it.
    let (code, out, err) = simulate(&["providers/acme.yaml", "--flow", "check"]);
    assert_eq!(code, 0, "{err}");
    let whole = kept("acme");
    let start = whole.find("session check of provider").unwrap();
    assert_eq!(out, whole[start..]);
}

#[test]
fn the_simulation_follows_the_file_given() {
    let dir = std::env::temp_dir().join(format!("otvi-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(workspace().join("providers/acme.yaml")).unwrap();
    // Another country code in the request, another request id in the answer.
    let changed = text
        .replace("\"country_code\": \"+1\"", "\"country_code\": \"+44\"")
        .replace("request_id: \"req-8c41\"", "request_id: \"req-0000\"");
    assert_ne!(
        changed, text,
        "acme.yaml no longer has the text this test changes"
    );
    let file = dir.join("acme.yaml");
    std::fs::write(&file, changed).unwrap();
    let (code, out, err) = simulate(&[file.to_str().unwrap(), "--flow", "phone_otp"]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"country_code\": \"+44\""), "{out}");
    assert!(out.contains("keeps request_id = \"req-0000\""), "{out}");
}

#[test]
fn an_unknown_flow_or_a_broken_file_builds_nothing() {
    let (code, _, err) = simulate(&["providers/acme.yaml", "--flow", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no flow `nope`") && err.contains("email_password, phone_otp"),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("otvi-simulate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    let text = std::fs::read_to_string(workspace().join("providers/acme.yaml")).unwrap();
    std::fs::write(
        &file,
        text.replace("{{stored.request_id}}", "{{stored.reqest_id}}"),
    )
    .unwrap();
    let (code, out, err) = simulate(&[file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("reqest_id"), "{err}");
}

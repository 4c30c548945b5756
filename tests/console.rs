//! The login console (`GET /console`) in a real browser: `tests/console/drive.py` drives
//! Debian's chromium through Python Playwright against the server and the acme, OpenTV AGS and
//! Indee mocks. Ignored by default; `bash tests/console/install.sh && cargo test --test console
//! -- --ignored` runs it. Screenshots go to `target/console/`.

mod common;

use common::*;
use otvi_mocks::{acme, ags, indee};
use std::path::Path;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian chromium and Python playwright: tests/console/install.sh installs them"]
async fn the_console_signs_in_checks_and_logs_out_in_a_real_browser() {
    let acme = acme::MockProvider::start().await.unwrap();
    let ags = ags::AgsMock::start().await.unwrap();
    let indee = indee::IndeeMock::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&acme.url(), dir.path());
    cfg.base_urls.insert("opentv".into(), ags.url());
    cfg.base_urls.insert("indee".into(), indee.url());
    let server = TestServer::start_with(cfg, Some(dir)).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/console");
    std::fs::create_dir_all(&shots).unwrap();
    let (several, password) = ags::SEVERAL_ACCOUNTS;
    let started = Instant::now();
    let run = tokio::process::Command::new("python3")
        .arg(root.join("tests/console/drive.py"))
        .current_dir(root)
        .env("OTVI_CONSOLE_URL", &server.url)
        .env("OTVI_CONSOLE_TOKEN", user("console-user"))
        .env("OTVI_CONSOLE_OTHER", admin("someone-else"))
        .env("OTVI_CONSOLE_LIMITED", user("limited-user"))
        .env("OTVI_CONSOLE_OTP", acme::OTP)
        .env("OTVI_CONSOLE_SHOTS", &shots)
        .env(
            "OTVI_CONSOLE_OPENTV",
            format!("{several}:{password}:{}", ags::LINKED_ACCOUNTS.join(",")),
        )
        .env(
            "OTVI_CONSOLE_INDEE",
            format!("{} {}", indee::SSO_EMAIL, indee.idp_url()),
        )
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("drive.py did not finish in 240 s")
        .expect("cannot run python3 (tests/console/install.sh installs what this test needs)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("drive.py took {:.1?}\n{stdout}", started.elapsed());
    assert!(
        out.status.success(),
        "drive.py failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        shots.display()
    );

    // What the browser did reached the providers: a code sent, accounts chosen, SSO finished.
    assert_eq!(acme.received_on("/v2/auth/otp/verify").len(), 2);
    // One logout reached acme: the second, with no session, was said without asking it.
    assert_eq!(acme.received_on("/v2/auth/logout").len(), 1);
    // One choice sent: submitting with none chosen sent nothing.
    assert_eq!(ags.received_on("/ags/subsequentSignOn").len(), 1);
    assert_eq!(indee.received_on("/v1/admin/auth/sso/login").len(), 1);
    assert_eq!(
        server.check(&user("console-user"), "opentv").await.1,
        r#"{"valid":true}"#
    );
    // The sign-in whose answer came after the provider was changed completed all the same.
    assert_eq!(
        server.check(&user("console-user"), "acme").await.1,
        r#"{"valid":true}"#
    );
    for shot in [
        "desktop-signed-in.png",
        "desktop-link-token.png",
        "desktop-locked.png",
        "desktop-too-many.png",
        "phone-choice.png",
        "phone-link.png",
    ] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
}

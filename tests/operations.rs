//! What operators rely on: `/metrics` (behind its optional token; store errors are counted in
//! tests/store_down.rs), one log line per request
//! that names ids and never values, and a graceful stop on SIGTERM.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};
use std::time::Duration;

const PHONE: &str = "+15550100777";

fn phone_step() -> String {
    format!(r#"{{"flow_id":"phone_otp","step":0,"inputs":{{"phone":"{PHONE}"}}}}"#)
}

/// The value of the sample `name` (with its labels exactly as written), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_logins_by_outcome_provider_latency_and_pending_runs_behind_a_token() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.metrics_token = Some("scrape-me".into());
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let alice = user("alice");
    let bob = user("bob");

    // Behind the token.
    let scrape = |token: Option<&'static str>| {
        let mut rb = s.client.get(format!("{}/metrics", s.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    let r = scrape(Some("wrong")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        json(&r.text().await.unwrap())["error"],
        "the metrics token is missing or wrong"
    );

    // One success, one prompt (a run now pending), one failure.
    let (_, body) = s
        .login(&alice, "acme", r#"{"flow_id":"email_password","step":0,"inputs":{"email":"alice@example.com","password":"pw"}}"#)
        .await;
    assert_eq!(json(&body)["success"], true);
    let (_, body) = s.login(&bob, "acme", &phone_step()).await;
    assert_eq!(json(&body)["next_step"]["step_index"], 1);
    let (_, body) = s
        .login(&user("carol"), "acme", r#"{"flow_id":"email_password","step":0,"inputs":{"email":"c@example.com","password":"wrong"}}"#)
        .await;
    assert_eq!(json(&body)["success"], false);

    let r = scrape(Some("scrape-me")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let at = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    assert_eq!(
        at(r#"otvi_logins_total{provider="acme",outcome="success"}"#),
        1.0
    );
    assert_eq!(
        at(r#"otvi_logins_total{provider="acme",outcome="next_step"}"#),
        1.0
    );
    assert_eq!(
        at(r#"otvi_logins_total{provider="acme",outcome="failed"}"#),
        1.0
    );
    assert_eq!(
        at(r#"otvi_provider_request_duration_seconds_count{provider="acme"}"#),
        3.0
    );
    assert!(at(r#"otvi_provider_request_duration_seconds_sum{provider="acme"}"#) > 0.0);
    assert_eq!(at("otvi_pending_runs"), 1.0);
    assert_eq!(at("otvi_store_errors_total"), 0.0);
    // Alice's session and Bob's pending run, one after the other: a transaction each at least.
    assert!(at("otvi_store_commits_total") >= 2.0);
    assert_eq!(
        at(
            r#"otvi_http_requests_total{method="POST",route="/api/providers/{id}/auth/login",status="200"}"#
        ),
        3.0
    );
    assert!(text.trim_end().ends_with("# EOF"));
    // Ids only: no input value, user id or token.
    for value in [PHONE, "alice", "bob", "wrong", alice.as_str()] {
        assert!(!text.contains(value), "{value} in metrics");
    }

    // The run completes: nothing pending.
    let (_, body) = s
        .login(
            &bob,
            "acme",
            &format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{OTP}"}}}}"#),
        )
        .await;
    assert_eq!(json(&body)["success"], true);
    let text = scrape(Some("scrape-me"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sample(&text, "otvi_pending_runs"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            r#"otvi_logins_total{provider="acme",outcome="success"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_open_without_a_token() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let (st, text) = s.send("GET", "/metrics", None, None).await;
    assert_eq!(st, 200);
    assert_eq!(sample(&text, "otvi_store_errors_total"), Some(0.0));
    assert_eq!(sample(&text, "otvi_pending_runs"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_is_one_log_line_of_ids_never_values() {
    let mock = MockProvider::start().await.unwrap();
    let base = format!("acme={}", mock.url());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("otvi.db").display());
    let real = RealServer::start(
        &[
            "--provider-base-url".into(),
            base,
            "--database-url".into(),
            db,
        ],
        &[("RUST_LOG", "info")],
    );
    let s = &real.server;
    let bob = user("bob");
    let (st, _) = s.login(&bob, "acme", &phone_step()).await;
    assert_eq!(st, 200);
    let (_, body) = s
        .login(
            &bob,
            "acme",
            &format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{OTP}"}}}}"#),
        )
        .await;
    assert_eq!(json(&body)["success"], true);
    let (st, _) = s.check(&bob, "acme").await;
    assert_eq!(st, 200);
    let (st, _) = s.send("GET", "/api/providers/nope", Some(&bob), None).await;
    assert_eq!(st, 404);
    let log = real.stop();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("otvi::request"))
        .collect();
    assert_eq!(lines.len(), 4, "{log}");
    for (line, want) in lines.iter().zip([
        "method=POST route=/api/providers/{id}/auth/login status=200 ",
        "method=POST route=/api/providers/{id}/auth/login status=200 ",
        "method=GET route=/api/providers/{id}/auth/check status=200 ",
        "method=GET route=/api/providers/{id} status=404 ",
    ]) {
        assert!(line.contains(want), "{line}");
        assert!(line.contains(" ms="), "{line}");
    }
    assert!(
        lines[0].ends_with("provider=acme flow=phone_otp step=0 outcome=next_step"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with("provider=acme flow=phone_otp step=1 outcome=success"),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with("provider=acme"), "{}", lines[2]);
    // An unknown provider's id is the caller's text: not logged.
    assert!(!lines[3].contains("nope"), "{}", lines[3]);
    // No value anywhere in the log: not the phone (nor its base64), the code, or the token.
    let b64 = "KzE1NTUwMTAwNzc3";
    for value in [PHONE, b64, OTP, bob.as_str()] {
        assert!(!log.contains(value), "{value} logged:\n{log}");
    }
}

/// A provider that answers acme's sign-in after a pause, saying when a request arrived.
async fn slow_provider(pause: Duration) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    use axum::routing::post;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v2/auth/login",
        post(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
                tokio::time::sleep(pause).await;
                axum::Json(serde_json::json!({"data": {
                    "access_token": "at-slow", "refresh_token": "rt-slow",
                    "user": {"display_name": "Slow", "id": "u-slow"}}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_login_under_way_finish_and_write_its_session_then_exits() {
    let (mock, mut arrived) = slow_provider(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("otvi.db").display());
    let real = RealServer::start(
        &[
            "--provider-base-url".into(),
            format!("acme={mock}"),
            "--database-url".into(),
            db.clone(),
        ],
        &[],
    );
    let url = real.server.url.clone();
    let client = real.server.client.clone();
    let token = user("dora");
    let login = tokio::spawn({
        let (url, client, token) = (url.clone(), client.clone(), token.clone());
        async move {
            let r = client
                .post(format!("{url}/api/providers/acme/auth/login"))
                .bearer_auth(token)
                .body(r#"{"flow_id":"email_password","step":0,"inputs":{"email":"dora@example.com","password":"pw"}}"#)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    // The login is at the provider: stop the server.
    tokio::time::timeout(Duration::from_secs(20), arrived.recv())
        .await
        .unwrap()
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &real.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // New connections are refused while the login finishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(
        late.is_err(),
        "a new request was served after SIGTERM: {late:?}"
    );
    let (status, body) = login.await.unwrap();
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, serde_json::json!(true)),
        "{body}"
    );
    let (exit, log) = tokio::task::spawn_blocking(move || real.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(exit.is_some_and(|s| s.success()), "exit {exit:?}\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("otvi stopped"), "{log}");
    // The session the login wrote is there, whole.
    let store = otvi_server::store::Store::connect(&db, sealer())
        .await
        .unwrap();
    let session = store
        .session("dora", "acme")
        .await
        .unwrap()
        .expect("the session was written");
    assert_eq!(
        session.get("access_token").map(String::as_str),
        Some("at-slow")
    );
    assert_eq!(session.get("user_id").map(String::as_str), Some("u-slow"));
}

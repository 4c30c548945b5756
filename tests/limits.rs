//! What the server refuses to be used for: brute force (429 after repeated failures, per user
//! and provider and per client address, without reaching the provider), oversize requests
//! (400, nothing written), and unbounded pending runs. And how it behaves when its SQLite
//! file stops taking writes: 503 and not ready, then recovery without a restart.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};
use otvi_server::limits::LimitConfig;
use serde_json::json;
use std::time::Duration;

const WRONG: &str = r#"{"flow_id":"email_password","step":0,"inputs":{"email":"alice@example.com","password":"wrong"}}"#;

async fn limited(mock: &MockProvider, limits: LimitConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.limits = limits;
    TestServer::start_with(cfg, Some(dir)).await
}

fn per_user(n: u32) -> LimitConfig {
    LimitConfig {
        per_user: n,
        per_address: 0,
        window: Duration::from_secs(900),
    }
}

async fn post_with_header(
    s: &TestServer,
    token: &str,
    header: (&str, &str),
    body: &str,
) -> reqwest::Response {
    s.client
        .post(format!("{}/api/providers/acme/auth/login", s.url))
        .bearer_auth(token)
        .header(header.0, header.1)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_limit_answers_429_after_five_failures_without_asking_the_provider() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let alice = user("alice");
    let mut attempts = 0;
    let refused = loop {
        let r = post_with_header(&s, &alice, ("content-type", "application/json"), WRONG).await;
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 200);
        assert_eq!(json(&r.text().await.unwrap())["success"], false);
        attempts += 1;
        assert!(attempts <= 5, "still not refused after {attempts} failures");
    };
    assert_eq!(attempts, LimitConfig::default().per_user);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let body = json(&refused.text().await.unwrap());
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many failed login attempts"));

    let sent = mock.received().len();
    // The right password is refused too while the window is open, and never sent.
    let (status, _) = s.login(&alice, "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 429);
    assert_eq!(
        mock.received().len(),
        sent,
        "a refused login reached the provider"
    );
    // Another user, and the same user at another provider, are not affected.
    let (status, body) = s.login(&user("bob"), "acme", EMAIL_LOGIN).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true))
    );
    let other_provider = s
        .login(
            &alice,
            "opentv",
            r#"{"flow_id":"sign_on","step":0,"inputs":{"username":"x","password":"y"}}"#,
        )
        .await;
    assert_eq!(other_provider.0, 200, "{}", other_provider.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_completed_login_clears_the_users_count() {
    let mock = MockProvider::start().await.unwrap();
    let s = limited(&mock, per_user(2)).await;
    let alice = user("alice");
    assert_eq!(s.login(&alice, "acme", WRONG).await.0, 200);
    assert_eq!(s.login(&alice, "acme", EMAIL_LOGIN).await.0, 200);
    assert_eq!(s.login(&alice, "acme", WRONG).await.0, 200);
    assert_eq!(s.login(&alice, "acme", WRONG).await.0, 200);
    assert_eq!(s.login(&alice, "acme", WRONG).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_code_asked_for_again_counts_and_a_provider_fault_does_not() {
    let mock = MockProvider::start().await.unwrap();
    let s = limited(&mock, per_user(2)).await;
    let alice = user("alice");
    let start = r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"5551234"}}"#;
    let code = |c: &str| format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{c}"}}}}"#);
    assert_eq!(s.login(&alice, "acme", start).await.0, 200);
    for _ in 0..2 {
        let (status, body) = s.login(&alice, "acme", &code("000000")).await;
        assert_eq!(
            (status, json(&body)["success"].as_bool()),
            (200, Some(false)),
            "{body}"
        );
    }
    assert_eq!(s.login(&alice, "acme", &code(OTP)).await.0, 429);

    // A provider that cannot be reached is not the user's failure.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("http://127.0.0.1:9", dir.path());
    cfg.limits = per_user(1);
    let down = TestServer::start_with(cfg, Some(dir)).await;
    for _ in 0..3 {
        let (status, body) = down.login(&alice, "acme", EMAIL_LOGIN).await;
        assert_eq!(
            (status, json(&body)["success"].as_bool()),
            (200, Some(false)),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_is_limited_across_users_and_a_proxy_header_tells_addresses_apart() {
    let mock = MockProvider::start().await.unwrap();
    let by_address = LimitConfig {
        per_user: 0,
        per_address: 3,
        window: Duration::from_secs(900),
    };
    let s = limited(&mock, by_address).await;
    for i in 0..3 {
        assert_eq!(s.login(&user(&format!("u{i}")), "acme", WRONG).await.0, 200);
    }
    assert_eq!(s.login(&user("u9"), "acme", EMAIL_LOGIN).await.0, 429);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.limits = by_address;
    cfg.client_ip_header = Some("x-forwarded-for".into());
    let proxied = TestServer::start_with(cfg, Some(dir)).await;
    let from = |ip: &'static str| ("x-forwarded-for", ip);
    for i in 0..3 {
        let r = post_with_header(
            &proxied,
            &user(&format!("u{i}")),
            from("spoofed, 203.0.113.7"),
            WRONG,
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let r = post_with_header(&proxied, &user("u9"), from("203.0.113.7"), EMAIL_LOGIN).await;
    assert_eq!(r.status(), 429);
    let r = post_with_header(&proxied, &user("u9"), from("203.0.113.8"), EMAIL_LOGIN).await;
    assert_eq!(r.status(), 200);
}

/// A server with `limits` whose every provider is `provider`, from 127.0.0.1 (or from the
/// address in `x-forwarded-for` when `proxied`).
async fn against(provider: &ScriptedProvider, limits: LimitConfig, proxied: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&provider.url, dir.path());
    cfg.limits = limits;
    if proxied {
        cfg.client_ip_header = Some("x-forwarded-for".into());
    }
    TestServer::start_with(cfg, Some(dir)).await
}

/// Of `answers`, how many were refused with 429 and a `Retry-After` within the window, and
/// how many were 200; nothing else may come back.
fn tally(answers: &[(u16, Option<u64>, String)]) -> (usize, usize) {
    for (status, retry, body) in answers {
        match status {
            429 => assert!(
                retry.is_some_and(|r| (1..=900).contains(&r)),
                "429 without a Retry-After in the window: {retry:?}"
            ),
            200 => assert_eq!(json(body)["success"], false, "{body}"),
            _ => panic!("{status}: {body}"),
        }
    }
    let refused = answers.iter().filter(|a| a.0 == 429).count();
    (refused, answers.len() - refused)
}

fn slow_rejection() -> (u16, serde_json::Value, Duration) {
    (
        401,
        json!({"error": "invalid credentials"}),
        Duration::from_millis(500),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_passwords_of_one_user_reach_the_provider_at_most_five_times() {
    let (status, body, delay) = slow_rejection();
    let provider = ScriptedProvider::start(status, body, delay).await;
    let s = against(&provider, LimitConfig::default(), false).await;
    let alice = user("alice");
    let answers = parallel_logins(&[&s], 30, |_| alice.clone(), |_| vec![], WRONG).await;
    let (refused, answered) = tally(&answers);
    assert!(
        provider.hits() <= 5,
        "{} reached the provider",
        provider.hits()
    );
    assert_eq!(answered, provider.hits());
    assert_eq!(refused, 30 - provider.hits());
    assert!(refused >= 25);
    // The window is still closed to the right password, and it is not sent.
    let (status, _) = s.login(&alice, "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 429);
    assert!(provider.hits() <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_passwords_from_one_address_reach_the_provider_at_most_the_limit() {
    let (status, body, delay) = slow_rejection();
    let provider = ScriptedProvider::start(status, body, delay).await;
    let by_address = LimitConfig {
        per_user: 5,
        per_address: 7,
        window: Duration::from_secs(900),
    };
    let s = against(&provider, by_address, false).await;
    let tokens: Vec<String> = (0..30).map(|i| user(&format!("u{i}"))).collect();
    let answers = parallel_logins(&[&s], 30, |i| tokens[i].clone(), |_| vec![], WRONG).await;
    let (refused, _) = tally(&answers);
    assert!(
        provider.hits() <= 7,
        "{} reached the provider",
        provider.hits()
    );
    assert_eq!(refused, 30 - provider.hits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_configured_address_header_the_peer_address_is_limited() {
    let (status, body, _) = slow_rejection();
    let provider = ScriptedProvider::start(status, body, Duration::ZERO).await;
    let by_address = LimitConfig {
        per_user: 0,
        per_address: 3,
        window: Duration::from_secs(900),
    };
    let s = against(&provider, by_address, true).await;
    for i in 0..3 {
        assert_eq!(s.login(&user(&format!("u{i}")), "acme", WRONG).await.0, 200);
    }
    assert_eq!(s.login(&user("u9"), "acme", WRONG).await.0, 429);
    // A header that names no address is no header.
    let r = post_with_header(&s, &user("u9"), ("x-forwarded-for", "unknown"), WRONG).await;
    assert_eq!(r.status(), 429);
    // Another address, as the proxy says, is not limited.
    let r = post_with_header(&s, &user("u9"), ("x-forwarded-for", "198.51.100.4"), WRONG).await;
    assert_eq!(r.status(), 200);
    assert_eq!(provider.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_outage_never_locks_a_user_or_an_address_out() {
    let strict = LimitConfig {
        per_user: 3,
        per_address: 3,
        window: Duration::from_secs(900),
    };
    // 5xx, the provider's own rate limit, and an answer the step does not expect (truenas'
    // outcomes know SUCCESS, OTP_REQUIRED, AUTH_ERR, EXPIRED and REDIRECT only).
    let truenas = r#"{"flow_id":"password","step":0,"inputs":{"username":"a","password":"b"}}"#;
    for (status, body, login) in [
        (500, json!({"error": "internal"}), WRONG),
        (503, json!({}), WRONG),
        (429, json!({"error": "slow down"}), WRONG),
        (200, json!({"response_type": "MAINTENANCE"}), truenas),
        (401, json!({"response_type": "MAINTENANCE"}), truenas),
    ] {
        let provider = ScriptedProvider::start(status, body, Duration::ZERO).await;
        let s = against(&provider, strict, false).await;
        let alice = user("alice");
        let provider_id = if login == truenas { "truenas" } else { "acme" };
        for n in 0..12 {
            let (code, answer) = s.login(&alice, provider_id, login).await;
            assert_eq!(
                (code, json(&answer)["success"].as_bool()),
                (200, Some(false)),
                "login {n} against a provider answering {status}: {answer}"
            );
        }
        assert_eq!(provider.hits(), 12);
        // Once the provider is back and rejects, the user's own failures count from zero.
        *provider.answer.lock().unwrap() = (401, json!({"response_type": "AUTH_ERR"}));
        for _ in 0..3 {
            assert_eq!(s.login(&alice, provider_id, login).await.0, 200);
        }
        assert_eq!(s.login(&alice, provider_id, login).await.0, 429);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversize_body_and_too_many_or_too_long_inputs_are_400() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let alice = user("alice");
    let big = json!({"flow_id": "email_password", "step": 0,
        "inputs": {"email": "a@b.c", "password": "x".repeat(70 * 1024)}})
    .to_string();
    let (status, body) = s.login(&alice, "acme", &big).await;
    assert_eq!(status, 400, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("64 KiB"));

    let many: serde_json::Map<String, serde_json::Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, body) = s
        .login(
            &alice,
            "acme",
            &json!({"flow_id": "email_password", "step": 0, "inputs": many}).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("at most 64 inputs"));

    let long_name = json!({"flow_id": "email_password", "step": 0,
        "inputs": {"x".repeat(300): "v", "email": "a@b.c", "password": "p"}})
    .to_string();
    let (status, body) = s.login(&alice, "acme", &long_name).await;
    assert_eq!(status, 400, "{body}");

    let value = json!({"flow_id": "email_password", "step": 0,
        "inputs": {"email": "a@b.c", "password": "x".repeat(5000)}})
    .to_string();
    assert_eq!(s.login(&alice, "acme", &value).await.0, 400);

    assert!(mock.received().is_empty(), "nothing reached the provider");
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":false}"#);
    assert_eq!(rows(&s, "pending_runs").await, 0);
}

async fn rows(s: &TestServer, table: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_has_at_most_one_pending_run_per_provider() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    let alice = user("alice");
    let start = r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"5551234"}}"#;
    for _ in 0..20 {
        assert_eq!(s.login(&alice, "acme", start).await.0, 200);
    }
    assert_eq!(rows(&s, "pending_runs").await, 1);
}

/// `chattr +i` on the database file and its write-ahead log: even root's writes fail, as on a
/// read-only or broken disk. (Not on the shared-memory index: SQLite maps it into memory, and
/// a mapped file that cannot grow is a SIGBUS, not an error.)
fn immutable(dir: &std::path::Path, on: bool) {
    for (name, _) in files_in(dir) {
        if name.ends_with("-shm") || name.ends_with(".lock") {
            continue;
        }
        let st = std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(&name)
            .status()
            .expect("chattr (e2fsprogs) runs");
        assert!(st.success(), "chattr on {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_file_that_stops_taking_writes_is_503_then_recovers_without_a_restart() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let s = TestServer::start_with(config(&mock.url(), &path), Some(dir)).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let start = r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"5551234"}}"#;
    let code = format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{OTP}"}}}}"#);
    assert_eq!(
        json(&s.login(&alice, "acme", start).await.1)["next_step"]["step_index"],
        1
    );
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 200);

    immutable(&path, true);
    let (status, body) = s.login(&alice, "acme", &code).await;
    let (ready, _) = s.send("GET", "/readyz", None, None).await;
    let (bob_status, bob_body) = s.login(&bob, "acme", EMAIL_LOGIN).await;
    immutable(&path, false);
    assert_eq!(status, 503, "{body}");
    assert!(json(&body)["error"].is_string());
    assert_eq!(ready, 503);
    assert_eq!(bob_status, 503, "{bob_body}");

    // Back without a restart: nothing was half-written, so the run resumes where it was.
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 200);
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":false}"#);
    assert_eq!(s.check(&bob, "acme").await.1, r#"{"valid":false}"#);
    let (status, body) = s.login(&alice, "acme", &code).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":true}"#);
}

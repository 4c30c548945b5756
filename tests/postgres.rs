//! The session store on PostgreSQL (127.0.0.1:5432, database `test`, trust auth), as several
//! server instances behind a load balancer would use it: state lives in the database, so a run
//! started on one instance continues on another.
//!
//! `OTVI_TEST_POSTGRES_URL` overrides the address.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};
use otvi_server::limits::LimitConfig;
use sqlx::Connection;
use std::time::Duration;

fn pg_url() -> String {
    std::env::var("OTVI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn instance(mock: &MockProvider) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.database_url = pg_url();
    // Every test comes from 127.0.0.1 and the counts outlive the run in the database.
    cfg.limits.per_address = 0;
    TestServer::start_with(cfg, Some(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_step_login_moves_between_instances_sharing_postgres() {
    let mock = MockProvider::start().await.unwrap();
    let a = instance(&mock).await;
    let b = instance(&mock).await;
    // A fresh user per run: the database outlives the test.
    let t = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    assert_eq!(a.check(&t, "acme").await.1, r#"{"valid":false}"#);
    let (_, body) = a
        .login(
            &t,
            "acme",
            r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"5551234"}}"#,
        )
        .await;
    assert_eq!(json(&body)["next_step"]["step_index"], 1, "{body}");
    let step1 = format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{OTP}"}}}}"#);
    let (status, body) = b.login(&t, "acme", &step1).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(a.check(&t, "acme").await.1, r#"{"valid":true}"#);
    assert_eq!(b.logout(&t, "acme").await.0, 200);
    assert_eq!(a.check(&t, "acme").await.1, r#"{"valid":false}"#);
    assert_eq!(a.send("GET", "/readyz", None, None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_on_postgres_each_get_a_session() {
    let mock = MockProvider::start().await.unwrap();
    let s = std::sync::Arc::new(instance(&mock).await);
    let run = uuid::Uuid::new_v4();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let t = user(&format!("pg-{run}-{i}"));
            let (status, body) = s.login(&t, "acme", EMAIL_LOGIN).await;
            assert_eq!(
                (status, json(&body)["success"].as_bool()),
                (200, Some(true)),
                "{body}"
            );
            assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":true}"#);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn completion_merges_new_values_over_the_session_on_postgres() {
    let store = otvi_server::store::Store::connect(&pg_url(), sealer())
        .await
        .unwrap();
    let owner = format!("pg-{}", uuid::Uuid::new_v4());
    let one = [
        ("access_token".to_string(), "a1".to_string()),
        ("user_name".to_string(), "Al".to_string()),
    ]
    .into();
    store.complete(&owner, "acme", &one).await.unwrap();
    let two = [("access_token".to_string(), "a2".to_string())].into();
    let merged = store.complete(&owner, "acme", &two).await.unwrap();
    assert_eq!(merged.get("access_token").map(String::as_str), Some("a2"));
    assert_eq!(merged.get("user_name").map(String::as_str), Some("Al"));
    store.logout(&owner, "acme").await.unwrap();
    assert!(!store.has_session(&owner, "acme").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_attempts_are_counted_across_instances() {
    let mock = MockProvider::start().await.unwrap();
    let a = instance(&mock).await;
    let b = instance(&mock).await;
    let t = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    let wrong =
        r#"{"flow_id":"email_password","step":0,"inputs":{"email":"a@b.c","password":"wrong"}}"#;
    // The default limit is five failures: three on one instance, two on the other.
    for s in [&a, &a, &a, &b, &b] {
        assert_eq!(s.login(&t, "acme", wrong).await.0, 200);
    }
    let sent = mock.received().len();
    assert_eq!(a.login(&t, "acme", EMAIL_LOGIN).await.0, 429);
    assert_eq!(b.login(&t, "acme", EMAIL_LOGIN).await.0, 429);
    assert_eq!(mock.received().len(), sent);
    let other = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    assert_eq!(b.login(&other, "acme", EMAIL_LOGIN).await.0, 200);
}

/// Two instances on one database, every provider pointed at `provider`, the client's address
/// taken from `x-forwarded-for`.
async fn instances_against(provider: &ScriptedProvider, limits: LimitConfig) -> [TestServer; 2] {
    let one = || async {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&provider.url, dir.path());
        cfg.database_url = pg_url();
        cfg.limits = limits;
        cfg.client_ip_header = Some("x-forwarded-for".into());
        TestServer::start_with(cfg, Some(dir)).await
    };
    [one().await, one().await]
}

const WRONG: &str =
    r#"{"flow_id":"email_password","step":0,"inputs":{"email":"a@b.c","password":"wrong"}}"#;

/// An address of this run's own, so that counts left in the database by earlier runs do not
/// matter.
fn fresh_address() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!(
        "fd00:{:x}:{:x}:{:x}::1",
        b[0],
        b[1],
        u16::from_be_bytes([b[2], b[3]])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_passwords_on_two_instances_reach_the_provider_at_most_five_times() {
    let provider =
        ScriptedProvider::start(401, serde_json::json!({}), Duration::from_millis(500)).await;
    let [a, b] = instances_against(&provider, LimitConfig::default()).await;
    let t = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    let addresses: Vec<String> = (0..30).map(|_| fresh_address()).collect();
    let answers = parallel_logins(
        &[&a, &b],
        30,
        |_| t.clone(),
        |i| vec![("x-forwarded-for".into(), addresses[i].clone())],
        WRONG,
    )
    .await;
    let refused = answers
        .iter()
        .filter(|(s, r, _)| *s == 429 && r.is_some())
        .count();
    let answered = answers.iter().filter(|(s, ..)| *s == 200).count();
    assert_eq!(refused + answered, 30, "{answers:?}");
    assert!(
        provider.hits() <= 5,
        "{} reached the provider",
        provider.hits()
    );
    assert_eq!(answered, provider.hits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_passwords_from_one_address_on_two_instances_are_limited() {
    let provider =
        ScriptedProvider::start(401, serde_json::json!({}), Duration::from_millis(500)).await;
    let limits = LimitConfig {
        per_address: 7,
        ..LimitConfig::default()
    };
    let [a, b] = instances_against(&provider, limits).await;
    let run = uuid::Uuid::new_v4();
    let tokens: Vec<String> = (0..30).map(|i| user(&format!("pg-{run}-{i}"))).collect();
    let address = fresh_address();
    let answers = parallel_logins(
        &[&a, &b],
        30,
        |i| tokens[i].clone(),
        |_| vec![("x-forwarded-for".into(), address.clone())],
        WRONG,
    )
    .await;
    let refused = answers
        .iter()
        .filter(|(s, r, _)| *s == 429 && r.is_some())
        .count();
    assert!(
        provider.hits() <= 7,
        "{} reached the provider",
        provider.hits()
    );
    assert_eq!(refused, 30 - provider.hits(), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_outage_never_locks_a_user_out_on_postgres() {
    let provider = ScriptedProvider::start(500, serde_json::json!({}), Duration::ZERO).await;
    let limits = LimitConfig {
        per_user: 3,
        per_address: 3,
        ..LimitConfig::default()
    };
    let [a, b] = instances_against(&provider, limits).await;
    let t = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    let address = fresh_address();
    for s in [&a, &b].repeat(6) {
        let r = s
            .client
            .post(format!("{}/api/providers/acme/auth/login", s.url))
            .bearer_auth(&t)
            .header("x-forwarded-for", &address)
            .body(WRONG)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(provider.hits(), 12);
}

/// What `check` answers comes from the database on PostgreSQL: an instance that has just
/// answered `valid: true` (many times, the token remembered) answers `false` as soon as another
/// instance has logged the user out, and `true` again once another has logged them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_follows_logins_and_logouts_made_on_another_instance() {
    let mock = MockProvider::start().await.unwrap();
    let a = instance(&mock).await;
    let b = instance(&mock).await;
    let t = user(&format!("pg-{}", uuid::Uuid::new_v4()));
    for round in 0..3 {
        let (status, body) = b.login(&t, "acme", EMAIL_LOGIN).await;
        assert_eq!(
            json(&body)["success"],
            true,
            "round {round}: {status} {body}"
        );
        for _ in 0..5 {
            assert_eq!(a.check(&t, "acme").await.1, r#"{"valid":true}"#);
        }
        assert_eq!(b.logout(&t, "acme").await.0, 200);
        assert_eq!(a.check(&t, "acme").await.1, r#"{"valid":false}"#);
        assert_eq!(b.check(&t, "acme").await.1, r#"{"valid":false}"#);
    }
}

/// On PostgreSQL the failed-attempt counts are in the database, settled after the provider
/// answers. A store error there, once the login's session is written, is logged and counted,
/// and the login is still answered `success: true`: the session is stored and answered. The
/// test runs in a schema of its own (`search_path`), whose counts table it renames while the
/// login is at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_error_settling_the_limits_after_the_session_was_written_is_not_a_503() {
    let schema = format!("settle_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if pg_url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{schema}", pg_url());

    let provider = ScriptedProvider::start(
        200,
        serde_json::json!({"data": {"access_token": "at-1", "refresh_token": "rt-1",
            "user": {"display_name": "Settle", "id": "u-settle"}}}),
        Duration::from_millis(1000),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&provider.url, dir.path());
    cfg.database_url = url;
    let s = std::sync::Arc::new(TestServer::start_with(cfg, Some(dir)).await);
    let t = user("settle");
    let login = tokio::spawn({
        let (s, t) = (s.clone(), t.clone());
        async move { s.login(&t, "acme", EMAIL_LOGIN).await }
    });
    // The attempt is reserved and the login is at the provider: the counts go away.
    for _ in 0..500 {
        if provider.hits() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(provider.hits(), 1);
    sqlx::query(&format!(
        "ALTER TABLE {schema}.login_failures RENAME TO login_failures_away"
    ))
    .execute(&mut admin)
    .await
    .unwrap();

    let (status, body) = login.await.unwrap();
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":true}"#);
    let (_, metrics) = s.send("GET", "/metrics", None, None).await;
    let errors: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("otvi_store_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(errors >= 1.0, "the failed settle is counted:\n{metrics}");

    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}

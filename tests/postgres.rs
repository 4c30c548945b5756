//! The session store on PostgreSQL (127.0.0.1:5432, database `test`, trust auth), as several
//! server instances behind a load balancer would use it: state lives in the database, so a run
//! started on one instance continues on another.
//!
//! `OTVI_TEST_POSTGRES_URL` overrides the address.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};

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

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
async fn completion_merges_new_values_over_the_session_on_postgres() {
    let store = otvi_runtime::store::Store::connect(&pg_url(), sealer())
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

#[tokio::test]
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

/// What `check` answers comes from the database on PostgreSQL: an instance that has just
/// answered `valid: true` (many times, the token remembered) answers `false` as soon as another
/// instance has logged the user out, and `true` again once another has logged them in.
#[tokio::test]
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

//! The API mounted in a team's own axum application under a prefix: the same checks and
//! answers as the standalone server, and the client's address from the application's
//! `ConnectInfo` for the per-address limit.

mod common;

use common::*;
use otvi_mocks::acme::MockProvider;
use otvi_server::limits::LimitConfig;
use std::net::SocketAddr;
use std::time::Duration;

async fn mounted(mock: &MockProvider, limits: LimitConfig) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.limits = limits;
    let api = otvi_server::config::app(&cfg).await.unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the team's own page" }))
        .nest_service("/auth", api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    (TestServer::from_parts(url, task), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_under_a_prefix_answers_as_the_standalone_server() {
    let mock = MockProvider::start().await.unwrap();
    let (s, _dir) = mounted(&mock, LimitConfig::default()).await;
    let alice = user("alice");
    let (status, body) = s.login(&alice, "acme", EMAIL_LOGIN).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":true}"#);
    assert_eq!(
        s.logout(&alice, "acme").await,
        (200, r#"{"success":true}"#.into())
    );
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":false}"#);

    // The order of checks and the error bodies are the standalone server's.
    let (status, body) = s.login("not-a-token", "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 401);
    assert!(json(&body)["error"].is_string());
    let (status, body) = s.login(&alice, "nope", EMAIL_LOGIN).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.login(&alice, "acme", "{").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s.send("GET", "/api/providers", Some(&alice), None).await;
    assert_eq!(status, 200);
    assert_eq!(s.send("GET", "/healthz", None, None).await.0, 200);
    let (status, body) = s.send("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(json(&body)["openapi"].is_string());
    let (status, body) = s.send("GET", "/console", None, None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("BASE + path"),
        "the console calls the API beside it"
    );
    // The application's own routes are its own.
    let root = s.url.trim_end_matches("/auth");
    let page = reqwest::get(format!("{root}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page, "the team's own page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mounted_api_limits_the_address_the_application_saw() {
    let mock = MockProvider::start().await.unwrap();
    let by_address = LimitConfig {
        per_user: 0,
        per_address: 2,
        window: Duration::from_secs(900),
    };
    let (s, _dir) = mounted(&mock, by_address).await;
    let wrong =
        r#"{"flow_id":"email_password","step":0,"inputs":{"email":"a@b.c","password":"wrong"}}"#;
    for i in 0..2 {
        assert_eq!(s.login(&user(&format!("u{i}")), "acme", wrong).await.0, 200);
    }
    assert_eq!(s.login(&user("u9"), "acme", EMAIL_LOGIN).await.0, 429);
}

//! A provider that fails in any way is a 200 `success:false` with a short error, never the
//! provider's body, never a 500, and no session is stored.

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::*;
use std::time::Duration;

/// A provider whose login endpoint answers with `app`'s handler.
async fn provider(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn login_fails_with(base: &str, timeout: Option<Duration>, expected_error: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(base, dir.path());
    if let Some(t) = timeout {
        cfg.upstream_timeout = t;
    }
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let t = user("alice");
    let (status, body) = s.login(&t, "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["success"], false, "{body}");
    assert_eq!(v["next_step"], serde_json::Value::Null);
    assert_eq!(v["error"], expected_error, "{body}");
    assert!(!body.contains("SECRET-PROVIDER-BODY"), "{body}");
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":false}"#);
}

#[tokio::test]
async fn connection_refused() {
    // Bind and drop: nothing listens on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    login_fails_with(
        &format!("http://127.0.0.1:{port}"),
        None,
        "the provider could not be reached",
    )
    .await;
}

#[tokio::test]
async fn slower_than_the_timeout() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "{}"
        }),
    );
    let base = provider(app).await;
    login_fails_with(
        &base,
        Some(Duration::from_millis(300)),
        "the provider did not answer within 0.3 s",
    )
    .await;
}

#[tokio::test]
async fn http_500() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            (StatusCode::INTERNAL_SERVER_ERROR, "SECRET-PROVIDER-BODY").into_response()
        }),
    );
    login_fails_with(&provider(app).await, None, "the provider answered HTTP 500").await;
}

#[tokio::test]
async fn not_json() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async { "SECRET-PROVIDER-BODY <html>" }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer is not JSON",
    )
    .await;
}

#[tokio::test]
async fn extract_path_missing() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async {
            axum::Json(serde_json::json!({"data": {"note": "SECRET-PROVIDER-BODY"}}))
        }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer has no value at `$.data.access_token`",
    )
    .await;
}

#[tokio::test]
async fn an_answer_over_one_mebibyte() {
    let app = Router::new().route(
        "/v2/auth/login",
        post(|| async { "x".repeat(2 * 1024 * 1024) }),
    );
    login_fails_with(
        &provider(app).await,
        None,
        "the provider's answer is larger than 1 MiB",
    )
    .await;
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let other = provider(Router::new().route(
        "/v2/auth/login",
        post(|| async { axum::Json(serde_json::json!({"data": {"access_token": "stolen"}})) }),
    ))
    .await;
    let other = other.replace("127.0.0.1", "localhost");
    let app = Router::new().route(
        "/v2/auth/login",
        post(move || {
            let to = format!("{other}/v2/auth/login");
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]).into_response() }
        }),
    );
    login_fails_with(&provider(app).await, None, "the provider answered HTTP 307").await;
}

//! Indee admin auth (providers/indee.yaml) end to end against the Indee mock: password login,
//! a wrong password with the provider's message, SSO through the identity provider's page
//! shown as a link field (and a wrong code, then a retry), refresh after login, refresh with no
//! session, refresh after the provider revoked the session, and logout. The API key goes on
//! every request and nowhere else: not in an answer, not in the server's log.

mod common;

use common::*;
use otvi_mocks::indee::{code_from_page, IndeeMock, API_KEY, PASSWORD, SSO_EMAIL, USERNAME};
use serde_json::{json, Value};

const LOGIN: &str = "/v1/admin/auth/login";
const REFRESH: &str = "/v1/admin/auth/refresh";
const LOGOUT: &str = "/v1/admin/auth/logout";

async fn setup() -> (IndeeMock, TestServer) {
    let mock = IndeeMock::start().await.unwrap();
    let server = TestServer::start(&mock.url()).await;
    (mock, server)
}

fn password_login(password: &str) -> String {
    json!({"flow_id": "password", "step": 0, "inputs": {"username": USERNAME, "password": password}})
        .to_string()
}

fn sso_start() -> String {
    json!({"flow_id": "sso", "step": 0, "inputs": {"email": SSO_EMAIL}}).to_string()
}

fn sso_finish(code: &str) -> String {
    json!({"flow_id": "sso", "step": 1, "inputs": {"email": SSO_EMAIL, "code": code}}).to_string()
}

const REFRESH_FLOW: &str = r#"{"flow_id": "refresh", "step": 0}"#;

fn failed(error: &str) -> Value {
    json!({"success": false, "session_id": null, "next_step": null, "user_name": null, "error": error})
}

/// Every request the mock received carried the API key as a bearer token.
fn api_key_on_every_request(mock: &IndeeMock) {
    let all = mock.received();
    assert!(!all.is_empty());
    for r in all {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {API_KEY}").as_str()),
            "{}",
            r.path
        );
    }
}

/// The identity provider's page, fetched as the user's browser would, and the code on it.
async fn code_from(link: &str) -> String {
    let page = reqwest::get(link).await.unwrap();
    assert_eq!(page.status(), 200);
    code_from_page(&page.text().await.unwrap()).expect("the page shows a code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_login_keeps_the_tokens_and_sends_the_api_key() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "indee", &password_login(PASSWORD)).await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        json!({"success": true, "session_id": null, "next_step": null, "user_name": null, "error": null})
    );
    let sent = mock.received_on(LOGIN);
    assert_eq!(
        sent[0].json(),
        json!({"username": USERNAME, "password": PASSWORD, "extended_expiry": false})
    );
    let session = session_of(&s, "alice", "indee").await.unwrap();
    assert_eq!(session["token"], mock.issued_tokens()[0]);
    assert_eq!(session["refresh_token"], mock.issued_refresh_tokens()[0]);
    api_key_on_every_request(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_with_the_providers_message() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "indee", &password_login("nope")).await;
    assert_eq!(
        (status, json(&body)),
        (200, failed("Invalid username or password"))
    );
    assert_eq!(s.check(&t, "indee").await.1, r#"{"valid":false}"#);
    api_key_on_every_request(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_shows_the_identity_providers_page_as_a_link_then_signs_in_with_its_code() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "indee", &sso_start()).await;
    assert_eq!(status, 200);
    let v = json(&body);
    let fields = &v["next_step"]["fields"];
    let link = fields[0]["value"].as_str().unwrap().to_string();
    assert_eq!(
        v,
        json!({
            "success": false,
            "session_id": null,
            "next_step": {
                "step_index": 1,
                "step_name": "Finish Single Sign-On",
                "fields": [
                    {"key": "sso_page", "label": "Open this page, sign in, and copy the code it shows",
                     "field_type": "link", "required": false, "value": link},
                    {"key": "code", "label": "Code from the sign-in page", "field_type": "text", "required": true},
                ],
            },
            "user_name": null,
            "error": null,
        })
    );
    assert!(
        link.starts_with(&format!("{}/authorize?", mock.idp_url())),
        "{link}"
    );

    let code = code_from(&link).await;
    let (status, body) = s.login(&t, "indee", &sso_finish(&code)).await;
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(s.check(&t, "indee").await.1, r#"{"valid":true}"#);

    let initiate = &mock.received_on("/v1/admin/auth/sso/initiate")[0];
    let finish = &mock.received_on("/v1/admin/auth/sso/login")[0];
    assert_eq!(initiate.json(), json!({"username": SSO_EMAIL}));
    let f = finish.json();
    assert_eq!(f["email"], SSO_EMAIL);
    assert_eq!(f["code"], code);
    assert_eq!(f["error"], false);
    assert_eq!(f["error_description"], json!({}));
    assert!(link.contains(&format!("state={}", f["state"].as_str().unwrap())));
    assert!(link.contains(&format!("nonce={}", f["nonce"].as_str().unwrap())));
    api_key_on_every_request(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sso_code_fails_and_the_step_can_be_retried() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (_, body) = s.login(&t, "indee", &sso_start()).await;
    let link = json(&body)["next_step"]["fields"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code_from(&link).await;
    let (status, body) = s.login(&t, "indee", &sso_finish("not-the-code")).await;
    assert_eq!(
        (status, json(&body)),
        (200, failed("Invalid SSO authorization code"))
    );
    let (status, body) = s.login(&t, "indee", &sso_finish(&code)).await;
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(mock.received_on("/v1/admin/auth/sso/login").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_after_login_replaces_the_access_token() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "indee", &password_login(PASSWORD)).await;
    let (status, body) = s.login(&t, "indee", REFRESH_FLOW).await;
    assert_eq!(
        (status, json(&body)["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let sent = mock.received_on(REFRESH);
    assert_eq!(
        sent[0].json(),
        json!({"refresh_token": mock.issued_refresh_tokens()[0]})
    );
    let session = session_of(&s, "alice", "indee").await.unwrap();
    let tokens = mock.issued_tokens();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        session["token"], tokens[1],
        "the refreshed token replaced the first"
    );
    assert_eq!(session["refresh_token"], mock.issued_refresh_tokens()[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_without_a_session_fails_clearly_and_sends_nothing() {
    let (mock, s) = setup().await;
    let (status, body) = s.login(&user("alice"), "indee", REFRESH_FLOW).await;
    assert_eq!(
        (status, json(&body)),
        (
            200,
            failed("the provider session has no `refresh_token`; log in again")
        )
    );
    assert!(mock.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_the_provider_revoked_clears_the_session() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "indee", &password_login(PASSWORD)).await;
    // The provider logs the user out on its side (another device, an admin).
    let refresh = mock.issued_refresh_tokens()[0].clone();
    let r = reqwest::Client::new()
        .post(format!("{}{LOGOUT}", mock.url()))
        .bearer_auth(API_KEY)
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (status, body) = s.login(&t, "indee", REFRESH_FLOW).await;
    assert_eq!((status, json(&body)), (200, failed("Unauthorized")));
    assert_eq!(s.check(&t, "indee").await.1, r#"{"valid":false}"#);
    assert!(session_of(&s, "alice", "indee").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_sends_the_refresh_token_and_deletes_the_session() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "indee", &password_login(PASSWORD)).await;
    assert_eq!(
        s.logout(&t, "indee").await,
        (200, r#"{"success":true}"#.into())
    );
    let sent = mock.received_on(LOGOUT);
    assert_eq!(sent.len(), 1);
    let refresh = mock.issued_refresh_tokens()[0].clone();
    assert_eq!(sent[0].json(), json!({"refresh_token": refresh}));
    assert_eq!(mock.revoked_refresh_tokens(), vec![refresh]);
    assert_eq!(s.check(&t, "indee").await.1, r#"{"valid":false}"#);
    api_key_on_every_request(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_fails_with_the_providers_access_denied() {
    let mock = IndeeMock::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.secret_values
        .insert("INDEE_API_KEY".into(), "not-the-key".into());
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let (status, body) = s
        .login(&user("alice"), "indee", &password_login(PASSWORD))
        .await;
    assert_eq!((status, json(&body)), (200, failed("Access Denied")));
}

/// Every path through the real `otvi serve`, with debug logging on: the API key is in no
/// answer, no log line and no database file; neither are the password or the tokens the
/// provider issued in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_in_no_answer_no_log_line_and_no_database_file() {
    let mock = IndeeMock::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let real = RealServer::start(
        &[
            "--database-url".into(),
            format!("sqlite://{}", dir.path().join("o.db").display()),
            "--provider-base-url".into(),
            format!("indee={}", mock.url()),
        ],
        &[("RUST_LOG", "debug")],
    );
    let server = &real.server;
    let t = user("alice");
    let mut answers = Vec::new();
    answers.push(server.login(&t, "indee", &password_login("nope")).await);
    answers.push(server.login(&t, "indee", &password_login(PASSWORD)).await);
    answers.push(server.login(&t, "indee", REFRESH_FLOW).await);
    let start = server.login(&t, "indee", &sso_start()).await;
    let link = json(&start.1)["next_step"]["fields"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    answers.push(start);
    answers.push(server.login(&t, "indee", &sso_finish("wrong")).await);
    answers.push(
        server
            .login(&t, "indee", &sso_finish(&code_from(&link).await))
            .await,
    );
    answers.push(server.check(&t, "indee").await);
    answers.push(server.logout(&t, "indee").await);
    answers.push(
        server
            .send("GET", "/api/providers/indee", Some(&t), None)
            .await,
    );
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(!body.contains(API_KEY), "{body}");
    }
    api_key_on_every_request(&mock);

    let log = real.stop();
    assert!(log.contains("provider step"), "debug logging was on: {log}");
    let mut secrets = vec![API_KEY.to_string(), PASSWORD.to_string()];
    secrets.extend(mock.issued_tokens());
    secrets.extend(mock.issued_refresh_tokens());
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the log holds {s}: {log}");
    }
    // Nor the database: every SQLite file, the write-ahead log included.
    let files = files_in(dir.path());
    assert!(!files.is_empty());
    for (name, bytes) in files {
        for s in [API_KEY, PASSWORD] {
            assert!(!holds(&bytes, s), "{name} holds {s}");
        }
    }
}

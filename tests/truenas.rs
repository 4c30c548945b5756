//! TrueNAS auth.login_ex / login_ex_continue (providers/truenas.yaml) end to end against the
//! TrueNAS mock: success without two-factor, OTP required, a wrong code asked for again, too
//! many wrong codes, AUTH_ERR, EXPIRED and REDIRECT.

mod common;

use common::*;
use otvi_mocks::truenas::{
    TrueNasMock, EXPIRED_USER, MAX_OTP_ATTEMPTS, OTP, PLAIN, REDIRECT_USER, SESSION_COOKIE,
    TWO_FACTOR,
};
use serde_json::{json, Value};

const LOGIN_EX: &str = "/api/v2.0/auth/login_ex";
const CONTINUE: &str = "/api/v2.0/auth/login_ex_continue";

async fn setup() -> (TrueNasMock, TestServer) {
    let mock = TrueNasMock::start().await.unwrap();
    let server = TestServer::start(&mock.url()).await;
    (mock, server)
}

fn login(user: (&str, &str)) -> String {
    json!({"flow_id": "password", "step": 0, "inputs": {"username": user.0, "password": user.1}})
        .to_string()
}

fn otp(code: &str) -> String {
    json!({"flow_id": "password", "step": 1, "inputs": {"otp": code}}).to_string()
}

fn failed(error: &str) -> Value {
    json!({"success": false, "session_id": null, "next_step": null, "user_name": null, "error": error})
}

fn otp_prompt(error: Option<&str>) -> Value {
    json!({
        "success": false,
        "session_id": null,
        "next_step": {
            "step_index": 1,
            "step_name": "One-Time Password",
            "fields": [{"key": "otp", "label": "One-time password", "field_type": "text", "required": true}],
        },
        "user_name": null,
        "error": error,
    })
}

/// Does the mock accept `cookie` as an authenticated session.
async fn authenticated(mock: &TrueNasMock, cookie: &str) -> bool {
    reqwest::Client::new()
        .get(format!("{}/api/v2.0/auth/me", mock.url()))
        .header("Cookie", format!("{SESSION_COOKIE}={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_without_two_factor_keeps_the_authenticated_session() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "truenas", &login(PLAIN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        json!({"success": true, "session_id": null, "next_step": null, "user_name": PLAIN.0, "error": null})
    );
    // The tuple-array params, byte for byte what the seed describes.
    let sent = mock.received_on(LOGIN_EX);
    assert_eq!(
        sent[0].json(),
        json!([{"mechanism": "PASSWORD_PLAIN", "username": PLAIN.0, "password": PLAIN.1}])
    );
    let session = session_of(&s, "alice", "truenas").await.unwrap();
    assert!(
        authenticated(&mock, &session["session"]).await,
        "{session:?}"
    );
    assert!(mock.received_on(CONTINUE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otp_required_then_the_code_continues_on_the_same_session() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "truenas", &login(TWO_FACTOR)).await;
    assert_eq!((status, json(&body)), (200, otp_prompt(None)));
    assert_eq!(s.check(&t, "truenas").await.1, r#"{"valid":false}"#);

    let (status, body) = s.login(&t, "truenas", &otp(OTP)).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["success"], true, "{body}");
    assert_eq!(json(&body)["user_name"], TWO_FACTOR.0);
    assert_eq!(s.check(&t, "truenas").await.1, r#"{"valid":true}"#);

    let cont = mock.received_on(CONTINUE);
    assert_eq!(cont.len(), 1);
    assert_eq!(
        cont[0].json(),
        json!([{"mechanism": "OTP_TOKEN", "otp_token": OTP}])
    );
    let cookie = cont[0]
        .cookie(SESSION_COOKIE)
        .expect("the session cookie came back");
    let session = session_of(&s, "alice", "truenas").await.unwrap();
    assert_eq!(session["session"], cookie);
    assert!(authenticated(&mock, &cookie).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_is_asked_for_again_and_then_the_right_one_signs_in() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "truenas", &login(TWO_FACTOR)).await;
    let (status, body) = s.login(&t, "truenas", &otp("000000")).await;
    assert_eq!(
        (status, json(&body)),
        (
            200,
            otp_prompt(Some("That code was not accepted; enter the current one"))
        )
    );
    // The rejected code is never resent by the server.
    let (status, body) = s.login(&t, "truenas", &otp("")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(mock.received_on(CONTINUE).len(), 1);

    let (_, body) = s.login(&t, "truenas", &otp(OTP)).await;
    assert_eq!(json(&body)["success"], true, "{body}");
    assert_eq!(mock.received_on(CONTINUE).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_wrong_codes_end_in_auth_err() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "truenas", &login(TWO_FACTOR)).await;
    for _ in 1..MAX_OTP_ATTEMPTS {
        let (_, body) = s.login(&t, "truenas", &otp("111111")).await;
        assert_eq!(json(&body)["next_step"]["step_index"], 1, "{body}");
    }
    let (status, body) = s.login(&t, "truenas", &otp("111111")).await;
    assert_eq!(
        (status, json(&body)),
        (200, failed("Too many wrong codes; start again"))
    );
    assert_eq!(s.check(&t, "truenas").await.1, r#"{"valid":false}"#);
    assert!(session_of(&s, "alice", "truenas").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_err_expired_and_redirect_each_fail_with_their_message() {
    let (mock, s) = setup().await;
    let t = user("alice");
    for (creds, error) in [
        ((PLAIN.0, "wrong"), "Invalid username or password"),
        (
            EXPIRED_USER,
            "The account's credentials have expired; renew them on the server",
        ),
        (
            REDIRECT_USER,
            "This TrueNAS node is not the active one; sign in on the active node",
        ),
    ] {
        let (status, body) = s.login(&t, "truenas", &login(creds)).await;
        assert_eq!((status, json(&body)), (200, failed(error)), "{creds:?}");
        assert_eq!(s.check(&t, "truenas").await.1, r#"{"valid":false}"#);
    }
    assert_eq!(mock.received_on(LOGIN_EX).len(), 3);
    assert!(mock.received_on(CONTINUE).is_empty());
    let (status, _) = s.login(&t, "truenas", &otp(OTP)).await;
    assert_eq!(status, 400, "no run is pending");
}

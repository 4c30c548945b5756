//! Every row of the status table, in the documented order of checks. Every non-200 answer has
//! a JSON `{"error": …}` body; never 415 or 422.

mod common;

use common::*;
use otvi_mocks::acme::MockProvider;
use otvi_server::auth::{unix_now, Claims, Jwt};

async fn setup() -> (MockProvider, TestServer) {
    let mock = MockProvider::start().await.unwrap();
    let server = TestServer::start(&mock.url()).await;
    (mock, server)
}

fn assert_error(status: u16, expected: u16, body: &str) {
    assert_eq!(status, expected, "{body}");
    let v = json(body);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_on_every_api_route() {
    let (_mock, s) = setup().await;
    let wrong_secret = Jwt::new(b"another-secret").sign(&claims("alice"));
    let expired = sign(&Claims {
        exp: unix_now() - 10,
        ..claims("alice")
    });
    for token in [
        None,
        Some("garbage"),
        Some(wrong_secret.as_str()),
        Some(expired.as_str()),
    ] {
        for (method, path) in [
            ("POST", "/api/providers/acme/auth/login"),
            ("GET", "/api/providers/acme/auth/check"),
            ("POST", "/api/providers/acme/auth/logout"),
            ("GET", "/api/providers"),
            ("GET", "/api/providers/acme"),
            // 401 comes before 404.
            ("GET", "/api/providers/nope/auth/check"),
        ] {
            let (status, body) = s.send(method, path, token, Some(EMAIL_LOGIN)).await;
            assert_error(status, 401, &body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_change_password_is_403_before_404() {
    let (_mock, s) = setup().await;
    let t = sign(&Claims {
        must_change_password: true,
        ..claims("alice")
    });
    assert_error(
        s.login(&t, "acme", EMAIL_LOGIN).await.0,
        403,
        &s.login(&t, "acme", EMAIL_LOGIN).await.1,
    );
    let (status, body) = s.check(&t, "nope").await;
    assert_error(status, 403, &body);
    assert_eq!(json(&body)["error"], "password change required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_provider_is_404() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    for (status, body) in [
        s.login(&t, "nope", EMAIL_LOGIN).await,
        s.check(&t, "nope").await,
        s.logout(&t, "nope").await,
        s.send("GET", "/api/providers/nope", Some(&t), None).await,
    ] {
        assert_error(status, 404, &body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_outside_the_allow_list_is_403() {
    let (_mock, s) = setup().await;
    let t = sign(&Claims {
        providers: Some(vec!["acme-shared".into()]),
        ..claims("alice")
    });
    for (status, body) in [
        s.login(&t, "acme", EMAIL_LOGIN).await,
        s.check(&t, "acme").await,
        s.logout(&t, "acme").await,
    ] {
        assert_error(status, 403, &body);
        assert_eq!(json(&body)["error"], "provider access denied");
    }
    // An empty allow-list allows everything.
    let t = sign(&Claims {
        providers: Some(vec![]),
        ..claims("alice")
    });
    assert_eq!(s.check(&t, "acme").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_non_admin_credential_actions_are_403_before_body_checks() {
    let (_mock, s) = setup().await;
    let (status, body) = s.login(&user("bob"), "acme-shared", "not json").await;
    assert_error(status, 403, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_login_bodies_are_400_never_415_or_422() {
    let (mock, s) = setup().await;
    let t = user("alice");
    for body in [
        "not json",
        "[1, 2]",
        r#"{"step": 0, "inputs": {}}"#,
        r#"{"flow_id": 7, "step": 0}"#,
        r#"{"flow_id": "email_password", "inputs": {}}"#,
        r#"{"flow_id": "email_password", "step": -1}"#,
        r#"{"flow_id": "email_password", "step": "0"}"#,
        r#"{"flow_id": "email_password", "step": 0.5}"#,
        r#"{"flow_id": "email_password", "step": 0, "inputs": []}"#,
    ] {
        let (status, answer) = s.login(&t, "acme", body).await;
        assert_error(status, 400, &answer);
    }
    // Body checks come before the flow lookup.
    let (status, answer) = s.login(&t, "acme", r#"{"flow_id": "nope"}"#).await;
    assert_error(status, 400, &answer);
    assert!(mock.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_without_content_type_is_accepted() {
    let (_mock, s) = setup().await;
    let r = s
        .client
        .post(format!("{}/api/providers/acme/auth/login", s.url))
        .header("Authorization", format!("Bearer {}", user("alice")))
        .body(EMAIL_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .client
        .post(format!("{}/api/providers/acme/auth/login", s.url))
        .header("Authorization", format!("Bearer {}", user("alice")))
        .header("Content-Type", "text/plain")
        .body(EMAIL_LOGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flow_is_404() {
    let (_mock, s) = setup().await;
    let (status, body) = s
        .login(
            &user("alice"),
            "acme",
            r#"{"flow_id": "sso", "step": 0, "inputs": {}}"#,
        )
        .await;
    assert_error(status, 404, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_problems_are_400() {
    let (mock, s) = setup().await;
    let t = user("alice");
    for body in [
        // out of range
        r#"{"flow_id": "email_password", "step": 1, "inputs": {}}"#,
        r#"{"flow_id": "phone_otp", "step": 2, "inputs": {}}"#,
        // not expected: no pending run
        r#"{"flow_id": "phone_otp", "step": 1, "inputs": {"otp": "1"}}"#,
        // a required input missing, or empty
        r#"{"flow_id": "email_password", "step": 0, "inputs": {"email": "a@b.c"}}"#,
        r#"{"flow_id": "email_password", "step": 0, "inputs": {"email": "a@b.c", "password": ""}}"#,
        r#"{"flow_id": "email_password", "step": 0}"#,
    ] {
        let (status, answer) = s.login(&t, "acme", body).await;
        assert_error(status, 400, &answer);
    }
    let (_, answer) = s
        .login(
            &t,
            "acme",
            r#"{"flow_id": "email_password", "step": 0, "inputs": {"email": "a@b.c"}}"#,
        )
        .await;
    assert!(
        json(&answer)["error"]
            .as_str()
            .unwrap()
            .contains("`password`"),
        "{answer}"
    );
    let long = "x".repeat(4097);
    let body = format!(
        r#"{{"flow_id": "email_password", "step": 0, "inputs": {{"email": "a@b.c", "password": "{long}"}}}}"#
    );
    assert_error(
        s.login(&t, "acme", &body).await.0,
        400,
        &s.login(&t, "acme", &body).await.1,
    );
    assert!(mock.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_missing_otp_in_step_one_is_400_naming_it() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(
        &t,
        "acme",
        r#"{"flow_id":"phone_otp","step":0,"inputs":{"phone":"1"}}"#,
    )
    .await;
    let (status, body) = s
        .login(
            &t,
            "acme",
            r#"{"flow_id":"phone_otp","step":1,"inputs":{}}"#,
        )
        .await;
    assert_error(status, 400, &body);
    assert!(json(&body)["error"].as_str().unwrap().contains("`otp`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_answer_json_404() {
    let (_mock, s) = setup().await;
    let (status, body) = s.send("GET", "/nope", None, None).await;
    assert_error(status, 404, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_answers_json_405() {
    let (_mock, s) = setup().await;
    let (status, body) = s
        .send(
            "GET",
            "/api/providers/acme/auth/login",
            Some(&user("alice")),
            None,
        )
        .await;
    assert_error(status, 405, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_400() {
    let (_mock, s) = setup().await;
    let big = format!(
        r#"{{"flow_id":"email_password","step":0,"inputs":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    let (status, body) = s.login(&user("alice"), "acme", &big).await;
    assert_error(status, 400, &body);
}

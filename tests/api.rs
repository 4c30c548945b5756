//! The seed's API end to end over real HTTP: the server and a mock provider on loopback.

mod common;

use common::*;
use otvi_mocks::acme::{MockProvider, OTP};

const PHONE: &str = "+15551234567";
const PHONE_B64: &str = "KzE1NTUxMjM0NTY3";

fn otp_step0() -> String {
    format!(r#"{{"flow_id":"phone_otp","step":0,"inputs":{{"phone":"{PHONE}"}}}}"#)
}

fn otp_step1(code: &str) -> String {
    format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"phone":"{PHONE}","otp":"{code}"}}}}"#)
}

async fn setup() -> (MockProvider, TestServer) {
    let mock = MockProvider::start().await.unwrap();
    let server = TestServer::start(&mock.url()).await;
    (mock, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_step_login_answers_the_seed_shape_byte_for_byte() {
    let (_mock, s) = setup().await;
    let (status, body) = s.login(&user("alice"), "acme", EMAIL_LOGIN).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"success":true,"session_id":null,"next_step":null,"user_name":"alice","error":null}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_step_login_prompts_then_completes() {
    let (mock, s) = setup().await;
    let t = user("alice");
    let (status, body) = s.login(&t, "acme", &otp_step0()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"success":false,"session_id":null,"next_step":{"step_index":1,"step_name":"Verify Code","fields":[{"key":"otp","label":"Enter Verification Code","field_type":"text","required":true}]},"user_name":null,"error":null}"#
    );
    assert_eq!(
        s.check(&t, "acme").await.1,
        r#"{"valid":false}"#,
        "not complete yet"
    );
    let (status, body) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["success"], true, "{body}");
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":true}"#);

    // The phone number arrived base64-encoded; step 1 sent the extracted request_id.
    let sent = mock.received_on("/v2/auth/otp/send");
    assert_eq!(sent[0].json()["phone_number"], PHONE_B64);
    assert_eq!(sent[0].json()["country_code"], "+1");
    let verify = mock.received_on("/v2/auth/otp/verify");
    assert_eq!(verify[0].json()["phone_number"], PHONE_B64);
    assert!(verify[0].json()["request_id"]
        .as_str()
        .unwrap()
        .starts_with("req-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_one_may_carry_only_the_new_field() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "acme", &otp_step0()).await;
    let body = format!(r#"{{"flow_id":"phone_otp","step":1,"inputs":{{"otp":"{OTP}"}}}}"#);
    let (status, body) = s.login(&t, "acme", &body).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_can_be_retried() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "acme", &otp_step0()).await;
    let (status, body) = s.login(&t, "acme", &otp_step1("000000")).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"], "the provider answered HTTP 401");
    assert_eq!(s.check(&t, "acme").await.1, r#"{"valid":false}"#);
    let (_, body) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(json(&body)["success"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_one_without_a_pending_run_is_400_and_sends_nothing() {
    let (mock, s) = setup().await;
    let (status, body) = s.login(&user("alice"), "acme", &otp_step1(OTP)).await;
    assert_eq!(status, 400);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("not expected"));
    assert!(mock.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_step_zero_discards_the_pending_run() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "acme", &otp_step0()).await;
    s.login(&t, "acme", EMAIL_LOGIN).await;
    let (status, _) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_false_before_login_true_after_and_false_after_logout() {
    let (mock, s) = setup().await;
    let t = user("alice");
    assert_eq!(
        s.check(&t, "acme").await,
        (200, r#"{"valid":false}"#.into())
    );
    s.login(&t, "acme", EMAIL_LOGIN).await;
    assert_eq!(s.check(&t, "acme").await, (200, r#"{"valid":true}"#.into()));
    assert_eq!(
        s.logout(&t, "acme").await,
        (200, r#"{"success":true}"#.into())
    );
    assert_eq!(
        s.check(&t, "acme").await,
        (200, r#"{"valid":false}"#.into())
    );

    // Logout sent the access token the login extracted.
    assert_eq!(mock.received_on("/v2/auth/login").len(), 1);
    let out = mock.received_on("/v2/auth/logout");
    assert_eq!(out.len(), 1);
    let issued = mock.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        out[0].header("authorization"),
        Some(format!("Bearer {}", issued[0]).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_bearer_is_the_extracted_access_token() {
    let (mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "acme", EMAIL_LOGIN).await;
    s.logout(&t, "acme").await;
    // The mock answers 200 only for a token it issued: the logout call reached it with one.
    let out = mock.received_on("/v2/auth/logout");
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].header("user-agent"),
        Some("otvi/1"),
        "defaults.headers apply to logout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_a_session_succeeds_and_calls_nothing() {
    let (mock, s) = setup().await;
    assert_eq!(
        s.logout(&user("alice"), "acme").await,
        (200, r#"{"success":true}"#.into())
    );
    assert!(mock.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_per_user() {
    let (_mock, s) = setup().await;
    s.login(&user("alice"), "acme", EMAIL_LOGIN).await;
    assert_eq!(s.check(&user("alice"), "acme").await.1, r#"{"valid":true}"#);
    assert_eq!(s.check(&user("bob"), "acme").await.1, r#"{"valid":false}"#);
    s.logout(&user("bob"), "acme").await;
    assert_eq!(s.check(&user("alice"), "acme").await.1, r#"{"valid":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_scope_is_shared_and_admin_only_for_credentials() {
    let (_mock, s) = setup().await;
    let (status, body) = s.login(&user("bob"), "acme-shared", EMAIL_LOGIN).await;
    assert_eq!(status, 403);
    assert!(json(&body)["error"].is_string());
    assert_eq!(s.logout(&user("bob"), "acme-shared").await.0, 403);
    assert_eq!(
        s.check(&user("bob"), "acme-shared").await,
        (200, r#"{"valid":false}"#.into())
    );

    let (status, body) = s.login(&admin("root"), "acme-shared", EMAIL_LOGIN).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(
        s.check(&user("bob"), "acme-shared").await.1,
        r#"{"valid":true}"#
    );
    assert_eq!(
        s.check(&user("carol"), "acme-shared").await.1,
        r#"{"valid":true}"#
    );
    s.logout(&admin("other-admin"), "acme-shared").await;
    assert_eq!(
        s.check(&user("bob"), "acme-shared").await.1,
        r#"{"valid":false}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_with_json_metacharacters_arrives_byte_exact() {
    let (mock, s) = setup().await;
    let password = "a\"b\\c\nd\",\"admin\":true,\n\"x\":\"";
    let body = serde_json::json!({
        "flow_id": "email_password", "step": 0,
        "inputs": { "email": "alice@example.com", "password": password }
    });
    let (status, answer) = s.login(&user("alice"), "acme", &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let got = &mock.received_on("/v2/auth/login")[0];
    let sent: serde_json::Value = serde_json::from_slice(&got.body).expect("well-formed JSON");
    assert_eq!(sent["password"], password);
    assert_eq!(
        sent.as_object().unwrap().len(),
        3,
        "no injected keys: {sent}"
    );
    assert!(sent.get("admin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_listing_shows_flows_and_fields() {
    let (_mock, s) = setup().await;
    let (status, body) = s
        .send("GET", "/api/providers", Some(&user("alice")), None)
        .await;
    assert_eq!(status, 200);
    let v = json(&body);
    let acme = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "acme")
        .unwrap();
    assert_eq!(acme["scope"], "per_user");
    assert_eq!(acme["auth_flows"][1]["id"], "phone_otp");
    assert_eq!(
        acme["auth_flows"][0]["fields"][1],
        serde_json::json!({"key": "password", "label": "Password", "field_type": "password", "required": true})
    );
    let (status, body) = s
        .send(
            "GET",
            "/api/providers/acme-shared",
            Some(&user("alice")),
            None,
        )
        .await;
    assert_eq!(
        (status, json(&body)["scope"].as_str()),
        (200, Some("global"))
    );
    let limited = sign(&otvi_server::auth::Claims {
        providers: Some(vec!["acme".into()]),
        ..claims("alice")
    });
    let (_, body) = s.send("GET", "/api/providers", Some(&limited), None).await;
    assert_eq!(json(&body).as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let (mock, s) = setup().await;
    let t = user("alice");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = s
            .client
            .get(format!("{}/api/providers/acme/auth/check", s.url))
            .header("authorization", format!("{scheme} {t}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
        let r = s
            .client
            .get(format!("{}/api/providers", s.url))
            .header("authorization", format!("{scheme}  {t} "))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme} with extra spaces");
    }
    for header in ["Basic abc", "Bearer", "Bearer ", &format!("Token {t}")] {
        let r = s
            .client
            .get(format!("{}/api/providers", s.url))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
    }
    // The metrics token too.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.metrics_token = Some("scrape-me".into());
    let m = TestServer::start_with(cfg, Some(dir)).await;
    for (header, want) in [
        ("BEARER scrape-me", 200),
        ("bearer scrape-me", 200),
        ("Bearer scrape-me", 200),
        ("BEARER wrong", 401),
        ("scrape-me", 401),
    ] {
        let r = m
            .client
            .get(format!("{}/metrics", m.url))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_need_no_token() {
    let (_mock, s) = setup().await;
    assert_eq!(s.send("GET", "/healthz", None, None).await.0, 200);
    assert_eq!(s.send("GET", "/readyz", None, None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_users_log_in_concurrently_each_with_their_own_session() {
    let (_mock, s) = setup().await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let t = user(&format!("user{i}"));
            let body = format!(
                r#"{{"flow_id":"email_password","step":0,"inputs":{{"email":"user{i}@example.com","password":"pw"}}}}"#
            );
            let (status, body) = s.login(&t, "acme", &body).await;
            (i, status, body)
        }));
    }
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["user_name"], format!("user{i}"), "{body}");
    }
    for i in 0..100 {
        assert_eq!(
            s.check(&user(&format!("user{i}")), "acme").await.1,
            r#"{"valid":true}"#
        );
    }
    assert_eq!(
        s.check(&user("user100"), "acme").await.1,
        r#"{"valid":false}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_run_survives_a_restart() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = user("alice");
    {
        let s = TestServer::start_with(config(&mock.url(), dir.path()), None).await;
        s.login(&t, "acme", &otp_step0()).await;
    }
    let s = TestServer::start_with(config(&mock.url(), dir.path()), None).await;
    let (status, body) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pending_run_no_longer_accepts_its_next_step() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.pending_ttl = std::time::Duration::ZERO;
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let t = user("alice");
    let (_, body) = s.login(&t, "acme", &otp_step0()).await;
    assert_eq!(json(&body)["next_step"]["step_index"], 1);
    let (status, _) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_new_step_zero_also_discards_the_pending_run() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    s.login(&t, "acme", &otp_step0()).await;
    let wrong =
        r#"{"flow_id":"email_password","step":0,"inputs":{"email":"a@b.c","password":"wrong"}}"#;
    let (_, body) = s.login(&t, "acme", wrong).await;
    assert_eq!(json(&body)["success"], false);
    let (status, _) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(status, 400);
}

/// The server answers login, check and logout itself and leaves every other request to the
/// router: an id written percent-encoded, `HEAD`, another method and an id that does not
/// decode are answered as the router answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_routes_take_ids_and_methods_as_the_router_does() {
    let (_mock, s) = setup().await;
    let t = user("alice");
    // `ac%6De` is `acme`, as the router's `Path` decodes it.
    let (status, body) = s.login(&t, "ac%6De", EMAIL_LOGIN).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(
        s.check(&t, "ac%6De").await,
        (200, r#"{"valid":true}"#.into())
    );
    assert_eq!(
        s.check(&t, "a%2Fb").await,
        (404, r#"{"error":"provider `a/b` not found"}"#.into())
    );
    // HEAD is GET without the body.
    let head = s
        .client
        .head(format!("{}/api/providers/acme/auth/check", s.url))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "14");
    assert_eq!(head.text().await.unwrap(), "");
    // Another method: 405 with the methods the route takes.
    for (method, path, allow) in [
        ("PUT", "/api/providers/acme/auth/check", "GET,HEAD"),
        ("GET", "/api/providers/acme/auth/login", "POST"),
        ("DELETE", "/api/providers/acme/auth/logout", "POST"),
    ] {
        let r = s
            .client
            .request(method.parse().unwrap(), format!("{}{path}", s.url))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert!(json(&r.text().await.unwrap())["error"].is_string());
    }
    // An id that is not UTF-8 once decoded: 400 with a token, and without one 401 first, as
    // on any other path; JSON either way, HEAD included (its body left out).
    for (method, path) in [
        ("POST", "/api/providers/%FF/auth/login"),
        ("GET", "/api/providers/%FF/auth/check"),
        ("HEAD", "/api/providers/%FF/auth/check"),
        ("POST", "/api/providers/%FF/auth/logout"),
        ("GET", "/api/providers/%FF"),
        ("HEAD", "/api/providers/%FF"),
        ("POST", "/api/providers/ac%FFme/auth/login"),
    ] {
        for (token, want) in [(Some(t.as_str()), 400), (None, 401)] {
            let mut rb = s
                .client
                .request(method.parse().unwrap(), format!("{}{path}", s.url))
                .header("content-type", "application/json")
                .body(EMAIL_LOGIN);
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), want, "{method} {path}");
            assert_eq!(
                r.headers()["content-type"],
                "application/json",
                "{method} {path}"
            );
            let body = r.text().await.unwrap();
            if method == "HEAD" {
                assert_eq!(body, "");
            } else {
                assert!(json(&body)["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    // Another method on such a path is still 405, with the methods the route takes.
    let r = s
        .client
        .delete(format!("{}/api/providers/%FF/auth/check", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(json(&r.text().await.unwrap())["error"].is_string());
    assert_eq!(
        s.logout(&t, "ac%6De").await,
        (200, r#"{"success":true}"#.into())
    );
    assert_eq!(
        s.check(&t, "acme").await,
        (200, r#"{"valid":false}"#.into())
    );
}

/// acme's `request_id` is extracted with `keep: run`: the verify step reads it, a pending run
/// keeps it sealed (across a restart), and the completed session never holds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_kept_for_the_run_serves_its_next_step_but_never_the_session() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = user("alice");
    {
        let s = TestServer::start_with(config(&mock.url(), dir.path()), None).await;
        let (_, body) = s.login(&t, "acme", &otp_step0()).await;
        assert!(json(&body)["next_step"].is_object(), "{body}");
    }
    let s = TestServer::start_with(config(&mock.url(), dir.path()), None).await;
    let pool = sqlx::SqlitePool::connect(&s.database_url).await.unwrap();
    let (extracted,): (String,) =
        sqlx::query_as("SELECT extracted FROM pending_runs WHERE owner = 'alice'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(extracted.starts_with("otvi1:"), "sealed: {extracted}");
    assert!(!extracted.contains("req-"), "{extracted}");

    let (status, body) = s.login(&t, "acme", &otp_step1(OTP)).await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let verify = mock.received_on("/v2/auth/otp/verify");
    assert!(verify[0].json()["request_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("req-")));
    let session = session_of(&s, "alice", "acme").await.unwrap();
    assert!(session.contains_key("access_token"), "{session:?}");
    assert!(!session.contains_key("request_id"), "{session:?}");
}

/// A second login replaces the user's session: the old one is logged out at the provider
/// once the new one is written. A provider that refuses that logout (the session already ended there) does not
/// fail the new login, and another user's session is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_login_logs_out_the_provider_session_it_replaces() {
    let (mock, s) = setup().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let ok = |(status, body): (u16, String)| {
        assert_eq!(
            (status, json(&body)["success"].as_bool()),
            (200, Some(true)),
            "{body}"
        );
    };
    ok(s.login(&bob, "acme", EMAIL_LOGIN).await);
    ok(s.login(&alice, "acme", EMAIL_LOGIN).await);
    let bobs = session_of(&s, "bob", "acme").await.unwrap()["access_token"].clone();
    let first = session_of(&s, "alice", "acme").await.unwrap()["access_token"].clone();
    assert!(mock.received_on("/v2/auth/logout").is_empty());

    ok(s.login(&alice, "acme", EMAIL_LOGIN).await);
    let second = session_of(&s, "alice", "acme").await.unwrap()["access_token"].clone();
    assert_ne!(first, second);
    let logouts = mock.received_on("/v2/auth/logout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(
        logouts[0].header("authorization"),
        Some(format!("Bearer {first}").as_str())
    );
    let mut live = mock.live_tokens();
    live.sort();
    let mut expected = vec![bobs.clone(), second.clone()];
    expected.sort();
    assert_eq!(live, expected, "alice's first provider session is gone");

    // The provider ended alice's session on its own: its logout answers 401, the login works.
    mock.revoke(&second);
    ok(s.login(&alice, "acme", EMAIL_LOGIN).await);
    assert_eq!(mock.received_on("/v2/auth/logout").len(), 2);
    let third = session_of(&s, "alice", "acme").await.unwrap()["access_token"].clone();
    let mut live = mock.live_tokens();
    live.sort();
    let mut expected = vec![bobs, third];
    expected.sort();
    assert_eq!(live, expected);
    assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":true}"#);
}

/// acme's file has `auth.check`: `check` asks the provider (once per cache lifetime), a
/// session the provider revoked is answered `valid: false` and cleared, and a provider that
/// cannot be reached gets the file's `unreachable` answer (valid) with the session kept.
#[tokio::test(flavor = "multi_thread")]
async fn check_asks_the_provider_and_clears_a_session_it_revoked() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    {
        let s = TestServer::start_with(config(&mock.url(), dir.path()), None).await;
        for t in [&alice, &bob, &carol] {
            let (_, body) = s.login(t, "acme", EMAIL_LOGIN).await;
            assert_eq!(json(&body)["success"], true, "{body}");
        }
        let asked = || mock.received_on("/v2/auth/session").len();
        assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":true}"#);
        assert_eq!(asked(), 1);
        let token = session_of(&s, "alice", "acme").await.unwrap()["access_token"].clone();
        assert_eq!(
            mock.received_on("/v2/auth/session")[0].header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        // Within the cache lifetime the provider is not asked again.
        assert_eq!(s.check(&alice, "acme").await.1, r#"{"valid":true}"#);
        assert_eq!(asked(), 1);

        // The provider revokes bob's session while bob signs in again (a pending run waits
        // for his code): check says so and clears the session, not the sign-in under way.
        let bobs = session_of(&s, "bob", "acme").await.unwrap()["access_token"].clone();
        mock.revoke(&bobs);
        let (_, body) = s.login(&bob, "acme", &otp_step0()).await;
        assert_eq!(json(&body)["next_step"]["step_index"], 1, "{body}");
        assert_eq!(s.check(&bob, "acme").await.1, r#"{"valid":false}"#);
        assert_eq!(asked(), 2);
        assert!(session_of(&s, "bob", "acme").await.is_none());
        let (_, body) = s.login(&bob, "acme", &otp_step1(OTP)).await;
        assert_eq!(json(&body)["success"], true, "{body}");
        assert_eq!(s.check(&bob, "acme").await.1, r#"{"valid":true}"#);
        assert_eq!(asked(), 3);
        assert_eq!(s.logout(&bob, "acme").await.0, 200);
        assert_eq!(s.check(&bob, "acme").await.1, r#"{"valid":false}"#);
        assert_eq!(asked(), 3, "no session, nothing to ask");
    }
    // The provider cannot be reached: the file's answer (valid), and carol keeps her session.
    let mut cfg = config("http://127.0.0.1:9", dir.path());
    cfg.upstream_timeout = std::time::Duration::from_secs(2);
    let s = TestServer::start_with(cfg, None).await;
    assert_eq!(s.check(&carol, "acme").await.1, r#"{"valid":true}"#);
    assert!(session_of(&s, "carol", "acme").await.is_some());
    assert_eq!(s.check(&bob, "acme").await.1, r#"{"valid":false}"#);
}

//! The fixture provider's generated code (tests/fixtures/fixture.rs, a snapshot the codegen
//! tests keep in step with fixture.yaml) run against a recording provider: every encoding
//! arrives as the language page says.

#[rustfmt::skip]
#[path = "fixtures/fixture.rs"]
mod fixture;

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use common::{json, sealer, user, TestServer, SECRET};
use otvi_server::api::{router, AppState};
use otvi_server::auth::Jwt;
use otvi_server::store::Store;
use otvi_server::upstream::Upstream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: String,
}

async fn recording_provider() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let body = String::from_utf8_lossy(&body).into_owned();
                if uri.path().starts_with("/api/redirect/") {
                    // Followed, this would lead to a 201 that no outcome of the step expects.
                    let key = headers.get("x-key").and_then(|v| v.to_str().ok());
                    let echo =
                        serde_json::json!({ "echo": format!("your key is {}", key.unwrap_or("")) });
                    log.lock().unwrap().push(Seen {
                        method,
                        uri: uri.to_string(),
                        headers,
                        body,
                    });
                    return (
                        StatusCode::FOUND,
                        [("location", "/api/elsewhere")],
                        axum::Json(echo),
                    )
                        .into_response();
                }
                let status = if uri.path().contains("ok200") {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                log.lock().unwrap().push(Seen {
                    method,
                    uri: uri.to_string(),
                    headers,
                    body,
                });
                (
                    status,
                    axum::Json(serde_json::json!({"token": "t/1", "name": "Fix"})),
                )
                    .into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

async fn server(base: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = server_on(base, &dir.path().join("f.db")).await;
    (s, dir)
}

async fn server_on(base: &str, db: &std::path::Path) -> TestServer {
    let store = Store::connect(&format!("sqlite://{}", db.display()), sealer())
        .await
        .unwrap();
    static PROVIDERS: &[&otvi_runtime::def::ProviderDef] = &[&fixture::PROVIDER];
    let app = router(AppState {
        providers: PROVIDERS,
        metrics: otvi_server::metrics::Metrics::new(&store),
        metrics_token: None,
        store,
        upstream: Upstream::new(Duration::from_secs(5)),
        jwt: Jwt::new(SECRET.as_bytes()),
        base_urls: [("fixture".to_string(), format!("{base}/api/"))].into(),
        pending_ttl: Duration::from_secs(600),
        secrets: otvi_runtime::secrets::load(PROVIDERS.iter().map(|p| (p.id, p.secrets)), |var| {
            (var == "FIXTURE_KEY").then(|| FIXTURE_KEY.to_string())
        })
        .unwrap(),
        limits: Default::default(),
        client_ip_header: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = otvi_server::api::serve(listener, app, std::future::pending()).await;
    });
    TestServer::from_parts(url, task)
}

const FIXTURE_KEY: &str = "fixture-key-2b7d";

fn login(user: &str, secret: &str, device: Option<&str>) -> String {
    let mut inputs = serde_json::json!({ "user": user, "secret": secret, "region": "eu west" });
    if let Some(d) = device {
        inputs["device"] = d.into();
    }
    serde_json::json!({ "flow_id": "form_login", "step": 0, "inputs": inputs }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_is_encoded_for_where_it_stands() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let t = user("alice");
    let (status, body) = s
        .login(&t, "fixture", &login("a/b c?", "p&=", Some("tv-1")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["success"], true, "{body}");
    assert_eq!(json(&body)["user_name"], "Fix");

    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(req.method, Method::POST);
    let (path, query) = req.uri.split_once('?').unwrap();
    assert_eq!(
        path, "/api/users/a%2Fb%20c%3F/token",
        "one path segment, base URL prefix kept"
    );
    assert!(query.starts_with("region=eu+west&day="), "{query}");
    assert_eq!(query.len(), "region=eu+west&day=".len() + 8, "{query}");
    assert_eq!(req.headers["x-device"], "tv-1");
    let clients: Vec<_> = req.headers.get_all("x-client").iter().collect();
    assert_eq!(
        clients,
        ["fixture"],
        "the step's header replaces the default"
    );
    assert_eq!(
        req.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let (fixed, nonce) = req.body.rsplit_once("&nonce=").unwrap();
    assert_eq!(fixed, "username=a%2Fb+c%3F&password=p%26%3D");
    assert_eq!(nonce.len(), 36, "a UUID: {nonce}");

    // Logout sends the stored token as one path segment.
    assert_eq!(s.logout(&t, "fixture").await.0, 200);
    let out = seen.lock().unwrap()[1].clone();
    assert_eq!(
        (out.method, out.uri.as_str()),
        (Method::DELETE, "/api/session/t%2F1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_input_may_be_absent() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let (status, body) = s
        .login(&user("alice"), "fixture", &login("bob", "pw", None))
        .await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(seen.lock().unwrap()[0].headers["x-device"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_leaves_absent_optional_inputs_out_and_sends_numbers_as_numbers() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let t = user("alice");
    let login = |inputs: serde_json::Value| {
        serde_json::json!({ "flow_id": "json_login", "step": 0, "inputs": inputs }).to_string()
    };

    // Username only: no `email` key, no `age` key, the list without the email's element.
    let (status, body) = s
        .login(
            &t,
            "fixture",
            &login(serde_json::json!({ "username": "al\"ice", "email": "", "secret": "p\"\\", "pin": "1234" })),
        )
        .await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(req.uri, "/api/json/login");
    assert_eq!(req.headers["content-type"], "application/json");
    assert!(
        req.body.contains(r#""pin":1234,"#),
        "a number, as sent: {}",
        req.body
    );
    assert!(
        req.body.contains(r#""big":12345678901234567890,"#),
        "a literal's digits, as written: {}",
        req.body
    );
    let mut sent = json(&req.body);
    let id = sent["device"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("dev-") && id.len() == 4 + 36, "{id}");
    sent["device"]["id"] = "dev-<uuid>".into();
    assert_eq!(
        sent,
        serde_json::json!({
            "username": "al\"ice",
            "password": "p\"\\",
            "pin": 1234,
            "remember": true,
            "retries": 3,
            "big": 12345678901234567890u64,
            "ratio": 1.5,
            "note": null,
            "quoted": "42",
            "odd \"key\"": "say \"p\"\\\"\n",
            "device": { "id": "dev-<uuid>", "tags": ["tv", "al\"ice"] },
        })
    );

    // Email only, and an optional number given: the other way round.
    let (status, body) = s
        .login(
            &t,
            "fixture",
            &login(serde_json::json!({ "email": "a@b.example", "secret": "pw", "pin": "-2.5e1", "age": "30" })),
        )
        .await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let sent = json(&seen.lock().unwrap()[1].body);
    assert!(sent.get("username").is_none(), "{sent}");
    assert_eq!(sent["email"], "a@b.example");
    assert_eq!(
        (sent["pin"].as_f64(), sent["age"].as_i64()),
        (Some(-25.0), Some(30))
    );
    assert_eq!(sent["device"]["tags"], serde_json::json!(["tv"]));

    // A number input that is not a number is refused, and nothing is sent.
    for (pin, age) in [("12a", "1"), ("1234", " 30"), ("0x10", "")] {
        let (status, body) = s
            .login(
                &t,
                "fixture",
                &login(
                    serde_json::json!({ "username": "al", "secret": "pw", "pin": pin, "age": age }),
                ),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let bad = if pin == "1234" { "age" } else { "pin" };
        assert_eq!(
            json(&body)["error"],
            format!("input `{bad}` must be a number")
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_value_with_a_line_break_is_400_and_never_sent() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    for bad in ["tv\r\nX-Admin: 1", "tv\n", "tv\0"] {
        let (status, body) = s
            .login(&user("alice"), "fixture", &login("bob", "pw", Some(bad)))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains("X-Device"),
            "{body}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_segment_in_the_path_is_400_and_never_sent() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    for bad in [".", ".."] {
        let (status, body) = s
            .login(&user("alice"), "fixture", &login(bad, "pw", None))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains("URL path"),
            "{body}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_status_must_match_exactly() {
    let (base, _seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let (status, body) = s
        .login(&user("alice"), "fixture", &login("ok200", "pw", None))
        .await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["error"], "the provider answered HTTP 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_value_comes_from_an_earlier_login_or_the_step_fails_unsent() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let t = user("alice");
    let whoami = r#"{"flow_id": "whoami", "step": 0}"#;
    let (status, body) = s.login(&t, "fixture", whoami).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["success"], false);
    assert_eq!(
        json(&body)["error"],
        "the provider session has no `token`; log in again"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing sent");

    s.login(&t, "fixture", &login("bob", "pw", None)).await;
    let (_, body) = s.login(&t, "fixture", whoami).await;
    assert_eq!(json(&body)["success"], true, "{body}");
    let me = seen.lock().unwrap()[1].clone();
    assert_eq!(me.uri, "/api/me");
    assert_eq!(me.headers["authorization"], "Bearer t/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_without_a_prompt_between_them_run_in_one_request() {
    let (base, seen) = recording_provider().await;
    let (s, _dir) = server(&base).await;
    let t = user("alice");
    let (status, body) = s
        .login(
            &t,
            "fixture",
            r#"{"flow_id": "chain", "step": 0, "inputs": {"user": "u"}}"#,
        )
        .await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(paths, ["/api/chain/start", "/api/chain/finish"]);
    let types: Vec<_> = seen[0].headers.get_all("content-type").iter().collect();
    assert_eq!(
        types,
        ["application/vnd.chain+json"],
        "a step's Content-Type replaces the default"
    );
    assert_eq!(seen[1].headers["content-type"], "application/json");
    assert_eq!(
        seen[1].body, r#"{"t": "t/1"}"#,
        "the first step's extract feeds the second"
    );
    assert_eq!(s.check(&t, "fixture").await.1, r#"{"valid":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_step_needs_only_its_new_fields_and_passwords_are_never_stored() {
    let (base, seen) = recording_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let s = server_on(&base, &db).await;
    let t = user("alice");
    let start = r#"{"flow_id": "mfa", "step": 0, "inputs": {"user": "bob", "secret": "hunter2"}}"#;
    let (_, body) = s.login(&t, "fixture", start).await;
    assert_eq!(
        json(&body)["next_step"]["fields"][0]["key"],
        "code",
        "{body}"
    );

    // The pending run remembers `user` but not the password.
    let store = Store::connect(&format!("sqlite://{}", db.display()), sealer())
        .await
        .unwrap();
    let run = store.pending("alice", "fixture").await.unwrap().unwrap();
    assert_eq!(run.inputs.get("user").map(String::as_str), Some("bob"));
    assert!(!run.inputs.contains_key("secret"));
    for file in [db.clone(), db.with_extension("db-wal")] {
        let raw = std::fs::read(&file).unwrap_or_default();
        assert!(
            !raw.windows(7).any(|w| w == b"hunter2"),
            "password in {}",
            file.display()
        );
    }

    let (status, body) = s
        .login(
            &t,
            "fixture",
            r#"{"flow_id": "mfa", "step": 1, "inputs": {"code": "42"}}"#,
        )
        .await;
    assert_eq!(
        (status, json(&body)["success"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(seen.lock().unwrap()[1].body, r#"{"u": "bob", "c": "42"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_tests_a_3xx_sees_the_redirect_and_a_secret_echo_is_never_stored() {
    let (base, seen) = recording_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let s = server_on(&base, &db).await;
    let t = user("alice");
    let start = serde_json::json!({"flow_id": "redirect", "step": 0,
        "inputs": {"type": "a", "type_": "b", "deviceName": "tv"}});
    let (status, body) = s.login(&t, "fixture", &start.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["next_step"]["fields"][0]["key"], "whereTo", "{body}");
    assert_eq!(v["next_step"]["fields"][0]["value"], "/api/elsewhere");
    // The prompt's message is the provider's text, its echo of the secret replaced.
    assert_eq!(v["error"], "your key is ***", "{body}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "the redirect was not followed");
        assert_eq!(seen[0].uri, "/api/redirect/a/b");
        assert_eq!(seen[0].headers["x-device"], "tv");
        assert_eq!(seen[0].headers["x-key"], FIXTURE_KEY);
    }
    let next = serde_json::json!({"flow_id": "redirect", "step": 1, "inputs": {"goOn": "yes"}});
    let (_, body) = s.login(&t, "fixture", &next.to_string()).await;
    assert_eq!(json(&body)["success"], true, "{body}");

    let store = Store::connect(&format!("sqlite://{}", db.display()), sealer())
        .await
        .unwrap();
    let session = store.session("alice", "fixture").await.unwrap().unwrap();
    assert_eq!(session["location"], "/api/elsewhere");
    assert_eq!(session["code"], "302");
    assert_eq!(session["echo"], "your key is ***");
    drop(store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes
            .windows(FIXTURE_KEY.len())
            .any(|w| w == FIXTURE_KEY.as_bytes()));
    }
}

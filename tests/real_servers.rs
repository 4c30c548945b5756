//! The provider files of tests/real/ against real login servers, installed from their package
//! registries and started by tests/real/start.sh: django-allauth's headless API with TOTP
//! (PyPI) and better-auth with its two-factor plugin (npm). Each path of each file: a
//! password sign-in, a wrong password (the server's own text), the second factor asked for, a
//! wrong code asked for again, the right code, `check`, and a logout that ends the session at
//! the server itself, then `check` again.
//!
//! The servers are not on a fresh machine, so these tests are ignored by default:
//!
//! ```sh
//! eval "$(bash tests/real/start.sh)"
//! cargo test --test real_servers -- --ignored
//! bash tests/real/start.sh --stop
//! ```
//!
//! The provider files are compiled by the workspace member in tests/real/ (a team's crate:
//! its build script checks them with every outcome sampled, so `cargo test` fails on a broken
//! one without any server), and served by the server's router on a loopback port, each
//! provider pointed at its real server through a recording proxy, so the tests see what
//! reached the provider and what it answered.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The test accounts of both servers (tests/real/start.sh).
const PLAIN: &str = "plain@example.com";
const TOTP: &str = "totp@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// A real server under test: where it listens and its TOTP account's secret.
struct Real {
    id: &'static str,
    url: String,
    totp_secret: String,
}

/// The server `id` that tests/real/start.sh started, from `OTVI_REAL_<ID>_URL` and
/// `OTVI_REAL_<ID>_TOTP_SECRET`.
fn real(id: &'static str) -> Real {
    let prefix = format!("OTVI_REAL_{}", id.to_uppercase().replace('-', "_"));
    let var = |name: &str| {
        std::env::var(format!("{prefix}_{name}")).unwrap_or_else(|_| {
            panic!(
                "{prefix}_{name} is not set: start the real servers first, \
                 eval \"$(bash tests/real/start.sh)\""
            )
        })
    };
    Real {
        id,
        url: var("URL").trim_end_matches('/').to_string(),
        totp_secret: var("TOTP_SECRET"),
    }
}

// ---------------------------------------------------------------------------------------
// django-allauth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers: eval \"$(bash tests/real/start.sh)\""]
async fn allauth_password_sign_in_wrong_password_check_and_logout() {
    let real = real("allauth");
    let run = Run::start(&real).await;

    let (body, error) = run.fails(PLAIN, "not the password").await;
    assert_eq!(
        error, "The email address and/or password you specified are not correct.",
        "{body}"
    );
    assert!(!run.checked().await);

    let body = run.signs_in(PLAIN, PASSWORD).await;
    assert_eq!(body["user_name"], "plain", "{body}");
    assert!(run.checked().await);
    let token = run.proxy.last_json("/auth/login")["meta"]["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(allauth_session(&real, &token).await, 200);

    run.logs_out().await;
    let logout = run.proxy.last("/auth/session");
    assert_eq!(logout.method, "DELETE");
    assert_eq!(logout.header("x-session-token").as_deref(), Some(&*token));
    // The server ended the session: the token is gone.
    assert_eq!(allauth_session(&real, &token).await, 410);
    assert!(!run.checked().await);
}

/// One flow takes a username or an email: the body sent leaves out the one not given, which
/// allauth requires ("Invalid login." to an empty `email` beside a username).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers: eval \"$(bash tests/real/start.sh)\""]
async fn allauth_one_flow_signs_in_by_username_or_by_email() {
    let real = real("allauth");
    let run = Run::start(&real).await;
    let by = |inputs: Value| json!({"flow_id": "email_password", "step": 0, "inputs": inputs});

    let body = run
        .login(by(
            json!({"username": "plain", "email": "", "password": "not the password"}),
        ))
        .await;
    assert_eq!(
        body["error"], "The username and/or password you specified are not correct.",
        "{body}"
    );
    let sent = run.proxy.last("/auth/login").request_json();
    assert_eq!(
        sent,
        json!({"username": "plain", "password": "not the password"})
    );

    let body = run
        .login(by(json!({"username": "plain", "password": PASSWORD})))
        .await;
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["user_name"], "plain", "{body}");
    run.logs_out().await;

    let body = run
        .login(by(
            json!({"email": PLAIN, "username": "", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(body["success"], true, "{body}");
    let sent = run.proxy.last("/auth/login").request_json();
    assert_eq!(sent, json!({"email": PLAIN, "password": PASSWORD}));
    assert!(run.checked().await);
    run.logs_out().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers: eval \"$(bash tests/real/start.sh)\""]
async fn allauth_totp_prompt_wrong_code_right_code_check_and_logout() {
    let real = real("allauth");
    let run = Run::start(&real).await;

    let body = run.login_step0(TOTP, PASSWORD).await;
    assert_eq!(body, code_prompt(1, "mfa", None), "{body}");
    let pending = run.proxy.last_json("/auth/login")["meta"]["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!run.checked().await);

    let code = totp_code(&real).await;
    let body = run.code(&wrong(&code)).await;
    assert_eq!(
        body,
        code_prompt(1, "mfa", Some("Incorrect code.")),
        "{body}"
    );
    assert!(!run.checked().await);

    let body = run.code(&code).await;
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["user_name"], "totp", "{body}");
    assert!(run.checked().await);
    // Both codes went with the password step's session token; the answer brought a new one
    // and ended the old.
    let sent = run.proxy.on("/auth/2fa/authenticate");
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(s.header("x-session-token").as_deref(), Some(&*pending));
    }
    let token = sent[1].json()["meta"]["session_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(token, pending);
    assert_eq!(allauth_session(&real, &pending).await, 410);
    assert_eq!(allauth_session(&real, &token).await, 200);
    // The password step's token was replaced by the one the code step extracted.
    let kept = run.kept().await;
    assert_eq!(kept["session_token"], token);
    assert_eq!(kept["user_name"], "totp");

    run.logs_out().await;
    assert_eq!(
        run.proxy
            .last("/auth/session")
            .header("x-session-token")
            .as_deref(),
        Some(&*token)
    );
    assert_eq!(allauth_session(&real, &token).await, 410);
    assert!(!run.checked().await);
}

/// The status of `GET /auth/session` with `token`: 200 signed in, 410 ended.
async fn allauth_session(real: &Real, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/_allauth/app/v1/auth/session", real.url))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// ---------------------------------------------------------------------------------------
// better-auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers: eval \"$(bash tests/real/start.sh)\""]
async fn better_auth_password_sign_in_wrong_password_check_and_logout() {
    let real = real("better-auth");
    let run = Run::start(&real).await;

    let (body, error) = run.fails(PLAIN, "not the password").await;
    assert_eq!(error, "Invalid email or password", "{body}");
    assert!(!run.checked().await);

    let body = run.signs_in(PLAIN, PASSWORD).await;
    assert_eq!(body["user_name"], "Plain", "{body}");
    assert!(run.checked().await);
    let cookie = run
        .proxy
        .last("/sign-in/email")
        .set_cookie("better-auth.session_token")
        .unwrap();
    assert_eq!(
        better_auth_session(&real, &cookie).await["user"]["email"],
        PLAIN
    );

    run.logs_out().await;
    assert_eq!(
        run.proxy
            .last("/sign-out")
            .cookie("better-auth.session_token"),
        Some(cookie.clone())
    );
    // The server ended the session: the cookie names none.
    assert_eq!(better_auth_session(&real, &cookie).await, Value::Null);
    assert!(!run.checked().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers: eval \"$(bash tests/real/start.sh)\""]
async fn better_auth_totp_prompt_wrong_code_right_code_check_and_logout() {
    let real = real("better-auth");
    let run = Run::start(&real).await;

    let body = run.login_step0(TOTP, PASSWORD).await;
    assert_eq!(body, code_prompt(1, "totp", None), "{body}");
    let challenge = run
        .proxy
        .last("/sign-in/email")
        .set_cookie("better-auth.two_factor")
        .unwrap();
    assert!(!run.checked().await);

    let code = totp_code(&real).await;
    let body = run.code(&wrong(&code)).await;
    assert_eq!(body, code_prompt(1, "totp", Some("Invalid code")), "{body}");
    assert!(!run.checked().await);

    let body = run.code(&code).await;
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["user_name"], "Totp", "{body}");
    assert!(run.checked().await);
    let sent = run.proxy.on("/two-factor/verify-totp");
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(s.cookie("better-auth.two_factor"), Some(challenge.clone()));
        assert_eq!(s.header("origin").as_deref(), Some("https://tv.example"));
    }
    let cookie = sent[1].set_cookie("better-auth.session_token").unwrap();
    // The session cookie is kept; the challenge served its run (`keep: run`) and is not.
    let kept = run.kept().await;
    assert_eq!(kept["session"], cookie);
    assert!(!kept.contains_key("two_factor"), "{kept:?}");
    assert_eq!(
        better_auth_session(&real, &cookie).await["user"]["email"],
        TOTP
    );

    run.logs_out().await;
    assert_eq!(
        run.proxy
            .last("/sign-out")
            .cookie("better-auth.session_token"),
        Some(cookie.clone())
    );
    assert_eq!(better_auth_session(&real, &cookie).await, Value::Null);
    assert!(!run.checked().await);
}

/// `GET /api/auth/get-session` with the session cookie: the session and user, or null.
async fn better_auth_session(real: &Real, cookie: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{}/api/auth/get-session", real.url))
        .header("Cookie", format!("better-auth.session_token={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json(&r.text().await.unwrap())
}

// ---------------------------------------------------------------------------------------
// One user's logins through the server built from tests/real/, via the recording proxy.

struct Run {
    provider: &'static str,
    owner: String,
    token: String,
    proxy: Proxy,
    server: TestServer,
}

impl Run {
    /// The server with the providers of tests/real/, `real`'s pointed at it through a proxy,
    /// on a fresh SQLite file; a token of a new user.
    async fn start(real: &Real) -> Run {
        let proxy = Proxy::start(&real.url).await;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = otvi_server::config::Config::new(
            otvi_real_servers::PROVIDERS,
            SECRET,
            format!("sqlite://{}?mode=rwc", dir.path().join("otvi.db").display()),
        );
        cfg.base_urls.insert(real.id.to_string(), proxy.url.clone());
        cfg.sealer = sealer();
        let owner = format!("real-{}", uuid::Uuid::new_v4());
        Run {
            provider: real.id,
            token: user(&owner),
            owner,
            proxy,
            server: TestServer::start_with(cfg, Some(dir)).await,
        }
    }

    async fn login(&self, body: Value) -> Value {
        let (status, text) = self
            .server
            .login(&self.token, self.provider, &body.to_string())
            .await;
        assert_eq!(status, 200, "{text}");
        json(&text)
    }

    async fn login_step0(&self, email: &str, password: &str) -> Value {
        self.login(json!({
            "flow_id": "email_password",
            "step": 0,
            "inputs": {"email": email, "password": password},
        }))
        .await
    }

    async fn code(&self, code: &str) -> Value {
        self.login(json!({"flow_id": "email_password", "step": 1, "inputs": {"code": code}}))
            .await
    }

    /// A sign-in that completes at once: the answer.
    async fn signs_in(&self, email: &str, password: &str) -> Value {
        let body = self.login_step0(email, password).await;
        assert_eq!(body["success"], true, "{body}");
        assert_eq!(body["next_step"], Value::Null, "{body}");
        assert_eq!(body["error"], Value::Null, "{body}");
        body
    }

    /// A sign-in that fails: the answer and its error.
    async fn fails(&self, email: &str, password: &str) -> (Value, String) {
        let body = self.login_step0(email, password).await;
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["next_step"], Value::Null, "{body}");
        let error = body["error"].as_str().unwrap_or_default().to_string();
        (body, error)
    }

    async fn checked(&self) -> bool {
        let (status, text) = self.server.check(&self.token, self.provider).await;
        assert_eq!(status, 200, "{text}");
        json(&text)["valid"].as_bool().unwrap()
    }

    /// The provider session the server keeps for this user.
    async fn kept(&self) -> std::collections::HashMap<String, String> {
        session_of(&self.server, &self.owner, self.provider)
            .await
            .expect("a provider session is kept")
    }

    async fn logs_out(&self) {
        let (status, text) = self.server.logout(&self.token, self.provider).await;
        assert_eq!(status, 200, "{text}");
    }
}

/// The answer that asks for the authenticator code at step `index` (`name`d in the file).
fn code_prompt(index: u64, id: &str, error: Option<&str>) -> Value {
    let name = match id {
        "mfa" => "Two-Factor Authentication",
        _ => "Authenticator Code",
    };
    json!({
        "success": false,
        "session_id": null,
        "next_step": {
            "step_index": index,
            "step_name": name,
            "fields": [{"key": "code", "label": "Authenticator code", "field_type": "text", "required": true}],
        },
        "user_name": null,
        "error": error,
    })
}

// ---------------------------------------------------------------------------------------
// TOTP codes

/// The current code of `real`'s TOTP account, at least 3 s before its step ends (the servers
/// allow no clock drift by default). django-allauth accepts a code once: if an earlier run of
/// these tests used this step's code already, the next step's.
async fn totp_code(real: &Real) -> String {
    let marker = std::env::temp_dir().join(format!(
        "otvi-real-totp-{}-{}",
        real.id,
        &real.totp_secret[..8.min(real.totp_secret.len())]
    ));
    let _one_at_a_time = TOTP_LOCK.lock().await;
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let step = now.as_secs() / 30;
        let left = Duration::from_secs((step + 1) * 30) - now;
        let used = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        if left < Duration::from_secs(3) || used.is_some_and(|u| u >= step) {
            tokio::time::sleep(left + Duration::from_millis(200)).await;
            continue;
        }
        std::fs::write(&marker, step.to_string()).unwrap();
        return totp(&base32(&real.totp_secret), step);
    }
}

static TOTP_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A code that is certainly not `code`.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// RFC 6238 (HMAC-SHA-1, 6 digits) at time step `step`.
fn totp(key: &[u8], step: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = ring::hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let at = (mac[mac.len() - 1] & 0x0f) as usize;
    let value = u32::from_be_bytes(mac[at..at + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

/// RFC 4648 base32, as TOTP secrets are written (padding and case ignored).
fn base32(text: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn totp_codes_are_rfc_6238s() {
    // RFC 6238, appendix B: the SHA-1 key "12345678901234567890", 8 digits there; the last 6
    // of each are these codes.
    let key = base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(key, b"12345678901234567890");
    for (time, code) in [
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000, "353130"),
    ] {
        assert_eq!(totp(&key, time / 30), code, "at {time}");
    }
    assert_eq!(wrong("999999"), "000000");
}

// ---------------------------------------------------------------------------------------
// A recording proxy in front of a real server.

#[derive(Clone, Debug)]
struct Exchange {
    method: String,
    path: String,
    request_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<String> {
        self.request_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The cookie `name` that the request sent.
    fn cookie(&self, name: &str) -> Option<String> {
        self.header("cookie")?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    }

    /// The cookie `name` that the response set (to a value that is not empty).
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.response_headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let (k, rest) = v.split_once('=')?;
                let value = rest.split(';').next()?;
                (k == name && !value.is_empty()).then(|| value.to_string())
            })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.response_body).unwrap()
    }

    fn request_json(&self) -> Value {
        serde_json::from_slice(&self.request_body).unwrap()
    }
}

struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        use axum::body::{to_bytes, Body};
        use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (log, upstream) = (seen.clone(), upstream.to_string());
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let (log, client, upstream) = (log.clone(), client.clone(), upstream.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = to_bytes(body, 1 << 20).await.unwrap();
                let path = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let request_headers: Vec<(String, String)> = parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                let mut rb = client.request(
                    parts.method.as_str().parse().unwrap(),
                    format!("{upstream}{path}"),
                );
                for (k, v) in &request_headers {
                    if !["host", "content-length", "connection"].contains(&k.as_str()) {
                        rb = rb.header(k, v);
                    }
                }
                let r = rb.body(body.to_vec()).send().await.unwrap();
                let status = r.status().as_u16();
                let response_headers: Vec<(String, String)> = r
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                let response_body = r.bytes().await.unwrap().to_vec();
                log.lock().unwrap().push(Exchange {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    request_headers,
                    request_body: body.to_vec(),
                    response_headers: response_headers.clone(),
                    response_body: response_body.clone(),
                });
                let mut answer = Response::new(Body::from(response_body));
                *answer.status_mut() = StatusCode::from_u16(status).unwrap();
                for (k, v) in response_headers {
                    if !["content-length", "transfer-encoding", "connection"].contains(&&*k) {
                        answer.headers_mut().append(
                            HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            HeaderValue::from_str(&v).unwrap(),
                        );
                    }
                }
                answer
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Proxy { url, seen }
    }

    /// Every exchange whose path ends with `suffix`, in order.
    fn on(&self, suffix: &str) -> Vec<Exchange> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|e| e.path.ends_with(suffix))
            .cloned()
            .collect()
    }

    fn last(&self, suffix: &str) -> Exchange {
        self.on(suffix)
            .pop()
            .unwrap_or_else(|| panic!("nothing reached {suffix}"))
    }

    fn last_json(&self, suffix: &str) -> Value {
        self.last(suffix).json()
    }
}

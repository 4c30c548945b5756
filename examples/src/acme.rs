//! A mock provider implementing the authentication-flows document's example endpoints, on
//! loopback, recording every request it receives. Used by `otvi demo` and the tests.
//!
//! - `POST /v2/auth/login` `{email, password, device_id}`: any password but `wrong` signs in;
//!   the display name is the email's local part.
//! - `POST /v2/auth/otp/send` `{phone_number, country_code}`: returns a `request_id`.
//! - `POST /v2/auth/otp/verify` `{phone_number, code, request_id}`: the code is [`OTP`].
//! - `POST /v2/auth/logout` with `Authorization: Bearer <access token>`: ends that session
//!   (a token logged out or revoked is refused from then on).
//! - `GET /v2/auth/session` with `Authorization: Bearer <access token>`: 200 while the session
//!   lives, 401 once it is logged out or revoked ([`MockProvider::revoke`]).

use crate::record::{lock, serve, Recorder};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use crate::record::Received;

/// The one-time code the mock accepts.
pub const OTP: &str = "123456";

#[derive(Default)]
struct Inner {
    /// request_id -> phone number.
    otp_requests: HashMap<String, String>,
    /// Access tokens handed out.
    tokens: Vec<String>,
    /// Access tokens whose session has ended (logged out or revoked).
    ended: HashSet<String>,
}

/// A running mock provider.
#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    recorder: Recorder,
}

impl MockProvider {
    /// Starts on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<MockProvider> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let recorder = Recorder::default();
        let app = Router::new()
            .route("/v2/auth/login", post(login))
            .route("/v2/auth/otp/send", post(otp_send))
            .route("/v2/auth/otp/verify", post(otp_verify))
            .route("/v2/auth/logout", post(logout))
            .route("/v2/auth/session", get(session))
            .with_state(inner.clone());
        let addr = serve(recorder.wrap(app)).await?;
        Ok(MockProvider {
            addr,
            inner,
            recorder,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.recorder.all()
    }

    /// Access tokens handed out, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner).tokens.clone()
    }

    /// Access tokens whose session still lives at the provider, oldest first.
    pub fn live_tokens(&self) -> Vec<String> {
        let inner = lock(&self.inner);
        inner
            .tokens
            .iter()
            .filter(|t| !inner.ended.contains(*t))
            .cloned()
            .collect()
    }

    /// Ends the session of `token` at the provider, as an administrator revoking it would.
    pub fn revoke(&self, token: &str) {
        lock(&self.inner).ended.insert(token.to_string());
    }

    /// Requests received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.recorder.on(path)
    }
}

type Shared = Arc<Mutex<Inner>>;

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn tokens(state: &Shared, user: Value) -> Value {
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    lock(state).tokens.push(access.clone());
    json!({ "data": {
        "access_token": access,
        "refresh_token": format!("rt-{}", uuid::Uuid::new_v4().simple()),
        "user": user,
    }})
}

fn reject(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn login(State(s): State<Shared>, body: Bytes) -> Response {
    let b = parse(&body);
    let (Some(email), Some(password)) = (b["email"].as_str(), b["password"].as_str()) else {
        return reject(StatusCode::BAD_REQUEST, "email and password are required");
    };
    if password == "wrong" {
        return reject(StatusCode::UNAUTHORIZED, "invalid credentials");
    }
    let name = email.split('@').next().unwrap_or(email);
    Json(tokens(
        &s,
        json!({ "display_name": name, "id": format!("user-{name}") }),
    ))
    .into_response()
}

async fn otp_send(State(s): State<Shared>, body: Bytes) -> Response {
    let b = parse(&body);
    let Some(phone) = b["phone_number"].as_str() else {
        return reject(StatusCode::BAD_REQUEST, "phone_number is required");
    };
    let id = format!("req-{}", uuid::Uuid::new_v4().simple());
    lock(&s).otp_requests.insert(id.clone(), phone.to_string());
    Json(json!({ "data": { "request_id": id } })).into_response()
}

async fn otp_verify(State(s): State<Shared>, body: Bytes) -> Response {
    let b = parse(&body);
    let request_id = b["request_id"].as_str().unwrap_or_default();
    let known = lock(&s).otp_requests.get(request_id).cloned();
    match known {
        Some(phone) if Some(phone.as_str()) == b["phone_number"].as_str() && b["code"] == OTP => {
            Json(tokens(
                &s,
                json!({ "display_name": "phone user", "id": "user-phone" }),
            ))
            .into_response()
        }
        _ => reject(StatusCode::UNAUTHORIZED, "invalid code"),
    }
}

/// The bearer token of `h`, if its session lives.
fn live_bearer(s: &Shared, h: &HeaderMap) -> Option<String> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?
        .to_string();
    let inner = lock(s);
    (inner.tokens.contains(&token) && !inner.ended.contains(&token)).then_some(token)
}

async fn logout(State(s): State<Shared>, h: HeaderMap) -> Response {
    match live_bearer(&s, &h) {
        Some(token) => {
            lock(&s).ended.insert(token);
            Json(json!({ "success": true })).into_response()
        }
        None => reject(StatusCode::UNAUTHORIZED, "unknown token"),
    }
}

async fn session(State(s): State<Shared>, h: HeaderMap) -> Response {
    match live_bearer(&s, &h) {
        Some(_) => Json(json!({ "active": true })).into_response(),
        None => reject(StatusCode::UNAUTHORIZED, "session ended"),
    }
}

//! A mock provider implementing the authentication-flows document's example endpoints, on
//! loopback, recording every request it receives. Used by `otvi demo` and the tests.
//!
//! - `POST /v2/auth/login` `{email, password, device_id}`: any password but `wrong` signs in;
//!   the display name is the email's local part.
//! - `POST /v2/auth/otp/send` `{phone_number, country_code}`: returns a `request_id`.
//! - `POST /v2/auth/otp/verify` `{phone_number, code, request_id}`: the code is [`OTP`].
//! - `POST /v2/auth/logout` with `Authorization: Bearer <access token>`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The one-time code the mock accepts.
pub const OTP: &str = "123456";

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// request_id -> phone number.
    otp_requests: HashMap<String, String>,
    /// Access tokens handed out.
    tokens: Vec<String>,
}

/// A running mock provider.
#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl MockProvider {
    /// Starts on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<MockProvider> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v2/auth/login", post(login))
            .route("/v2/auth/otp/send", post(otp_send))
            .route("/v2/auth/otp/verify", post(otp_verify))
            .route("/v2/auth/logout", post(logout))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockProvider { addr, inner })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .lock()
            .map(|i| i.received.clone())
            .unwrap_or_default()
    }

    /// Access tokens handed out, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.tokens.clone())
            .unwrap_or_default()
    }

    /// Requests received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

type Shared = Arc<Mutex<Inner>>;

fn record(state: &Shared, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Value {
    if let Ok(mut i) = state.lock() {
        i.received.push(Received {
            path: uri.path().to_string(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn tokens(state: &Shared, user: Value) -> Value {
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut i) = state.lock() {
        i.tokens.push(access.clone());
    }
    json!({ "data": {
        "access_token": access,
        "refresh_token": format!("rt-{}", uuid::Uuid::new_v4().simple()),
        "user": user,
    }})
}

fn reject(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn login(State(s): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let b = record(&s, &uri, &h, &body);
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

async fn otp_send(State(s): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let b = record(&s, &uri, &h, &body);
    let Some(phone) = b["phone_number"].as_str() else {
        return reject(StatusCode::BAD_REQUEST, "phone_number is required");
    };
    let id = format!("req-{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut i) = s.lock() {
        i.otp_requests.insert(id.clone(), phone.to_string());
    }
    Json(json!({ "data": { "request_id": id } })).into_response()
}

async fn otp_verify(State(s): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let b = record(&s, &uri, &h, &body);
    let request_id = b["request_id"].as_str().unwrap_or_default();
    let known = s
        .lock()
        .ok()
        .and_then(|i| i.otp_requests.get(request_id).cloned());
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

async fn logout(State(s): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    record(&s, &uri, &h, &body);
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let known = s.lock().map(|i| i.tokens.contains(&token)).unwrap_or(false);
    if known {
        Json(json!({ "success": true })).into_response()
    } else {
        reject(StatusCode::UNAUTHORIZED, "unknown token")
    }
}

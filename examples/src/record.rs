//! The pieces every mock shares: the record of a received request, the recorder that keeps
//! them, and [`serve`], which runs a router on a free loopback port.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The largest request body a mock reads; larger bodies are answered 413 (and still recorded,
/// with an empty body).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A request as a mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first value of header `name` (case-insensitive), when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of cookie `name` from the `Cookie` request header(s).
    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_value(&self.headers, name)
    }
}

/// The value of cookie `name` in the `Cookie` header(s) of `headers`.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v).filter_map(Result::ok))
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// Locks `m`, carrying on with the data when a previous holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The requests a mock received, oldest first. Cloning shares the record.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    /// Adds a request to the record.
    pub fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        lock(&self.received).push(Received {
            method: method.as_str().to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: headers.clone(),
            body: body.clone(),
        });
    }

    /// Every request recorded so far, oldest first.
    pub fn all(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// The requests recorded on `path`, oldest first.
    pub fn on(&self, path: &str) -> Vec<Received> {
        lock(&self.received)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// `router` with every request it receives (routed or not) recorded here before any
    /// handler or other layer of `router` sees it.
    pub fn wrap(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), record_request))
    }
}

async fn record_request(
    State(recorder): State<Recorder>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        recorder.record(&parts.method, &parts.uri, &parts.headers, &Bytes::new());
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    recorder.record(&parts.method, &parts.uri, &parts.headers, &body);
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Binds `127.0.0.1` at a free port, serves `router` there in the background, and returns the
/// address.
pub async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

//! The HTTP API: the seed's login, check and logout of a provider session
//! (`/api/providers/{id}/auth/…`), the compiled providers and their flows, health, readiness,
//! metrics, this API's OpenAPI document and the login console. [`router`] builds it as an
//! [`App`], which [`serve`] serves over HTTP/1.1 or an application drives as a tower service.
//!
//! The checks run in this order, and the first that fails gives the answer:
//!
//! 1. a valid JWT (401);
//! 2. no password change pending (403);
//! 3. the provider exists (404);
//! 4. the token's allow-list permits it (403);
//! 5. only an admin logs in to or out of a global provider (403);
//! 6. the login body (400; [`parse_login`]).
//!
//! Checks 1–5 are `access`'s. Between checks 5 and 6 a login meets the failed-attempt limits
//! (429): one over them is refused before its body is decoded or the provider asked (`login`).
//! Not every route runs them all: the listing runs 1–2 (and lists what the allow-list
//! permits), a provider's page and `check` 1–4, `logout` 1–5, `login` all six; health,
//! readiness, the document and the console none (`/metrics` has its own token).
//!
//! Where the rest is: `error` (the one place where errors become status codes), `wire` (the
//! seed's request and response shapes), `session` (check and logout), `providers`, `health`
//! (liveness, readiness, metrics), `openapi`, `console`, `dispatch` (the routes and `App`,
//! which answers the seed's routes itself), `request_log` (one log line per request) and
//! `serve` (connections).

mod access;
mod console;
mod dispatch;
mod error;
mod health;
mod login;
mod openapi;
mod providers;
mod request_log;
mod serve;
mod session;
mod wire;

pub use access::{Client, User};
pub use dispatch::App;
pub use error::{ApiError, ErrorBody};
pub use login::parse_login;
pub use openapi::{openapi, ApiDoc};
pub use request_log::Logged;
pub use serve::{serve, serve_with, Connections};
pub use wire::{
    describe, CheckResponse, ChoiceOut, FieldInfo, FieldOut, FlowInfo, LoginRequest, LoginResponse,
    LogoutResponse, NextStep, ProviderInfo, Status,
};

use crate::auth::Jwt;
use crate::engine::Engine;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::upstream::Upstream;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::Router;
use otvi_runtime::def::ProviderDef;
use otvi_runtime::secrets::Secrets;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The largest login body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The most inputs one login request may carry.
pub const MAX_INPUTS: usize = 64;
/// The longest input name.
pub const MAX_INPUT_NAME: usize = 256;

/// Server-wide state.
pub struct AppState {
    pub providers: &'static [&'static ProviderDef],
    pub store: Store,
    pub upstream: Upstream,
    pub jwt: Jwt,
    /// `--provider-base-url` overrides, by provider id.
    pub base_urls: HashMap<String, String>,
    pub pending_ttl: Duration,
    /// Each provider's secrets, loaded at start-up (`secrets::load`).
    pub secrets: HashMap<&'static str, Secrets>,
    /// Failed-attempt limits.
    pub limits: Limiter,
    /// Where a trusted proxy puts the client's address (its last entry counts); else the
    /// connection's peer address is the client's.
    pub client_ip_header: Option<HeaderName>,
    pub metrics: Metrics,
    /// When set, `GET /metrics` wants `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
}

impl AppState {
    fn base_url(&self, p: &ProviderDef) -> &str {
        self.base_urls.get(p.id).map_or(p.base_url, String::as_str)
    }
    fn engine(&self, p: &ProviderDef) -> Engine<'_> {
        Engine {
            store: &self.store,
            upstream: &self.upstream,
            base_url: self.base_url(p),
            pending_ttl: self.pending_ttl,
            secrets: self
                .secrets
                .get(p.id)
                .unwrap_or(&otvi_runtime::secrets::NONE),
            metrics: &self.metrics,
        }
    }
}

type Shared = Arc<AppState>;

/// The API over `state`: every route on the axum router, inside the `App` that answers the
/// seed's login, check and logout itself.
pub fn router(state: AppState) -> App {
    let state = Arc::new(state);
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/console", get(console::console))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(health::metrics))
        .route("/api/providers", get(providers::list))
        .route("/api/providers/{id}", get(providers::one))
        .route("/api/providers/{id}/auth/login", post(login::login))
        .route("/api/providers/{id}/auth/check", get(session::check))
        .route("/api/providers/{id}/auth/logout", post(session::logout))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    App { router, state }
}

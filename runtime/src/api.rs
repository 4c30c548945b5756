//! The HTTP API: routes, the order of checks, the seed's response shapes, and the one place
//! where errors become status codes.

use crate::auth::{Claims, Jwt};
use crate::def::{FieldDef, ProviderDef, Scope};
use crate::engine::{Engine, EngineError, Login, Shown};
use crate::limits::{Keys, Limiter};
use crate::secrets::Secrets;
use crate::store::{Store, StoreError, Values};
use crate::upstream::Upstream;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The largest login body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The most inputs one login request may carry.
pub const MAX_INPUTS: usize = 64;
/// The longest input name.
pub const MAX_INPUT_NAME: usize = 256;

/// Every way a request can fail, mapped to its status in `into_response`.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    Forbidden(&'static str),
    NotFound(String),
    BadRequest(String),
    /// Too many failed attempts: seconds until the next may be made.
    TooManyRequests(u64),
    Unavailable(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "session store");
        ApiError::Unavailable("the session store is unavailable".into())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::BadRequest(m) => ApiError::BadRequest(m),
            EngineError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, msg) =
            match self {
                ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_string()),
                ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_string()),
                ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
                ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
                ApiError::TooManyRequests(secs) => return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    Json(json!({
                        "error": format!("too many failed login attempts; try again in {secs} s")
                    })),
                )
                    .into_response(),
                ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            };
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

/// The login answer, exactly the seed's shape.
#[derive(Debug, Serialize, PartialEq)]
pub struct LoginResponse {
    pub success: bool,
    pub session_id: Option<String>,
    pub next_step: Option<NextStep>,
    pub user_name: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct NextStep {
    pub step_index: usize,
    pub step_name: String,
    pub fields: Vec<FieldOut>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FieldOut {
    pub key: String,
    pub label: String,
    pub field_type: String,
    pub required: bool,
    /// Display fields (`link`, `info`) only: what to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl From<Login> for LoginResponse {
    fn from(l: Login) -> Self {
        let (success, next_step, user_name, error) = match l {
            Login::Complete { user_name } => (true, None, user_name, None),
            Login::Prompt {
                step_index,
                step_name,
                fields,
                message,
            } => (
                false,
                Some(NextStep {
                    step_index,
                    step_name: step_name.into(),
                    fields: fields.into_iter().map(FieldOut::from).collect(),
                }),
                None,
                message,
            ),
            Login::Failed { error, .. } => (false, None, None, Some(error)),
        };
        LoginResponse {
            success,
            session_id: None,
            next_step,
            user_name,
            error,
        }
    }
}

impl From<Shown> for FieldOut {
    fn from(s: Shown) -> Self {
        FieldOut {
            key: s.def.key.into(),
            label: s.def.label.into(),
            field_type: s.def.field_type.into(),
            required: s.def.required,
            value: s.value,
        }
    }
}

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
            secrets: self.secrets.get(p.id).unwrap_or(&crate::secrets::NONE),
        }
    }
}

type Shared = Arc<AppState>;

/// The caller, after checks 1 (valid JWT) and 2 (no password change pending).
pub struct User(pub Arc<Claims>);

impl FromRequestParts<Shared> for User {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let claims = state
            .jwt
            .verify_cached(token.trim())
            .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
        if claims.must_change_password {
            return Err(ApiError::Forbidden("password change required"));
        }
        Ok(User(claims))
    }
}

/// Checks 3 (provider exists) and 4 (allow-list).
fn provider(state: &AppState, id: &str, user: &Claims) -> Result<&'static ProviderDef, ApiError> {
    let p = state
        .providers
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("provider `{id}` not found")))?;
    if !user.allows(id) {
        return Err(ApiError::Forbidden("provider access denied"));
    }
    Ok(p)
}

/// Check 5: only admins log in to or out of a global provider.
fn credential_action(p: &ProviderDef, user: &Claims) -> Result<(), ApiError> {
    if p.scope == Scope::Global && !user.is_admin() {
        return Err(ApiError::Forbidden(
            "only an admin can log in to or out of a global provider",
        ));
    }
    Ok(())
}

/// Whose session: the user's, or the provider's shared one.
fn owner<'a>(p: &ProviderDef, user: &'a Claims) -> &'a str {
    match p.scope {
        Scope::PerUser => &user.sub,
        Scope::Global => "",
    }
}

/// The client's address, for the per-address limit.
fn client_address(state: &AppState, parts: &Parts) -> Option<String> {
    if let Some(name) = &state.client_ip_header {
        return parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .map(str::to_owned);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The client's address (see `client_address`), if known.
pub struct Client(Option<String>);

impl FromRequestParts<Shared> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(client_address(state, parts)))
    }
}

/// Was the attempt turned down: a failure the provider decided, or the step the request ran
/// asked for again (a wrong code).
fn rejected(answer: &Login, step: usize) -> bool {
    match answer {
        Login::Failed { rejected, .. } => *rejected,
        Login::Prompt {
            step_index,
            message,
            ..
        } => *step_index == step && step > 0 && message.is_some(),
        Login::Complete { .. } => false,
    }
}

/// Check 6: the login body, decoded to `(flow_id, step, inputs)`. Public for the fuzz target.
pub fn parse_login(body: &[u8]) -> Result<(String, usize, Values), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::BadRequest("the request body is not valid JSON".into()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("the request body must be a JSON object".into()))?;
    let flow_id = obj
        .get("flow_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("`flow_id` is required and must be a string".into()))?;
    let step = obj.get("step").and_then(Value::as_u64).ok_or_else(|| {
        ApiError::BadRequest("`step` is required and must be a non-negative integer".into())
    })?;
    let mut inputs = Values::new();
    match obj.get("inputs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            if m.len() > MAX_INPUTS {
                return Err(ApiError::BadRequest(format!(
                    "at most {MAX_INPUTS} inputs are accepted"
                )));
            }
            for (k, v) in m {
                if k.len() > MAX_INPUT_NAME {
                    return Err(ApiError::BadRequest(format!(
                        "input names are at most {MAX_INPUT_NAME} bytes"
                    )));
                }
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "input `{k}` must be a string"
                        )))
                    }
                };
                inputs.insert(k.clone(), text);
            }
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`inputs` must be an object of strings".into(),
            ))
        }
    }
    Ok((
        flow_id.to_string(),
        usize::try_from(step).unwrap_or(usize::MAX),
        inputs,
    ))
}

async fn login(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
    Client(address): Client,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let p = provider(&state, &id, &user)?;
    credential_action(p, &user)?;
    // Too many failures: refused before the body is read or the provider asked.
    let keys = Keys::new(&user.sub, p.id, address.as_deref());
    let checked = state.limits.check(&state.store, &keys).await?;
    if let Some(secs) = checked.retry_after {
        tracing::warn!(provider = p.id, "login refused: too many failed attempts");
        return Err(ApiError::TooManyRequests(secs));
    }
    // Over the limit is 400 like any other body the server will not take: the documented
    // answers to a body are 400, never 413, 415 or 422.
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(
            axum::extract::rejection::FailedToBufferBody::LengthLimitError(_),
        ) => ApiError::BadRequest(format!(
            "the request body is larger than {} KiB",
            MAX_BODY / 1024
        )),
        // A body that cannot be read (cut off) is a malformed request like any other.
        e => ApiError::BadRequest(format!("cannot read the request body: {e}")),
    })?;
    let (flow_id, step, inputs) = parse_login(&body)?;
    let flow = p
        .flow(&flow_id)
        .ok_or_else(|| ApiError::NotFound(format!("flow `{flow_id}` not found")))?;
    let answer = state
        .engine(p)
        .login(p, owner(p, &user), flow, step, inputs)
        .await?;
    if rejected(&answer, step) {
        state.limits.failed(&state.store, &keys).await?;
    } else if matches!(answer, Login::Complete { .. }) {
        state
            .limits
            .succeeded(&state.store, &keys, &checked)
            .await?;
    }
    Ok(Json(answer.into()))
}

/// A fixed JSON answer: nothing to build or serialize.
fn fixed_json(body: &'static str) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn check(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = provider(&state, &id, &user)?;
    let valid = state.store.has_session(owner(p, &user), p.id).await?;
    Ok(fixed_json(if valid {
        r#"{"valid":true}"#
    } else {
        r#"{"valid":false}"#
    }))
}

async fn logout(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = provider(&state, &id, &user)?;
    credential_action(p, &user)?;
    state.engine(p).logout(p, owner(p, &user)).await?;
    Ok(fixed_json(r#"{"success":true}"#))
}

/// What a frontend needs to draw a provider's flows.
pub fn describe(p: &ProviderDef) -> Value {
    let field = |f: &FieldDef| json!({ "key": f.key, "label": f.label, "field_type": f.field_type, "required": f.required });
    json!({
        "id": p.id,
        "name": p.name,
        "logo": p.logo,
        "scope": p.scope.as_str(),
        "auth_flows": p.flows.iter().map(|f| json!({
            "id": f.id,
            "name": f.name,
            "fields": f.inputs.iter().map(field).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn list(State(state): State<Shared>, User(user): User) -> Json<Value> {
    Json(Value::Array(
        state
            .providers
            .iter()
            .filter(|p| user.allows(p.id))
            .map(|p| describe(p))
            .collect(),
    ))
}

async fn one(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(describe(provider(&state, &id, &user)?)))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    if state.store.ping().await {
        Ok(Json(json!({ "status": "ready" })))
    } else {
        Err(ApiError::Unavailable(
            "the session store is unreachable".into(),
        ))
    }
}

/// The login console: one static page, compiled in, that loads nothing from elsewhere.
const CONSOLE: &str = include_str!("console.html");

async fn console() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                     frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        CONSOLE,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed on this endpoint" })),
    )
        .into_response()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/console", get(console))
        .route("/api/providers", get(list))
        .route("/api/providers/{id}", get(one))
        .route("/api/providers/{id}/auth/login", post(login))
        .route("/api/providers/{id}/auth/check", get(check))
        .route("/api/providers/{id}/auth/logout", post(logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(state))
}

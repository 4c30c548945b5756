//! The HTTP API: routes, the order of checks, the seed's response shapes, and the one place
//! where errors become status codes.

use crate::auth::{Claims, Jwt};
use crate::engine::{Engine, EngineError, Login, Shown};
use crate::limits::{Keys, Limiter, Verdict};
use crate::metrics::{Metrics, Outcome};
use crate::store::{Store, StoreError, Values};
use crate::upstream::Upstream;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use otvi_runtime::def::{FieldDef, ProviderDef, Scope};
use otvi_runtime::secrets::Secrets;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use utoipa::{Modify, OpenApi, ToSchema};

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

/// Every non-200 answer's body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "error": "provider access denied" }))]
pub struct ErrorBody {
    pub error: String,
}

/// A login request (seed 000). `inputs` may be omitted; `session_id` is accepted and ignored.
#[derive(Debug, ToSchema)]
#[schema(example = json!({
    "flow_id": "email_password", "step": 0,
    "inputs": { "email": "alice@example.com", "password": "secretpassword" }
}))]
#[allow(dead_code)] // Documents the body `parse_login` reads.
pub struct LoginRequest {
    /// The flow's id.
    flow_id: String,
    /// Zero-based step index: 0 starts the flow, a `next_step.step_index` continues it.
    #[schema(minimum = 0)]
    step: u64,
    /// The values of the step's fields, by key. A number or boolean is taken as its text;
    /// null as absent.
    #[schema(schema_with = inputs_schema)]
    inputs: Option<HashMap<String, String>>,
    /// Present for compatibility; unused.
    session_id: Option<String>,
}

fn inputs_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let value = ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::String,
        Type::Number,
        Type::Boolean,
        Type::Null,
    ]));
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .additional_properties(Some(AdditionalProperties::RefOr(value.build().into())))
        .max_properties(Some(MAX_INPUTS))
        .build()
}

/// The login answer, exactly the seed's shape.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
#[schema(examples(
    json!({ "success": true, "session_id": null, "next_step": null, "user_name": "alice", "error": null }),
    json!({
        "success": false, "session_id": null,
        "next_step": { "step_index": 1, "step_name": "Verify OTP", "fields": [
            { "key": "otp", "label": "Enter Verification Code", "field_type": "text", "required": true }
        ]},
        "user_name": null, "error": null
    }),
    json!({ "success": false, "session_id": null, "next_step": null, "user_name": null, "error": "Invalid credentials" }),
))]
pub struct LoginResponse {
    /// True once the flow completed and the provider session is stored.
    pub success: bool,
    /// Always null (kept for the shape's compatibility).
    #[schema(required = true, value_type = Option<String>)]
    pub session_id: Option<String>,
    /// What to ask the user for next, when the flow continues.
    #[schema(required = true)]
    pub next_step: Option<NextStep>,
    #[schema(required = true)]
    pub user_name: Option<String>,
    /// A short, sanitized reason, never a provider's raw body.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// The step to run next and the fields it needs.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct NextStep {
    /// The `step` to send with the next request.
    pub step_index: usize,
    pub step_name: String,
    pub fields: Vec<FieldOut>,
}

/// A field of a prompt: an input, or a display field (`link`, `info`) carrying `value`.
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct FieldOut {
    pub key: String,
    pub label: String,
    /// `text`, `email`, `password`, … for inputs; `link` or `info` for display fields.
    pub field_type: String,
    pub required: bool,
    /// Display fields (`link`, `info`) only: what to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value: Option<String>,
}

/// `GET …/auth/check`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "valid": true }))]
pub struct CheckResponse {
    /// Whether a provider session is stored for the caller.
    pub valid: bool,
}

/// `POST …/auth/logout`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "success": true }))]
pub struct LogoutResponse {
    pub success: bool,
}

/// `/healthz`, `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({ "status": "ok" }))]
pub struct Status {
    pub status: String,
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

/// The caller, after checks 1 (valid JWT) and 2 (no password change pending).
pub struct User(pub Arc<Claims>);

impl FromRequestParts<Shared> for User {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        user(state, &parts.headers).map(User)
    }
}

/// Checks 1 (valid JWT) and 2 (no password change pending) on a request's headers.
fn user(state: &AppState, headers: &HeaderMap) -> Result<Arc<Claims>, ApiError> {
    let token = headers
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
    Ok(claims)
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

/// The client's address, for the per-address limit: the last entry of the configured header
/// (what the trusted proxy next to us saw), else, when the header is absent or its entry is not
/// an address, the connection's peer.
fn client_address(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<IpAddr> {
    let from_header = state.client_ip_header.as_ref().and_then(|name| {
        let last = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())?;
        last.parse::<IpAddr>()
            .ok()
            .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
    });
    from_header.or(peer.map(|a| a.ip()))
}

/// The client's address (see `client_address`), if known.
pub struct Client(Option<IpAddr>);

impl FromRequestParts<Shared> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Client(client_address(state, &parts.headers, peer)))
    }
}

/// What an attempt was, for the brute-force limits: a failure the provider file decides is
/// the user's (see `Login::Failed`), or the step the request ran asked for again (a wrong
/// code, with or without a message).
fn verdict(answer: &Login, step: usize) -> Verdict {
    match answer {
        Login::Failed { rejected: true, .. } => Verdict::Rejected,
        Login::Prompt { step_index, .. } if *step_index == step => Verdict::Rejected,
        Login::Complete { .. } => Verdict::Succeeded,
        Login::Failed { .. } | Login::Prompt { .. } => Verdict::NotCounted,
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
    // An integer, however written: JSON (and its schema) count 1.0 as the integer 1.
    let step = obj
        .get("step")
        .and_then(|v| {
            v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
        })
        .ok_or_else(|| {
            ApiError::BadRequest("`step` is required and must be a non-negative integer".into())
        })?;
    if !matches!(
        obj.get("session_id"),
        None | Some(Value::Null | Value::String(_))
    ) {
        return Err(ApiError::BadRequest(
            "`session_id` must be a string or null".into(),
        ));
    }
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

/// Starts or continues a provider authentication flow.
#[utoipa::path(post, path = "/api/providers/{id}/auth/login", tag = "auth",
    params(("id" = String, Path, description = "Provider id")),
    request_body(content = LoginRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The step ran: `success: true`, or `success: false` with `next_step` and/or `error`", body = LoginResponse),
        (status = 400, description = "Malformed body, step out of range or not expected next, a required input missing or too long", body = ErrorBody),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, provider access denied, or a non-admin acting on a global provider", body = ErrorBody),
        (status = 404, description = "No such provider or flow", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt may be made"))),
        (status = 503, description = "The session store is unreachable; nothing was written", body = ErrorBody),
    ))]
async fn login(
    State(state): State<Shared>,
    user: Result<User, ApiError>,
    Path(id): Path<String>,
    Client(address): Client,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    login_answer(
        &state,
        user.map(|User(u)| u),
        &id,
        address,
        body.map_err(BodyError::from),
    )
    .await
}

/// `login`'s answer, once its request is read: the one implementation behind the router's
/// route and `App`'s own dispatch.
async fn login_answer(
    state: &AppState,
    user: Result<Arc<Claims>, ApiError>,
    id: &str,
    address: Option<IpAddr>,
    body: Result<Bytes, BodyError>,
) -> Response {
    let mut trace = Trace::default();
    let answer = match user {
        Ok(user) => run_login(state, &user, id, address, body, &mut trace).await,
        Err(e) => Err(e),
    };
    let mut response = answer.into_response();
    response.extensions_mut().insert(trace);
    response
}

/// Why a login's body could not be read.
#[derive(Debug)]
enum BodyError {
    /// Longer than `MAX_BODY`.
    TooLarge,
    /// Cut off, or the connection failed.
    Unreadable(String),
}

impl From<BytesRejection> for BodyError {
    fn from(e: BytesRejection) -> Self {
        match e {
            BytesRejection::FailedToBufferBody(
                axum::extract::rejection::FailedToBufferBody::LengthLimitError(_),
            ) => BodyError::TooLarge,
            e => BodyError::Unreadable(e.to_string()),
        }
    }
}

/// Reads a body of at most `MAX_BODY` bytes.
async fn read_body<B>(body: B) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Unreadable(format!(
            "Failed to buffer the request body: {e}"
        ))),
    }
}

/// What the request log says of a login beyond its route and status: ids, never values.
#[derive(Debug, Clone, Copy, Default)]
struct Trace {
    flow: Option<&'static str>,
    step: Option<usize>,
    outcome: Option<Outcome>,
}

async fn run_login(
    state: &AppState,
    user: &Claims,
    id: &str,
    address: Option<IpAddr>,
    body: Result<Bytes, BodyError>,
    trace: &mut Trace,
) -> Result<Json<LoginResponse>, ApiError> {
    let p = provider(state, id, user)?;
    credential_action(p, user)?;
    // Too many failures: refused before the body is read or the provider asked. The attempt
    // is counted now, before the provider is asked, so that parallel attempts cannot all pass
    // a limit that none of them has reached yet; it is given back below when the answer shows
    // it was not the user's failure.
    let keys = Keys::new(&user.sub, p.id, address);
    let reservation = match state.limits.reserve(&state.store, keys).await? {
        Ok(r) => r,
        Err(secs) => {
            tracing::warn!(provider = p.id, "login refused: too many failed attempts");
            trace.outcome = Some(Outcome::Limited);
            state.metrics.login(p.id, Outcome::Limited);
            return Err(ApiError::TooManyRequests(secs));
        }
    };
    let answer = attempt(state, user, p, body, trace).await;
    let verdict = match &answer {
        Ok((answer, step)) => verdict(answer, *step),
        Err(_) => Verdict::NotCounted,
    };
    // The answer stands whatever happens to the bookkeeping: a completed login's session is
    // written, and a count that could not be given back errs on the side of refusing.
    if let Err(e) = state
        .limits
        .settle(&state.store, reservation, verdict)
        .await
    {
        tracing::warn!(provider = p.id, error = %e, "login attempt not settled in the limits");
    }
    let (answer, _) = answer?;
    Ok(Json(answer.into()))
}

/// A login attempt past the limits: the body read, the flow found and run.
async fn attempt(
    state: &AppState,
    user: &Claims,
    p: &'static ProviderDef,
    body: Result<Bytes, BodyError>,
    trace: &mut Trace,
) -> Result<(Login, usize), ApiError> {
    // Over the limit is 400 like any other body the server will not take: the documented
    // answers to a body are 400, never 413, 415 or 422.
    let body = body.map_err(|e| match e {
        BodyError::TooLarge => ApiError::BadRequest(format!(
            "the request body is larger than {} KiB",
            MAX_BODY / 1024
        )),
        // A body that cannot be read (cut off) is a malformed request like any other.
        BodyError::Unreadable(e) => {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })?;
    let (flow_id, step, inputs) = parse_login(&body)?;
    let flow = p
        .flow(&flow_id)
        .ok_or_else(|| ApiError::NotFound(format!("flow `{flow_id}` not found")))?;
    trace.flow = Some(flow.id);
    trace.step = Some(step);
    let answer = state
        .engine(p)
        .login(p, owner(p, user), flow, step, inputs)
        .await?;
    let outcome = match answer {
        Login::Complete { .. } => Outcome::Success,
        Login::Prompt { .. } => Outcome::NextStep,
        Login::Failed { .. } => Outcome::Failed,
    };
    trace.outcome = Some(outcome);
    state.metrics.login(p.id, outcome);
    Ok((answer, step))
}

/// A fixed JSON answer: nothing to build or serialize.
fn fixed_json(body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whether the caller has a stored session for the provider.
#[utoipa::path(get, path = "/api/providers/{id}/auth/check", tag = "auth",
    params(("id" = String, Path, description = "Provider id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether a session is stored", body = CheckResponse),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, or provider access denied", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 503, description = "The session store is unreachable", body = ErrorBody),
    ))]
async fn check(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_for(&state, &user, &id).await
}

async fn check_for(state: &AppState, user: &Claims, id: &str) -> Result<Response, ApiError> {
    let p = provider(state, id, user)?;
    let valid = state.store.has_session(owner(p, user), p.id).await?;
    Ok(fixed_json(if valid {
        r#"{"valid":true}"#
    } else {
        r#"{"valid":false}"#
    }))
}

/// Clears the stored provider session, after the provider's own logout request if it has one.
#[utoipa::path(post, path = "/api/providers/{id}/auth/logout", tag = "auth",
    params(("id" = String, Path, description = "Provider id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session is gone", body = LogoutResponse),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, provider access denied, or a non-admin acting on a global provider", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 503, description = "The session store is unreachable; nothing was deleted", body = ErrorBody),
    ))]
async fn logout(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    logout_for(&state, &user, &id).await
}

async fn logout_for(state: &AppState, user: &Claims, id: &str) -> Result<Response, ApiError> {
    let p = provider(state, id, user)?;
    credential_action(p, user)?;
    state.engine(p).logout(p, owner(p, user)).await?;
    Ok(fixed_json(r#"{"success":true}"#))
}

/// A provider as a frontend needs it to draw its flows (`GET /api/providers`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "acme", "name": "Acme TV", "logo": null, "scope": "per_user",
    "auth_flows": [{ "id": "email_password", "name": "Email & Password", "fields": [
        { "key": "email", "label": "Email", "field_type": "email", "required": true },
        { "key": "password", "label": "Password", "field_type": "password", "required": true }
    ]}]
}))]
pub struct ProviderInfo {
    pub id: &'static str,
    pub name: &'static str,
    #[schema(required = true)]
    pub logo: Option<&'static str>,
    /// `per_user`: each user has a session; `global`: one shared session, which only admins
    /// log in to or out of.
    #[schema(schema_with = scope_schema)]
    pub scope: &'static str,
    pub auth_flows: Vec<FlowInfo>,
}

fn scope_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([Scope::PerUser.as_str(), Scope::Global.as_str()]))
        .build()
}

/// A flow and the fields its first step asks for.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub fields: Vec<FieldInfo>,
}

/// An input of a flow's first step.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldInfo {
    pub key: &'static str,
    pub label: &'static str,
    pub field_type: &'static str,
    pub required: bool,
}

/// What a frontend needs to draw a provider's flows.
pub fn describe(p: &ProviderDef) -> ProviderInfo {
    let field = |f: &FieldDef| FieldInfo {
        key: f.key,
        label: f.label,
        field_type: f.field_type,
        required: f.required,
    };
    ProviderInfo {
        id: p.id,
        name: p.name,
        logo: p.logo,
        scope: p.scope.as_str(),
        auth_flows: p
            .flows
            .iter()
            .map(|f| FlowInfo {
                id: f.id,
                name: f.name,
                fields: f.inputs.iter().map(field).collect(),
            })
            .collect(),
    }
}

/// The providers the token may use, with their flows.
#[utoipa::path(get, path = "/api/providers", tag = "providers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The providers the token's allow-list permits", body = Vec<ProviderInfo>),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required", body = ErrorBody),
    ))]
async fn list(State(state): State<Shared>, User(user): User) -> Json<Vec<ProviderInfo>> {
    Json(
        state
            .providers
            .iter()
            .filter(|p| user.allows(p.id))
            .map(|p| describe(p))
            .collect(),
    )
}

/// One provider, with its flows.
#[utoipa::path(get, path = "/api/providers/{id}", tag = "providers",
    params(("id" = String, Path, description = "Provider id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The provider", body = ProviderInfo),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, or provider access denied", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn one(
    State(state): State<Shared>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<ProviderInfo>, ApiError> {
    Ok(Json(describe(provider(&state, &id, &user)?)))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: the session store is reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status, example = json!({ "status": "ready" })),
        (status = 503, description = "The session store is unreachable", body = ErrorBody),
    ))]
async fn readyz(State(state): State<Shared>) -> Result<Json<Status>, ApiError> {
    if state.store.ping().await {
        Ok(Json(Status {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::Unavailable(
            "the session store is unreachable".into(),
        ))
    }
}

/// Prometheus metrics (OpenMetrics text). With a metrics token set (`--metrics-token`), only
/// for a bearer of it.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "A metrics token is set and the request does not carry it", body = ErrorBody),
    ))]
async fn metrics(State(state): State<Shared>, parts: Parts) -> Response {
    if let Some(want) = &state.metrics_token {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::auth::same(given.as_bytes(), want.as_bytes()) {
            return ApiError::Unauthorized("the metrics token is missing or wrong").into_response();
        }
    }
    let body = state.metrics.render(&state.store).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Every route's template, so that the log and the metrics hold a `&'static str`.
const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/console",
    "/api/openapi.json",
    "/api/providers",
    "/api/providers/{id}",
    "/api/providers/{id}/auth/login",
    "/api/providers/{id}/auth/check",
    "/api/providers/{id}/auth/logout",
];

/// The API's own routes, which `App` answers without the router: the seed's login, check and
/// logout, every request of a client's session.
const LOGIN: &str = "/api/providers/{id}/auth/login";
const CHECK: &str = "/api/providers/{id}/auth/check";
const LOGOUT: &str = "/api/providers/{id}/auth/logout";

/// The route `path` matches, by the matcher the router uses, and the provider id it names
/// (as written in the path, not yet percent-decoded).
fn route_of(path: &str) -> (Option<&'static str>, Option<&str>) {
    static MATCHER: std::sync::LazyLock<matchit::Router<&'static str>> =
        std::sync::LazyLock::new(|| {
            let mut m = matchit::Router::new();
            for r in ROUTES {
                m.insert(*r, *r).expect("the routes are distinct");
            }
            m
        });
    match MATCHER.at(path) {
        Ok(m) => (Some(*m.value), m.params.get("id")),
        Err(_) => (None, None),
    }
}

/// The routes `App` answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Login,
    Check,
    Logout,
}

/// Whether `App` answers a request itself, and the provider id as the router's `Path` would
/// give it; `None`: the router's (another method, `HEAD` included, another route, or an id
/// that is not UTF-8 once percent-decoded, which the router refuses).
fn own_route(route: &str, method: &str, id: Option<&str>) -> Option<(Own, String)> {
    let own = match (route, method) {
        (LOGIN, "POST") => Own::Login,
        (CHECK, "GET") => Own::Check,
        (LOGOUT, "POST") => Own::Logout,
        _ => return None,
    };
    let id = percent_encoding::percent_decode_str(id?)
        .decode_utf8()
        .ok()?;
    Some((own, id.into_owned()))
}

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// The API as hyper serves it. The path is matched once, here: for the seed's login, check
/// and logout (the requests a client's session is made of) `App` calls their handlers itself;
/// every other request goes to the axum router, which also answers those three paths for
/// other methods (405, `HEAD`). Around both, one log line per request (method, route, status,
/// duration, and for the API's routes the provider, flow and step ids, never a value) and the
/// request counter.
#[derive(Clone)]
pub struct App {
    router: Router,
    state: Shared,
}

impl App {
    /// Answers `req`, from a client at `peer` when known.
    fn answer<B>(&self, mut req: axum::http::Request<B>, peer: Option<SocketAddr>) -> Logged
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = std::time::Instant::now();
        let method = match *req.method() {
            axum::http::Method::GET => "GET",
            axum::http::Method::POST => "POST",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::PUT => "PUT",
            axum::http::Method::DELETE => "DELETE",
            axum::http::Method::PATCH => "PATCH",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        let (route, id) = route_of(req.uri().path());
        // A compiled provider's id, when the path names one.
        let provider = id
            .and_then(|id| self.state.providers.iter().find(|p| p.id == id))
            .map(|p| p.id);
        let route = route.unwrap_or("-");
        let state = self.state.clone();
        let answer: Answer = match own_route(route, method, id) {
            Some((own @ (Own::Check | Own::Logout), id)) => Box::pin(async move {
                let answer = match user(&state, req.headers()) {
                    Ok(user) if own == Own::Check => check_for(&state, &user, &id).await,
                    Ok(user) => logout_for(&state, &user, &id).await,
                    Err(e) => Err(e),
                };
                answer.into_response()
            }),
            Some((Own::Login, id)) => Box::pin(async move {
                let (parts, body) = req.into_parts();
                // As the router's extractors run: the token, then the body.
                let user = user(&state, &parts.headers);
                let body = read_body(body).await;
                let address = client_address(&state, &parts.headers, peer);
                login_answer(&state, user, &id, address, body).await
            }),
            None => {
                if let Some(peer) = peer {
                    req.extensions_mut().insert(ConnectInfo(peer));
                }
                let answer =
                    tower_service::Service::call(&mut self.router.clone(), req.map(Body::new));
                Box::pin(async move {
                    let Ok(response) = answer.await;
                    response
                })
            }
        };
        Logged {
            answer,
            state: self.state.clone(),
            started,
            method,
            route,
            provider,
        }
    }
}

/// For a caller that drives `App` as a tower service: the client's address, when known, is
/// the request's `ConnectInfo`.
impl tower_service::Service<axum::extract::Request> for App {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Logged;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        self.answer(req, peer)
    }
}

/// `App` on one connection, as hyper calls it.
struct Connection {
    app: App,
    peer: SocketAddr,
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Logged;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        self.app.answer(req, Some(self.peer))
    }
}

/// Serves `app` over HTTP/1.1 on `listener` until `signal` completes; then takes no new
/// connection, lets the requests under way finish, closes idle connections, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    signal: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // The connection went away before it was accepted: the next one.
                Err(e) if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionRefused
                ) => continue,
                // Out of file descriptors, say: wait rather than spin.
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut signal => break,
                    }
                }
            },
            () = &mut signal => break,
        };
        // An answer is written whole, at once: nothing to gain from Nagle's delay.
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            Connection {
                app: app.clone(),
                peer,
            },
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A request's answer, logged and counted when it is ready.
pub struct Logged {
    answer: Answer,
    state: Shared,
    started: std::time::Instant,
    method: &'static str,
    route: &'static str,
    provider: Option<&'static str>,
}

impl std::future::Future for Logged {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let response = std::task::ready!(this.answer.as_mut().poll(cx));
        let status = response.status().as_u16();
        let trace = response
            .extensions()
            .get::<Trace>()
            .copied()
            .unwrap_or_default();
        this.state.metrics.request(this.method, this.route, status);
        tracing::info!(
            target: "otvi::request",
            method = tracing::field::display(this.method),
            route = tracing::field::display(this.route),
            status,
            ms = this.started.elapsed().as_secs_f64() * 1000.0,
            provider = this.provider.map(tracing::field::display),
            flow = trace.flow.map(tracing::field::display),
            step = trace.step,
            outcome = trace.outcome.map(|o| tracing::field::display(o.as_str())),
        );
        std::task::Poll::Ready(Ok(response))
    }
}

/// The OpenAPI 3.1 document of this API, built from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "otvi-flows provider authentication API",
        description = "Log users in to TV providers through flows compiled from provider files (seed 000)."),
    paths(list, one, login, check, logout, healthz, readyz, openapi_json, metrics, console),
    components(schemas(ErrorBody, LoginRequest, LoginResponse, NextStep, FieldOut, CheckResponse,
        LogoutResponse, ProviderInfo, FlowInfo, FieldInfo, Status)),
    modifiers(&BearerScheme),
    tags((name = "auth", description = "Log in, check and log out (seed 000)"),
        (name = "providers", description = "The compiled providers and their flows"),
        (name = "operations", description = "Health, readiness and this document")),
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some("HS256 JWT with `sub` and `exp` (see `otvi token`)"))
                        .build(),
                ),
            );
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "metrics_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("The token given to `otvi serve --metrics-token`"))
                        .build(),
                ),
            );
    }
}

/// The document, rendered once.
pub fn openapi() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        doc.to_json().expect("the OpenAPI document serializes")
    })
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Response {
    fixed_json(openapi())
}

/// The login console: one static page, compiled in, that loads nothing from elsewhere.
const CONSOLE: &str = include_str!("console.html");

/// The login console: a page to run flows, check and log out by hand.
#[utoipa::path(get, path = "/console", tag = "operations",
    responses((status = 200, description = "The console page", content_type = "text/html; charset=utf-8", body = String)))]
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
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
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

pub fn router(state: AppState) -> App {
    let state = Arc::new(state);
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/console", get(console))
        .route("/api/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .route("/api/providers", get(list))
        .route("/api/providers/{id}", get(one))
        .route("/api/providers/{id}/auth/login", post(login))
        .route("/api/providers/{id}/auth/check", get(check))
        .route("/api/providers/{id}/auth/logout", post(logout))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    App { router, state }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_asked_for_again_counts_with_or_without_a_message() {
        let prompt = |step_index, message: Option<&str>| Login::Prompt {
            step_index,
            step_name: "Code",
            fields: Vec::new(),
            message: message.map(str::to_owned),
        };
        assert_eq!(verdict(&prompt(1, None), 1), Verdict::Rejected);
        assert_eq!(
            verdict(&prompt(1, Some("wrong code")), 1),
            Verdict::Rejected
        );
        // Going on to the next step is not a failure.
        assert_eq!(verdict(&prompt(1, None), 0), Verdict::NotCounted);
        assert_eq!(
            verdict(&prompt(2, Some("enter the code")), 1),
            Verdict::NotCounted
        );
        let failed = |rejected| Login::Failed {
            error: String::new(),
            rejected,
        };
        assert_eq!(verdict(&failed(true), 0), Verdict::Rejected);
        assert_eq!(verdict(&failed(false), 0), Verdict::NotCounted);
        let done = Login::Complete { user_name: None };
        assert_eq!(verdict(&done, 1), Verdict::Succeeded);
    }

    #[test]
    fn a_path_gets_the_route_the_router_matches_it_to() {
        let p = "/api/providers/{id}";
        for (path, route, id) in [
            ("/healthz", Some("/healthz"), None),
            ("/api/providers", Some("/api/providers"), None),
            ("/api/providers/acme", Some(p), Some("acme")),
            (
                "/api/providers/acme/auth/check",
                Some("/api/providers/{id}/auth/check"),
                Some("acme"),
            ),
            (
                "/api/providers/x/auth/login",
                Some("/api/providers/{id}/auth/login"),
                Some("x"),
            ),
            // The router's fallback: a trailing slash, a longer path.
            ("/api/providers/", None, None),
            ("/healthz/", None, None),
            ("/api/providers/acme/", None, None),
            ("/api/providers/acme/auth", None, None),
            ("/api/providers/acme/auth/check/more", None, None),
            ("/nowhere", None, None),
        ] {
            assert_eq!(route_of(path), (route, id), "{path}");
        }
    }

    #[test]
    fn app_answers_login_check_and_logout_itself_and_leaves_the_rest_to_the_router() {
        let own = |path: &str, method: &str| {
            let (route, id) = route_of(path);
            own_route(route.unwrap_or("-"), method, id)
        };
        let acme = |o| Some((o, "acme".to_string()));
        assert_eq!(
            own("/api/providers/acme/auth/login", "POST"),
            acme(Own::Login)
        );
        assert_eq!(
            own("/api/providers/acme/auth/check", "GET"),
            acme(Own::Check)
        );
        assert_eq!(
            own("/api/providers/acme/auth/logout", "POST"),
            acme(Own::Logout)
        );
        // The id as `Path` decodes it.
        assert_eq!(
            own("/api/providers/ac%6De/auth/check", "GET"),
            acme(Own::Check)
        );
        assert_eq!(
            own("/api/providers/a%2Fb/auth/login", "POST"),
            Some((Own::Login, "a/b".to_string()))
        );
        for (path, method) in [
            ("/api/providers/acme/auth/check", "HEAD"),
            ("/api/providers/acme/auth/check", "POST"),
            ("/api/providers/acme/auth/login", "GET"),
            ("/api/providers/acme/auth/logout", "DELETE"),
            ("/api/providers/%FF/auth/check", "GET"),
            ("/api/providers/%FF/auth/login", "POST"),
            ("/api/providers/acme", "GET"),
            ("/api/providers/acme/auth/check/", "GET"),
            ("/healthz", "GET"),
        ] {
            assert_eq!(own(path, method), None, "{method} {path}");
        }
    }

    /// `route_of` against axum's own matching: a route for every template, answering it.
    #[tokio::test]
    async fn route_of_agrees_with_the_router() {
        let mut router = Router::new();
        for r in ROUTES {
            router = router.route(r, get(move || async move { *r }));
        }
        for path in [
            "/readyz",
            "/api/openapi.json",
            "/api/providers",
            "/api/providers/a%2Fb",
            "/api/providers/{id}",
            "/api/providers/acme/auth/logout",
            "/api/providers/",
            "/api/providers//auth/check",
            "/api/providers/acme/auth/",
            "/api/providers/acme/x/check",
            "/metrics/",
            "/",
        ] {
            let req = axum::extract::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let answer = tower_service::Service::call(&mut router.clone(), req)
                .await
                .unwrap();
            let matched = if answer.status() == StatusCode::OK {
                let body = axum::body::to_bytes(answer.into_body(), 1024)
                    .await
                    .unwrap();
                Some(String::from_utf8(body.to_vec()).unwrap())
            } else {
                None
            };
            assert_eq!(route_of(path).0.map(String::from), matched, "{path}");
        }
    }
}

//! A mock of Indee admin authentication, on loopback, recording every request it receives,
//! with the enterprise's identity provider (IdP) on a second listener.
//!
//! Every API endpoint first requires `Authorization: Bearer `[`API_KEY`]; without it the answer
//! is 401 `{"status_code": "A2002", "status_message": "Access Denied"}`. Answers carry a
//! body-level `status_code` (`A0000` is success).
//!
//! - `POST /v1/admin/auth/login` `{username, password, extended_expiry?}`: [`USERNAME`] /
//!   [`PASSWORD`] get a `token` and a `refresh_token`; anything else is 401 `A2001`.
//! - `POST /v1/admin/auth/sso/initiate` `{username: email}`: a fresh `state` and `nonce` and the
//!   `redirect` URL of the IdP's `/authorize` page.
//! - IdP `GET /authorize?…&state=…`: a page showing a one-time authorization code for that
//!   state (see [`code_from_page`]) and a link back to the `redirect_uri` with the code.
//! - `POST /v1/admin/auth/sso/login` `{state, nonce, email, code, error, error_description?}`:
//!   the state's nonce and email and its current code get a `token` and a `refresh_token`.
//! - `POST /v1/admin/auth/refresh` `{refresh_token}`: a new `token`, or 401 `A2003`.
//! - `POST /v1/admin/auth/logout` `{refresh_token}`: revokes the refresh token, or 401 `A2003`.

use crate::record::{lock, serve, Received, Recorder};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The API key every API request must carry as a bearer token.
pub const API_KEY: &str = "indee-test-api-key-7f3a9c";
/// The admin user of the password login.
pub const USERNAME: &str = "john.doe";
/// The password of [`USERNAME`].
pub const PASSWORD: &str = "abcd@1234";
/// An enterprise user's email for the SSO login (the seed example's).
pub const SSO_EMAIL: &str = "enterprisecbs@indee.tv";

/// The client id in the IdP redirect (the seed example's).
const CLIENT_ID: &str = "jkljeS0239F38tzRbh7LvMi5w7LHP";
/// The front end's SSO callback, where the IdP sends the user back (the seed example's).
const CALLBACK: &str = "http://localhost:3000/login/sso_callback";
/// [`CALLBACK`], percent-encoded as a query value.
const CALLBACK_ENCODED: &str = "http%3A%2F%2Flocalhost%3A3000%2Flogin%2Fsso_callback";

struct SsoAttempt {
    nonce: String,
    email: String,
    /// The code the IdP last issued for this state.
    code: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// Access tokens handed out, oldest first.
    tokens: Vec<String>,
    /// Refresh tokens handed out, oldest first.
    refresh_tokens: Vec<String>,
    /// Refresh token -> the user it was issued to.
    refresh_subjects: HashMap<String, String>,
    /// Refresh tokens revoked by logout, oldest first.
    revoked: Vec<String>,
    /// Initiated, not yet completed SSO logins by state.
    sso: HashMap<String, SsoAttempt>,
}

type Shared = Arc<Mutex<Inner>>;

#[derive(Clone)]
struct Ctx {
    inner: Shared,
    idp_url: String,
}

/// A running Indee mock: the API and its identity provider.
#[derive(Clone)]
pub struct IndeeMock {
    pub addr: SocketAddr,
    pub idp_addr: SocketAddr,
    inner: Shared,
    recorder: Recorder,
    idp_recorder: Recorder,
}

impl IndeeMock {
    /// Starts the API and the IdP on `127.0.0.1`, each at a free port.
    pub async fn start() -> std::io::Result<IndeeMock> {
        let inner = Shared::default();
        let idp_recorder = Recorder::default();
        let idp = Router::new()
            .route("/authorize", get(authorize))
            .with_state(inner.clone());
        let idp_addr = serve(idp_recorder.wrap(idp)).await?;
        let ctx = Ctx {
            inner: inner.clone(),
            idp_url: format!("http://{idp_addr}"),
        };
        let recorder = Recorder::default();
        let api = Router::new()
            .route("/v1/admin/auth/login", post(login))
            .route("/v1/admin/auth/sso/initiate", post(sso_initiate))
            .route("/v1/admin/auth/sso/login", post(sso_login))
            .route("/v1/admin/auth/refresh", post(refresh))
            .route("/v1/admin/auth/logout", post(logout))
            .route_layer(middleware::from_fn(require_api_key))
            .with_state(ctx);
        let addr = serve(recorder.wrap(api)).await?;
        Ok(IndeeMock {
            addr,
            idp_addr,
            inner,
            recorder,
            idp_recorder,
        })
    }

    /// The API: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The identity provider: `http://127.0.0.1:PORT` (another port than [`Self::url`]).
    pub fn idp_url(&self) -> String {
        format!("http://{}", self.idp_addr)
    }

    /// Every request the API received so far, oldest first (not the IdP's).
    pub fn received(&self) -> Vec<Received> {
        self.recorder.all()
    }

    /// Requests the API received on `path`, oldest first.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.recorder.on(path)
    }

    /// Every request the IdP received so far, oldest first.
    pub fn idp_received(&self) -> Vec<Received> {
        self.idp_recorder.all()
    }

    /// Access tokens handed out (by login, SSO login and refresh), oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner).tokens.clone()
    }

    /// Refresh tokens handed out (by login and SSO login), oldest first.
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        lock(&self.inner).refresh_tokens.clone()
    }

    /// Refresh tokens revoked by logout, oldest first.
    pub fn revoked_refresh_tokens(&self) -> Vec<String> {
        lock(&self.inner).revoked.clone()
    }
}

/// The code on a page of the IdP's `/authorize`: the text of `<code id="sso-code">…</code>`.
pub fn code_from_page(html: &str) -> Option<String> {
    const OPEN: &str = r#"<code id="sso-code">"#;
    let start = html.find(OPEN)? + OPEN.len();
    let len = html[start..].find("</code>")?;
    let code = html[start..start + len].trim();
    (!code.is_empty()).then(|| code.to_string())
}

fn status(http: StatusCode, code: &str, message: &str) -> Response {
    (
        http,
        Json(json!({ "status_code": code, "status_message": message })),
    )
        .into_response()
}

fn invalid_request() -> Response {
    // Choice: the seed lists no code for a malformed request; A1001 "Invalid request".
    status(StatusCode::BAD_REQUEST, "A1001", "Invalid request")
}

fn unauthorized() -> Response {
    status(StatusCode::UNAUTHORIZED, "A2003", "Unauthorized")
}

async fn require_api_key(request: Request, next: Next) -> Response {
    // Choice: the scheme is matched case-insensitively (as HTTP auth schemes are), the key
    // exactly.
    let ok = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key == API_KEY);
    if ok {
        next.run(request).await
    } else {
        status(StatusCode::UNAUTHORIZED, "A2002", "Access Denied")
    }
}

/// The body as a JSON object.
fn object(body: &Bytes) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// A JWT-shaped token (header.payload.signature, base64url); the signature is random.
fn jwt(subject: &str, kind: &str, extended: bool) -> String {
    let header = json!({ "alg": "HS256", "typ": "JWT" }).to_string();
    let mut claims = json!({
        "sub": subject,
        "typ": kind,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
    });
    if extended {
        claims["extended_expiry"] = Value::Bool(true);
    }
    format!(
        "{}.{}.{}",
        base64url(header.as_bytes()),
        base64url(claims.to_string().as_bytes()),
        base64url(uuid::Uuid::new_v4().as_bytes()),
    )
}

/// The 200 answer of a login: a new access token and refresh token for `subject`.
fn logged_in(inner: &Shared, subject: &str, extended: bool) -> Response {
    let token = jwt(subject, "access", false);
    let refresh_token = jwt(subject, "refresh", extended);
    {
        let mut i = lock(inner);
        i.tokens.push(token.clone());
        i.refresh_tokens.push(refresh_token.clone());
        i.refresh_subjects
            .insert(refresh_token.clone(), subject.to_string());
    }
    Json(json!({
        "status_code": "A0000",
        "status_message": "success",
        "token": token,
        "refresh_token": refresh_token,
    }))
    .into_response()
}

async fn login(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let Some(body) = object(&body) else {
        return invalid_request();
    };
    // Choice: the seed's table types the password as Boolean, an evident slip; it is a string.
    let (Some(username), Some(password)) = (
        body.get("username").and_then(Value::as_str),
        body.get("password").and_then(Value::as_str),
    ) else {
        return invalid_request();
    };
    let extended = match body.get("extended_expiry") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return invalid_request(),
    };
    if (username, password) != (USERNAME, PASSWORD) {
        return status(
            StatusCode::UNAUTHORIZED,
            "A2001",
            "Invalid username or password",
        );
    }
    logged_in(&ctx.inner, username, extended)
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn sso_initiate(State(ctx): State<Ctx>, body: Bytes) -> Response {
    // Choice: any email address may start an SSO login (the enterprise lookup is not
    // modelled); a username that is not an email address is an invalid request.
    let Some(email) = object(&body)
        .and_then(|b| {
            b.get("username")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|e| e.contains('@'))
    else {
        return invalid_request();
    };
    let (state, nonce) = (random_token(), random_token());
    lock(&ctx.inner).sso.insert(
        state.clone(),
        SsoAttempt {
            nonce: nonce.clone(),
            email,
            code: None,
        },
    );
    let redirect = format!(
        "{}/authorize?client_id={CLIENT_ID}&response_type=code&scope=openid+profile+email\
         &nonce={nonce}&redirect_uri={CALLBACK_ENCODED}&state={state}",
        ctx.idp_url
    );
    Json(json!({
        "state": state,
        "nonce": nonce,
        "redirect": redirect,
        "status_code": "A0000",
        "status_message": "success",
    }))
    .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\n{body}\n</body></html>\n"
    );
    (status, Html(html)).into_response()
}

async fn authorize(
    State(inner): State<Shared>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let Some(state) = query.get("state") else {
        return page(StatusCode::BAD_REQUEST, "<p>Missing state.</p>");
    };
    let code = random_token();
    {
        let mut i = lock(&inner);
        let Some(attempt) = i.sso.get_mut(state) else {
            return page(
                StatusCode::BAD_REQUEST,
                "<p>Unknown or expired sign-in request.</p>",
            );
        };
        // Choice: every visit issues a fresh code for the state and the previous one stops
        // working, so only the code on the latest page is accepted.
        attempt.code = Some(code.clone());
    }
    // Choice: without a redirect_uri the link goes to the registered callback.
    let redirect_uri = query.get("redirect_uri").map_or(CALLBACK, String::as_str);
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let link = format!("{redirect_uri}{separator}code={code}&state={state}");
    page(
        StatusCode::OK,
        &format!(
            "<p>Signed in. Your code: <code id=\"sso-code\">{code}</code></p>\n\
             <p><a id=\"sso-continue\" href=\"{}\">Continue</a></p>",
            html_escape(&link)
        ),
    )
}

async fn sso_login(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let Some(body) = object(&body) else {
        return invalid_request();
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let (Some(state), Some(nonce), Some(email), Some(error)) = (
        text("state"),
        text("nonce"),
        text("email"),
        body.get("error").and_then(Value::as_bool),
    ) else {
        return invalid_request();
    };
    // Choice: error_description may be any JSON value (the seed's table says String, its
    // example sends `{}`); it is not looked at.
    let denied = |message: &str| status(StatusCode::UNAUTHORIZED, "A2001", message);
    // Choice: every refusal below leaves the state usable; only a successful login uses it.
    let mut i = lock(&ctx.inner);
    let Some(attempt) = i.sso.get(state) else {
        return denied("Invalid or expired SSO state");
    };
    if attempt.nonce != nonce {
        return denied("SSO nonce does not match");
    }
    // Choice: emails are compared case-insensitively.
    if !attempt.email.eq_ignore_ascii_case(email) {
        return denied("Email does not match the SSO request");
    }
    if error {
        return denied("The identity provider reported an error");
    }
    if attempt.code.is_none() || attempt.code.as_deref() != text("code") {
        return denied("Invalid SSO authorization code");
    }
    let subject = attempt.email.clone();
    i.sso.remove(state);
    drop(i);
    logged_in(&ctx.inner, &subject, false)
}

/// The `refresh_token` of the body, when it is one this mock issued and has not revoked.
fn live_refresh_token(inner: &Shared, body: &Bytes) -> Option<(String, String)> {
    // Choice: a body without a string refresh_token fails validation like an unknown token,
    // 401 A2003 (the seed: "If the validation fails, the A2003(401)").
    let token = object(body)?.get("refresh_token")?.as_str()?.to_string();
    let i = lock(inner);
    if i.revoked.contains(&token) {
        return None;
    }
    let subject = i.refresh_subjects.get(&token)?.clone();
    Some((token, subject))
}

async fn refresh(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let Some((_, subject)) = live_refresh_token(&ctx.inner, &body) else {
        return unauthorized();
    };
    // Choice: the refresh token is not rotated; it stays valid until logout.
    let token = jwt(&subject, "access", false);
    lock(&ctx.inner).tokens.push(token.clone());
    Json(json!({ "status_code": "A0000", "status_message": "success", "token": token }))
        .into_response()
}

async fn logout(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let Some((token, _)) = live_refresh_token(&ctx.inner, &body) else {
        return unauthorized();
    };
    {
        let mut i = lock(&ctx.inner);
        // Two concurrent logouts with the same token: the first one revokes it.
        if i.revoked.contains(&token) {
            return unauthorized();
        }
        i.revoked.push(token);
    }
    Json(json!({ "status_code": "A0000", "status_message": "success" })).into_response()
}

//! A mock of the OpenTV Authentication Gateway Service (AGS) sign-on, on loopback, recording
//! every request it receives.
//!
//! - `POST /ags/signOn` with header `x-auth-service-id: `[`AUTH_SERVICE_ID`] and body
//!   `{"parameters": [{"name": "username", "value": …}, {"name": "password", "value": …}]}`:
//!   [`ONE_ACCOUNT`] signs in at once (HTTP 201 with the tokens); [`SEVERAL_ACCOUNTS`] answers
//!   HTTP 300 with a `userAccountToken` and the linked accounts ([`LINKED_ACCOUNTS`]); anything
//!   else is 401.
//! - `POST /ags/subsequentSignOn` with headers `User-Token: <userAccountToken>` and
//!   `x-auth-service-id`, body `{"parameters": [{"name": "username", "value": <account>}]}`:
//!   HTTP 201 with the tokens of the chosen account; 403 when the account is not linked to the
//!   sign-in (the token stays valid for a retry); 401 for a missing or unknown token.
//!
//! Error bodies are `{"error": "<CODE>", "message": "<text>"}`.

use crate::record::{lock, serve, Received, Recorder};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The one authentication (SSO) service the gateway knows, sent as `x-auth-service-id`.
pub const AUTH_SERVICE_ID: &str = "opentv-sso";
/// A sign-in with a single account: `signOn` answers 201 straight away.
pub const ONE_ACCOUNT: (&str, &str) = ("dave", "dave-password");
/// A sign-in linked to several accounts: `signOn` answers 300 with a `userAccountToken`.
pub const SEVERAL_ACCOUNTS: (&str, &str) = ("family", "family-password");
/// The usernames of the accounts linked to [`SEVERAL_ACCOUNTS`], as `subsequentSignOn`
/// accepts them.
pub const LINKED_ACCOUNTS: &[&str] = &["parents", "kids"];

/// The accountId of [`ONE_ACCOUNT`] (the seed example's).
const ONE_ACCOUNT_ID: &str = "1663";

/// The accounts linked to [`SEVERAL_ACCOUNTS`]: (username, accountId, name).
const FAMILY: &[(&str, &str, &str)] = &[("parents", "2001", "Parents"), ("kids", "2002", "Kids")];

#[derive(Default)]
struct Inner {
    /// Access tokens handed out.
    tokens: Vec<String>,
    /// userAccountTokens handed out, oldest first.
    user_account_tokens: Vec<String>,
    /// userAccountToken not yet used -> the linked accounts it may sign in to.
    pending: HashMap<String, Vec<Account>>,
}

#[derive(Clone)]
struct Account {
    username: &'static str,
    account_id: &'static str,
}

type Shared = Arc<Mutex<Inner>>;

/// A running AGS mock.
#[derive(Clone)]
pub struct AgsMock {
    pub addr: SocketAddr,
    inner: Shared,
    recorder: Recorder,
}

impl AgsMock {
    /// Starts on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<AgsMock> {
        let inner = Shared::default();
        let recorder = Recorder::default();
        let app = Router::new()
            .route("/ags/signOn", post(sign_on))
            .route("/ags/subsequentSignOn", post(subsequent_sign_on))
            .with_state(inner.clone());
        let addr = serve(recorder.wrap(app)).await?;
        Ok(AgsMock {
            addr,
            inner,
            recorder,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.recorder.all()
    }

    /// Requests received on `path`, oldest first.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.recorder.on(path)
    }

    /// Access tokens handed out (by 201 answers), oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.inner).tokens.clone()
    }

    /// `userAccountToken`s handed out (by 300 answers), oldest first, used or not.
    pub fn issued_user_account_tokens(&self) -> Vec<String> {
        lock(&self.inner).user_account_tokens.clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    // Choice: the seed gives only the statuses of failures; the body is a code and a message.
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The refusal due when the mandatory `x-auth-service-id` header is missing or wrong.
fn auth_service_refusal(headers: &HeaderMap) -> Option<Response> {
    match header(headers, "x-auth-service-id") {
        None => Some(error(
            StatusCode::BAD_REQUEST,
            "MISSING_AUTH_SERVICE_ID",
            "The x-auth-service-id header is required",
        )),
        Some(id) if id != AUTH_SERVICE_ID => Some(error(
            StatusCode::FORBIDDEN,
            "UNKNOWN_AUTH_SERVICE",
            "Unknown authentication service",
        )),
        Some(_) => None,
    }
}

/// The `parameters` array of `body` as name -> value, or why the request is bad.
fn parameters(body: &Bytes) -> Result<HashMap<String, String>, &'static str> {
    let body: Value =
        serde_json::from_slice(body).map_err(|_| "The request body is not valid JSON")?;
    let list = body
        .get("parameters")
        .and_then(Value::as_array)
        .ok_or("parameters must be an array")?;
    let mut out = HashMap::new();
    for p in list {
        let (Some(name), Some(value)) = (
            p.get("name").and_then(Value::as_str),
            p.get("value").and_then(Value::as_str),
        ) else {
            return Err("Each parameter needs a string name and value");
        };
        // Choice: a parameter given twice is ambiguous, so the request is bad.
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err("A parameter is given more than once");
        }
    }
    Ok(out)
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

/// The 201 answer: new tokens for `account_id`.
fn signed_on(inner: &Shared, account_id: &str) -> Response {
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    lock(inner).tokens.push(access.clone());
    let body = json!({
        "access_token": access,
        "refresh_token": format!("rt-{}", uuid::Uuid::new_v4().simple()),
        "client_id": "PUB_989",
        "accountId": account_id,
        "token_type": "bearer",
        "expires_in": 3600,
        "refresh_expires_in": 172800,
        "fixed_refresh_expires_in": 2592000,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn sign_on(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(answer) = auth_service_refusal(&headers) {
        return answer;
    }
    let params = match parameters(&body) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return bad_request("The username and password parameters are required");
    };
    let credentials = (username.as_str(), password.as_str());
    if credentials == ONE_ACCOUNT {
        return signed_on(&inner, ONE_ACCOUNT_ID);
    }
    if credentials == SEVERAL_ACCOUNTS {
        let token = format!("uat-{}", uuid::Uuid::new_v4().simple());
        let accounts: Vec<Account> = FAMILY
            .iter()
            .map(|&(username, account_id, _)| Account {
                username,
                account_id,
            })
            .collect();
        {
            let mut i = lock(&inner);
            i.user_account_tokens.push(token.clone());
            i.pending.insert(token.clone(), accounts);
        }
        // Choice: the seed names the userAccountToken of the 300 answer but not how the
        // accounts are listed; they come as `accounts` of {username, accountId, name}.
        let listed: Vec<Value> = FAMILY
            .iter()
            .map(|(username, id, name)| json!({ "username": username, "accountId": id, "name": name }))
            .collect();
        let body = json!({ "userAccountToken": token, "accounts": listed });
        return (StatusCode::MULTIPLE_CHOICES, Json(body)).into_response();
    }
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
        "Invalid username or password",
    )
}

async fn subsequent_sign_on(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Choice: the checks run in this order: x-auth-service-id (400/403), User-Token (401),
    // body (400), then whether the account is linked (403).
    if let Some(answer) = auth_service_refusal(&headers) {
        return answer;
    }
    let invalid_token = || {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_USER_TOKEN",
            "Invalid or expired User-Token",
        )
    };
    let Some(token) = header(&headers, "user-token") else {
        return invalid_token();
    };
    let Some(accounts) = lock(&inner).pending.get(token).cloned() else {
        return invalid_token();
    };
    let params = match parameters(&body) {
        Ok(p) => p,
        Err(message) => return bad_request(message),
    };
    let Some(username) = params.get("username") else {
        return bad_request("The username parameter is required");
    };
    let Some(account) = accounts.iter().find(|a| a.username == username) else {
        // The token stays valid: the client may retry with a linked account.
        return error(
            StatusCode::FORBIDDEN,
            "ACCOUNT_NOT_LINKED",
            "Account is not linked to this sign-in",
        );
    };
    // The token is good for one sign-on. Two concurrent requests with the same token: only
    // the one that removes it signs on.
    if lock(&inner).pending.remove(token).is_none() {
        return invalid_token();
    }
    signed_on(&inner, account.account_id)
}

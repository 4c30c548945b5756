//! A mock of TrueNAS `auth.login_ex` / `auth.login_ex_continue` over HTTP, on loopback,
//! recording every request it receives.
//!
//! The request body is the method's parameters as a tuple array: `[login_data]`. The outcome
//! is the `response_type` of an HTTP 200 body; HTTP 400 means the parameters do not validate.
//!
//! - `POST /api/v2.0/auth/login_ex`
//!   `[{"mechanism": "PASSWORD_PLAIN", "username": …, "password": …, "login_options"?: {…}}]`:
//!   [`PLAIN`] → `SUCCESS` (`LEVEL_1`) and an authenticated session cookie; [`TWO_FACTOR`] →
//!   `OTP_REQUIRED` and the cookie of a session awaiting the OTP; [`EXPIRED_USER`] →
//!   `EXPIRED`; [`REDIRECT_USER`] → `REDIRECT` to [`REDIRECT_URL`]; anything else `AUTH_ERR`.
//! - `POST /api/v2.0/auth/login_ex_continue` `[{"mechanism": "OTP_TOKEN", "otp_token": …}]`
//!   with the session cookie: [`OTP`] → `SUCCESS` (`LEVEL_2`); a wrong code → `OTP_REQUIRED`
//!   again, but the [`MAX_OTP_ATTEMPTS`]-th wrong code → `AUTH_ERR` and the session is dropped.
//! - `GET /api/v2.0/auth/me` with the cookie of an authenticated session → its user_info.
//!
//! The session cookie is [`SESSION_COOKIE`].

use crate::record::{cookie_value, lock, serve, Received, Recorder};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A user without two-factor authentication.
pub const PLAIN: (&str, &str) = ("admin", "admin-pass");
/// A user with two-factor authentication: login_ex answers `OTP_REQUIRED`.
pub const TWO_FACTOR: (&str, &str) = ("alice", "alice-pass");
/// A user whose password has expired: login_ex answers `EXPIRED`.
pub const EXPIRED_USER: (&str, &str) = ("olduser", "old-pass");
/// A user served by another node: login_ex answers `REDIRECT` to [`REDIRECT_URL`].
pub const REDIRECT_USER: (&str, &str) = ("standby", "standby-pass");
/// The one-time password [`TWO_FACTOR`] must give.
pub const OTP: &str = "246810";
/// Wrong one-time passwords allowed per login: the last of them answers `AUTH_ERR`.
pub const MAX_OTP_ATTEMPTS: u32 = 3;
/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "tn_session";
/// Where [`REDIRECT_USER`] is sent.
pub const REDIRECT_URL: &str = "https://truenas-b.example/api/current";

struct User {
    credentials: (&'static str, &'static str),
    gecos: &'static str,
    uid: u32,
    two_factor: bool,
}

const USERS: &[User] = &[
    User {
        credentials: PLAIN,
        gecos: "Administrator",
        uid: 950,
        two_factor: false,
    },
    User {
        credentials: TWO_FACTOR,
        gecos: "Alice Example",
        uid: 1000,
        two_factor: true,
    },
];

impl User {
    fn info(&self) -> Value {
        json!({ "pw_name": self.credentials.0, "pw_gecos": self.gecos, "pw_uid": self.uid })
    }
}

enum Stage {
    /// Waiting for the OTP; `wrong` wrong codes so far.
    AwaitingOtp {
        wrong: u32,
    },
    Authenticated,
}

struct Session {
    user: &'static User,
    stage: Stage,
    /// Whether the SUCCESS answer carries the user_info (`login_options.user_info`).
    user_info: bool,
}

#[derive(Default)]
struct Inner {
    /// Session id -> session.
    sessions: HashMap<String, Session>,
    /// Session ids that completed authentication, oldest first.
    authenticated: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running TrueNAS mock.
#[derive(Clone)]
pub struct TrueNasMock {
    pub addr: SocketAddr,
    inner: Shared,
    recorder: Recorder,
}

impl TrueNasMock {
    /// Starts on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<TrueNasMock> {
        let inner = Shared::default();
        let recorder = Recorder::default();
        let app = Router::new()
            .route("/api/v2.0/auth/login_ex", post(login_ex))
            .route("/api/v2.0/auth/login_ex_continue", post(login_ex_continue))
            .route("/api/v2.0/auth/me", get(me))
            .with_state(inner.clone());
        let addr = serve(recorder.wrap(app)).await?;
        Ok(TrueNasMock {
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

    /// Session ids that completed authentication (by login_ex or login_ex_continue), oldest
    /// first; a session stays listed after it is dropped.
    pub fn authenticated_sessions(&self) -> Vec<String> {
        lock(&self.inner).authenticated.clone()
    }
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn answer(body: Value) -> Response {
    Json(body).into_response()
}

fn response_type(kind: &str) -> Value {
    json!({ "response_type": kind })
}

fn success(session: &Session, authenticator: &str) -> Value {
    let info = if session.user_info {
        session.user.info()
    } else {
        Value::Null
    };
    json!({ "response_type": "SUCCESS", "user_info": info, "authenticator": authenticator })
}

fn otp_required(user: &User) -> Value {
    json!({ "response_type": "OTP_REQUIRED", "username": user.credentials.0 })
}

/// Validates the tuple `[login_data]`: one object, only `allowed` keys, `mechanism` as given.
/// The error is the message of the 400 answer.
fn login_data(
    body: &Bytes,
    mechanism: &str,
    allowed: &[&str],
) -> Result<Map<String, Value>, String> {
    let params: Value =
        serde_json::from_slice(body).map_err(|_| "the request body is not valid JSON")?;
    let params = params
        .as_array()
        .ok_or("params must be an array: [login_data]")?;
    if params.len() != 1 {
        return Err(format!(
            "expected exactly 1 parameter (login_data), got {}",
            params.len()
        ));
    }
    let data = params[0]
        .as_object()
        .ok_or("login_data must be an object")?;
    if let Some(extra) = data.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("login_data.{extra}: No Additional Properties"));
    }
    if data.get("mechanism").and_then(Value::as_str) != Some(mechanism) {
        // Choice: only the mechanism the seed describes for each method is supported.
        return Err(format!("login_data.mechanism must be \"{mechanism}\""));
    }
    Ok(data.clone())
}

fn string_field<'d>(data: &'d Map<String, Value>, key: &str) -> Result<&'d str, String> {
    data.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("login_data.{key} must be a string"))
}

/// `login_options.user_info`, true unless given as false.
fn wants_user_info(data: &Map<String, Value>) -> Result<bool, String> {
    // Choice: login_options is an object whose only checked key is `user_info` (a boolean,
    // default true, as the seed's default `{"user_info": true}`); false makes SUCCESS carry
    // `"user_info": null`. Other keys of login_options are ignored.
    match data.get("login_options") {
        None => Ok(true),
        Some(Value::Object(options)) => match options.get("user_info") {
            None => Ok(true),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err("login_options.user_info must be a boolean".into()),
        },
        Some(_) => Err("login_data.login_options must be an object".into()),
    }
}

fn with_session_cookie(id: &str, body: Value) -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Json(body),
    )
        .into_response()
}

async fn login_ex(State(inner): State<Shared>, body: Bytes) -> Response {
    let checked = login_data(
        &body,
        "PASSWORD_PLAIN",
        &["mechanism", "username", "password", "login_options"],
    )
    .and_then(|data| {
        Ok((
            string_field(&data, "username")?.to_string(),
            string_field(&data, "password")?.to_string(),
            wants_user_info(&data)?,
        ))
    });
    let (username, password, user_info) = match checked {
        Ok(fields) => fields,
        Err(message) => return bad_request(&message),
    };
    let credentials = (username.as_str(), password.as_str());
    if credentials == EXPIRED_USER {
        return answer(response_type("EXPIRED"));
    }
    if credentials == REDIRECT_USER {
        return answer(json!({ "response_type": "REDIRECT", "urls": [REDIRECT_URL] }));
    }
    let Some(user) = USERS.iter().find(|u| u.credentials == credentials) else {
        return answer(response_type("AUTH_ERR"));
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let session = Session {
        user,
        stage: if user.two_factor {
            Stage::AwaitingOtp { wrong: 0 }
        } else {
            Stage::Authenticated
        },
        user_info,
    };
    let body = if user.two_factor {
        otp_required(user)
    } else {
        success(&session, "LEVEL_1")
    };
    {
        let mut i = lock(&inner);
        if !user.two_factor {
            i.authenticated.push(id.clone());
        }
        i.sessions.insert(id.clone(), session);
    }
    with_session_cookie(&id, body)
}

async fn login_ex_continue(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Choice: the parameters are validated (400) before the session is looked at, as the
    // method's schema is checked before the method runs.
    let checked = login_data(&body, "OTP_TOKEN", &["mechanism", "otp_token"])
        .and_then(|data| Ok(string_field(&data, "otp_token")?.to_string()));
    let otp = match checked {
        Ok(otp) => otp,
        Err(message) => return bad_request(&message),
    };
    let Some(id) = cookie_value(&headers, SESSION_COOKIE) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "no authentication in progress" })),
        )
            .into_response();
    };
    let mut i = lock(&inner);
    let Some(session) = i.sessions.get_mut(&id) else {
        // Choice: a session the server does not know (dropped, or never issued) has expired.
        return answer(response_type("EXPIRED"));
    };
    let Stage::AwaitingOtp { wrong } = &mut session.stage else {
        // Choice: a session that is not awaiting an OTP has no attempt to continue: EXPIRED.
        return answer(response_type("EXPIRED"));
    };
    if otp == OTP {
        session.stage = Stage::Authenticated;
        let body = success(session, "LEVEL_2");
        i.authenticated.push(id);
        return answer(body);
    }
    *wrong += 1;
    if *wrong >= MAX_OTP_ATTEMPTS {
        i.sessions.remove(&id);
        return answer(response_type("AUTH_ERR"));
    }
    answer(otp_required(session.user))
}

async fn me(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    let info = cookie_value(&headers, SESSION_COOKIE).and_then(|id| {
        let i = lock(&inner);
        i.sessions
            .get(&id)
            .filter(|s| matches!(s.stage, Stage::Authenticated))
            .map(|s| s.user.info())
    });
    match info {
        Some(info) => Json(info).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "not authenticated" })),
        )
            .into_response(),
    }
}

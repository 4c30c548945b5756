//! `POST …/auth/login`: the body read and decoded (check 6), the attempt reserved in the
//! failed-attempt limits before the provider is asked and settled by what the answer shows,
//! and the flow's step run.

use super::access::{credential_action, owner, provider, Client, ProviderId, User};
use super::request_log::Trace;
use super::{
    ApiError, AppState, ErrorBody, LoginRequest, LoginResponse, Shared, MAX_BODY, MAX_INPUTS,
    MAX_INPUT_NAME,
};
use crate::auth::Claims;
use crate::engine::Login;
use crate::limits::{Keys, Verdict};
use crate::metrics::Outcome;
use crate::store::Values;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use otvi_runtime::def::ProviderDef;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

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
        (status = 400, description = "Malformed body, step out of range or not expected next, a required input missing or too long, or a provider id that is not UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, provider access denied, or a non-admin acting on a global provider", body = ErrorBody),
        (status = 404, description = "No such provider or flow", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt may be made"))),
        (status = 503, description = "The session store is unreachable; nothing was written", body = ErrorBody),
    ))]
pub(super) async fn login(
    State(state): State<Shared>,
    user: Result<User, ApiError>,
    id: Result<ProviderId, ApiError>,
    Client(address): Client,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The token is checked before the id: without one, any path is a 401.
    let (user, id) = match (user, id) {
        (Ok(User(user)), Ok(ProviderId(id))) => (user, id),
        (Err(e), _) | (Ok(_), Err(e)) => return e.into_response(),
    };
    login_answer(
        &state,
        Ok(user),
        &id,
        address,
        body.map_err(BodyError::from),
    )
    .await
}

/// `login`'s answer, once its request is read: the one implementation behind the router's
/// route and `App`'s own dispatch.
pub(super) async fn login_answer(
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
pub(super) enum BodyError {
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
pub(super) async fn read_body<B>(body: B) -> Result<Bytes, BodyError>
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
}

//! Every way a request can fail, and the one place where a failure becomes its status code
//! and body; the answers to a path or a method the API does not have.

use crate::engine::EngineError;
use crate::store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

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

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

pub(super) async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed on this endpoint" })),
    )
        .into_response()
}

//! The operations routes: liveness (`/healthz`), readiness (`/readyz`, the session store can
//! be written) and the Prometheus metrics (`/metrics`).

use super::{ApiError, ErrorBody, Shared, Status};
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status)))]
pub(super) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// Readiness: the session store takes writes. A write that succeeded in the last second
/// proves it; otherwise one probe write runs (one at a time, whoever asks: see
/// `Store::ready`), so calling it does not make the server write at will.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status, example = json!({ "status": "ready" })),
        (status = 503, description = "The session store is unreachable", body = ErrorBody),
    ))]
pub(super) async fn readyz(State(state): State<Shared>) -> Result<Json<Status>, ApiError> {
    if state.store.ready().await {
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
pub(super) async fn metrics(State(state): State<Shared>, parts: Parts) -> Response {
    if let Some(want) = &state.metrics_token {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer)
            .unwrap_or("");
        if !crate::auth::same(given.as_bytes(), want.as_bytes()) {
            return ApiError::Unauthorized("the metrics token is missing or wrong").into_response();
        }
    }
    let body = state.metrics.render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

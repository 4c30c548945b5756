//! The login console (`/console`): one static page to run flows, check and log out by hand.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The login console: one static page, compiled in, that loads nothing from elsewhere.
const CONSOLE: &str = include_str!("console.html");

/// The login console: a page to run flows, check and log out by hand.
#[utoipa::path(get, path = "/console", tag = "operations",
    responses((status = 200, description = "The console page", content_type = "text/html; charset=utf-8", body = String)))]
pub(super) async fn console() -> Response {
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

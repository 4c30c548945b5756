//! The OpenAPI 3.1 document of this API, built from the handlers' annotations and the wire
//! types, rendered once, and the route that serves it.

use super::wire::fixed_json;
use super::{
    CheckResponse, ChoiceOut, ErrorBody, FieldInfo, FieldOut, FlowInfo, LoginRequest,
    LoginResponse, LogoutResponse, NextStep, ProviderInfo, Status,
};
use axum::response::Response;
use utoipa::{Modify, OpenApi};

/// The OpenAPI 3.1 document of this API, built from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "otvi-flows provider authentication API",
        description = "Log users in to TV providers through flows compiled from provider files (seed 000)."),
    paths(super::providers::list, super::providers::one, super::login::login, super::session::check,
        super::session::logout, super::health::healthz, super::health::readyz, openapi_json,
        super::health::metrics, super::console::console),
    components(schemas(ErrorBody, LoginRequest, LoginResponse, NextStep, FieldOut, ChoiceOut, CheckResponse,
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
pub(super) async fn openapi_json() -> Response {
    fixed_json(openapi())
}

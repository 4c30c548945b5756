//! `GET /api/providers` and `GET /api/providers/{id}`: the compiled providers the token may
//! use, and their flows.

use super::access::{provider, ProviderId, User};
use super::{describe, ApiError, ErrorBody, ProviderInfo, Shared};
use axum::extract::State;
use axum::Json;

/// The providers the token may use, with their flows.
#[utoipa::path(get, path = "/api/providers", tag = "providers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The providers the token's allow-list permits", body = Vec<ProviderInfo>),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required", body = ErrorBody),
    ))]
pub(super) async fn list(State(state): State<Shared>, User(user): User) -> Json<Vec<ProviderInfo>> {
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
        (status = 400, description = "The provider id is not UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, or provider access denied", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
pub(super) async fn one(
    State(state): State<Shared>,
    User(user): User,
    ProviderId(id): ProviderId,
) -> Result<Json<ProviderInfo>, ApiError> {
    Ok(Json(describe(provider(&state, &id, &user)?)))
}

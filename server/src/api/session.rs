//! `GET …/auth/check` and `POST …/auth/logout`: whether the caller's provider session is
//! stored, and its removal.

use super::access::{credential_action, owner, provider, ProviderId, User};
use super::wire::fixed_json;
use super::{ApiError, AppState, CheckResponse, ErrorBody, LogoutResponse, Shared};
use crate::auth::Claims;
use axum::extract::State;
use axum::response::Response;

/// Whether the caller has a stored session for the provider, and, for a provider whose file
/// has `auth.check`, whether the provider still accepts it.
#[utoipa::path(get, path = "/api/providers/{id}/auth/check", tag = "auth",
    params(("id" = String, Path, description = "Provider id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether a session is stored", body = CheckResponse),
        (status = 400, description = "The provider id is not UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, or provider access denied", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 503, description = "The session store is unreachable", body = ErrorBody),
    ))]
pub(super) async fn check(
    State(state): State<Shared>,
    User(user): User,
    ProviderId(id): ProviderId,
) -> Result<Response, ApiError> {
    check_for(&state, &user, &id).await
}

pub(super) async fn check_for(
    state: &AppState,
    user: &Claims,
    id: &str,
) -> Result<Response, ApiError> {
    let p = provider(state, id, user)?;
    let valid = state.engine(p).check(p, owner(p, user)).await?;
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
        (status = 400, description = "The provider id is not UTF-8 once percent-decoded", body = ErrorBody),
        (status = 401, description = "Missing, malformed, badly signed or expired JWT", body = ErrorBody),
        (status = 403, description = "Password change required, provider access denied, or a non-admin acting on a global provider", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 503, description = "The session store is unreachable; nothing was deleted", body = ErrorBody),
    ))]
pub(super) async fn logout(
    State(state): State<Shared>,
    User(user): User,
    ProviderId(id): ProviderId,
) -> Result<Response, ApiError> {
    logout_for(&state, &user, &id).await
}

pub(super) async fn logout_for(
    state: &AppState,
    user: &Claims,
    id: &str,
) -> Result<Response, ApiError> {
    let p = provider(state, id, user)?;
    credential_action(p, user)?;
    state.engine(p).logout(p, owner(p, user)).await?;
    Ok(fixed_json(r#"{"success":true}"#))
}

//! Who may do what: checks 1–5 (the token, a pending password change, the provider, the
//! allow-list, an admin for a global provider), whose session a request acts on, and the
//! client's address for the per-address limit.

use super::{ApiError, AppState, Shared};
use crate::auth::Claims;
use axum::extract::{ConnectInfo, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use otvi_runtime::def::{ProviderDef, Scope};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The caller, after checks 1 (valid JWT) and 2 (no password change pending).
pub struct User(pub Arc<Claims>);

impl FromRequestParts<Shared> for User {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        user(state, &parts.headers).map(User)
    }
}

/// Checks 1 (valid JWT) and 2 (no password change pending) on a request's headers.
pub(super) fn user(state: &AppState, headers: &HeaderMap) -> Result<Arc<Claims>, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?;
    let claims = state
        .jwt
        .verify_cached(token)
        .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    if claims.must_change_password {
        return Err(ApiError::Forbidden("password change required"));
    }
    Ok(claims)
}

/// The provider id in a request's path, percent-decoded. One that is not UTF-8 once decoded
/// is a 400 with the API's JSON body; a handler takes it after the token, so that a request
/// without one is a 401 first, whatever its path.
pub struct ProviderId(pub String);

impl FromRequestParts<Shared> for ProviderId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(ProviderId(id)),
            Err(_) => Err(ApiError::BadRequest(
                "the provider id in the path is not UTF-8 once percent-decoded".into(),
            )),
        }
    }
}

/// Checks 3 (provider exists) and 4 (allow-list).
pub(super) fn provider(
    state: &AppState,
    id: &str,
    user: &Claims,
) -> Result<&'static ProviderDef, ApiError> {
    let p = state
        .providers
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("provider `{id}` not found")))?;
    if !user.allows(id) {
        return Err(ApiError::Forbidden("provider access denied"));
    }
    Ok(p)
}

/// Check 5: only admins log in to or out of a global provider.
pub(super) fn credential_action(p: &ProviderDef, user: &Claims) -> Result<(), ApiError> {
    if p.scope == Scope::Global && !user.is_admin() {
        return Err(ApiError::Forbidden(
            "only an admin can log in to or out of a global provider",
        ));
    }
    Ok(())
}

/// Whose session: the user's, or the provider's shared one.
pub(super) fn owner<'a>(p: &ProviderDef, user: &'a Claims) -> &'a str {
    match p.scope {
        Scope::PerUser => &user.sub,
        Scope::Global => "",
    }
}

/// The client's address, for the per-address limit: the last entry of the configured header
/// (what the trusted proxy next to us saw), else, when the header is absent or its entry is not
/// an address, the connection's peer.
pub(super) fn client_address(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<IpAddr> {
    let from_header = state.client_ip_header.as_ref().and_then(|name| {
        let last = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())?;
        last.parse::<IpAddr>()
            .ok()
            .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
    });
    from_header.or(peer.map(|a| a.ip()))
}

/// The client's address (see `client_address`), if known.
pub struct Client(pub(super) Option<IpAddr>);

impl FromRequestParts<Shared> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Client(client_address(state, &parts.headers, peer)))
    }
}

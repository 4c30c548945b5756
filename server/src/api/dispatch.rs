//! The routes and `App`: each request's path matched once, to its route template (for the
//! request log and the metrics) and, for the seed's login, check and logout, to the handler
//! `App` calls itself; every other request goes to the axum router.

use super::access::{client_address, user};
use super::login::{login_answer, read_body};
use super::request_log::{Answer, Logged};
use super::session::{check_for, logout_for};
use super::Shared;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use std::net::SocketAddr;

/// Every route's template, so that the log and the metrics hold a `&'static str`.
const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/console",
    "/api/openapi.json",
    "/api/providers",
    "/api/providers/{id}",
    "/api/providers/{id}/auth/login",
    "/api/providers/{id}/auth/check",
    "/api/providers/{id}/auth/logout",
];

/// The API's own routes, which `App` answers without the router: the seed's login, check and
/// logout, every request of a client's session.
const LOGIN: &str = "/api/providers/{id}/auth/login";
const CHECK: &str = "/api/providers/{id}/auth/check";
const LOGOUT: &str = "/api/providers/{id}/auth/logout";

/// The route `path` matches, by the matcher the router uses, and the provider id it names
/// (as written in the path, not yet percent-decoded).
fn route_of(path: &str) -> (Option<&'static str>, Option<&str>) {
    static MATCHER: std::sync::LazyLock<matchit::Router<&'static str>> =
        std::sync::LazyLock::new(|| {
            let mut m = matchit::Router::new();
            for r in ROUTES {
                m.insert(*r, *r).expect("the routes are distinct");
            }
            m
        });
    match MATCHER.at(path) {
        Ok(m) => (Some(*m.value), m.params.get("id")),
        Err(_) => (None, None),
    }
}

/// The routes `App` answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    Login,
    Check,
    Logout,
}

/// Whether `App` answers a request itself, and the provider id as the router's `Path` would
/// give it; `None`: the router's (another method, `HEAD` included, another route, or an id
/// that is not UTF-8 once percent-decoded, which the handlers refuse after the token).
fn own_route(route: &str, method: &str, id: Option<&str>) -> Option<(Own, String)> {
    let own = match (route, method) {
        (LOGIN, "POST") => Own::Login,
        (CHECK, "GET") => Own::Check,
        (LOGOUT, "POST") => Own::Logout,
        _ => return None,
    };
    let id = percent_encoding::percent_decode_str(id?)
        .decode_utf8()
        .ok()?;
    Some((own, id.into_owned()))
}

/// The API as hyper serves it. The path is matched once, here: for the seed's login, check
/// and logout (the requests a client's session is made of) `App` calls their handlers itself;
/// every other request goes to the axum router, which also answers those three paths for
/// other methods (405, `HEAD`). Around both, one log line per request (method, route, status,
/// duration, and for the API's routes the provider, flow and step ids, never a value) and the
/// request counter.
#[derive(Clone)]
pub struct App {
    pub(super) router: Router,
    pub(super) state: Shared,
}

impl App {
    /// Answers `req`, from a client at `peer` when known.
    pub(super) fn answer<B>(
        &self,
        mut req: axum::http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> Logged
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = std::time::Instant::now();
        let method = match *req.method() {
            axum::http::Method::GET => "GET",
            axum::http::Method::POST => "POST",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::PUT => "PUT",
            axum::http::Method::DELETE => "DELETE",
            axum::http::Method::PATCH => "PATCH",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        let (route, id) = route_of(req.uri().path());
        // A compiled provider's id, when the path names one.
        let provider = id
            .and_then(|id| self.state.providers.iter().find(|p| p.id == id))
            .map(|p| p.id);
        let route = route.unwrap_or("-");
        let state = self.state.clone();
        let answer: Answer = match own_route(route, method, id) {
            Some((own @ (Own::Check | Own::Logout), id)) => Box::pin(async move {
                let answer = match user(&state, req.headers()) {
                    Ok(user) if own == Own::Check => check_for(&state, &user, &id).await,
                    Ok(user) => logout_for(&state, &user, &id).await,
                    Err(e) => Err(e),
                };
                answer.into_response()
            }),
            Some((Own::Login, id)) => Box::pin(async move {
                let (parts, body) = req.into_parts();
                // As the router's extractors run: the token, then the body.
                let user = user(&state, &parts.headers);
                let body = read_body(body).await;
                let address = client_address(&state, &parts.headers, peer);
                login_answer(&state, user, &id, address, body).await
            }),
            None => {
                if let Some(peer) = peer {
                    req.extensions_mut().insert(ConnectInfo(peer));
                }
                let answer =
                    tower_service::Service::call(&mut self.router.clone(), req.map(Body::new));
                Box::pin(async move {
                    let Ok(response) = answer.await;
                    response
                })
            }
        };
        Logged {
            answer,
            state: self.state.clone(),
            started,
            method,
            route,
            provider,
        }
    }
}

/// For a caller that drives `App` as a tower service: the client's address, when known, is
/// the request's `ConnectInfo`.
impl tower_service::Service<axum::extract::Request> for App {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Logged;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        self.answer(req, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get;

    #[test]
    fn a_path_gets_the_route_the_router_matches_it_to() {
        let p = "/api/providers/{id}";
        for (path, route, id) in [
            ("/healthz", Some("/healthz"), None),
            ("/api/providers", Some("/api/providers"), None),
            ("/api/providers/acme", Some(p), Some("acme")),
            (
                "/api/providers/acme/auth/check",
                Some("/api/providers/{id}/auth/check"),
                Some("acme"),
            ),
            (
                "/api/providers/x/auth/login",
                Some("/api/providers/{id}/auth/login"),
                Some("x"),
            ),
            // The router's fallback: a trailing slash, a longer path.
            ("/api/providers/", None, None),
            ("/healthz/", None, None),
            ("/api/providers/acme/", None, None),
            ("/api/providers/acme/auth", None, None),
            ("/api/providers/acme/auth/check/more", None, None),
            ("/nowhere", None, None),
        ] {
            assert_eq!(route_of(path), (route, id), "{path}");
        }
    }

    #[test]
    fn app_answers_login_check_and_logout_itself_and_leaves_the_rest_to_the_router() {
        let own = |path: &str, method: &str| {
            let (route, id) = route_of(path);
            own_route(route.unwrap_or("-"), method, id)
        };
        let acme = |o| Some((o, "acme".to_string()));
        assert_eq!(
            own("/api/providers/acme/auth/login", "POST"),
            acme(Own::Login)
        );
        assert_eq!(
            own("/api/providers/acme/auth/check", "GET"),
            acme(Own::Check)
        );
        assert_eq!(
            own("/api/providers/acme/auth/logout", "POST"),
            acme(Own::Logout)
        );
        // The id as `Path` decodes it.
        assert_eq!(
            own("/api/providers/ac%6De/auth/check", "GET"),
            acme(Own::Check)
        );
        assert_eq!(
            own("/api/providers/a%2Fb/auth/login", "POST"),
            Some((Own::Login, "a/b".to_string()))
        );
        for (path, method) in [
            ("/api/providers/acme/auth/check", "HEAD"),
            ("/api/providers/acme/auth/check", "POST"),
            ("/api/providers/acme/auth/login", "GET"),
            ("/api/providers/acme/auth/logout", "DELETE"),
            ("/api/providers/%FF/auth/check", "GET"),
            ("/api/providers/%FF/auth/login", "POST"),
            ("/api/providers/acme", "GET"),
            ("/api/providers/acme/auth/check/", "GET"),
            ("/healthz", "GET"),
        ] {
            assert_eq!(own(path, method), None, "{method} {path}");
        }
    }

    /// `route_of` against axum's own matching: a route for every template, answering it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn route_of_agrees_with_the_router() {
        let mut router = Router::new();
        for r in ROUTES {
            router = router.route(r, get(move || async move { *r }));
        }
        for path in [
            "/readyz",
            "/api/openapi.json",
            "/api/providers",
            "/api/providers/a%2Fb",
            "/api/providers/{id}",
            "/api/providers/acme/auth/logout",
            "/api/providers/",
            "/api/providers//auth/check",
            "/api/providers/acme/auth/",
            "/api/providers/acme/x/check",
            "/metrics/",
            "/",
        ] {
            let req = axum::extract::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let answer = tower_service::Service::call(&mut router.clone(), req)
                .await
                .unwrap();
            let matched = if answer.status() == StatusCode::OK {
                let body = axum::body::to_bytes(answer.into_body(), 1024)
                    .await
                    .unwrap();
                Some(String::from_utf8(body.to_vec()).unwrap())
            } else {
                None
            };
            assert_eq!(route_of(path).0.map(String::from), matched, "{path}");
        }
    }
}

//! The request log: one line per request when its answer is ready (method, route, status,
//! duration, and for the API's routes the provider, flow and step ids, never a value), and the
//! request counter.

use super::Shared;
use crate::metrics::Outcome;
use axum::response::Response;

/// What the request log says of a login beyond its route and status: ids, never values.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Trace {
    pub(super) flow: Option<&'static str>,
    pub(super) step: Option<usize>,
    pub(super) outcome: Option<Outcome>,
}

/// A request's answer under way, from `App`'s own handlers or the router.
pub(super) type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// A request's answer, logged and counted when it is ready.
pub struct Logged {
    pub(super) answer: Answer,
    pub(super) state: Shared,
    pub(super) started: std::time::Instant,
    pub(super) method: &'static str,
    pub(super) route: &'static str,
    pub(super) provider: Option<&'static str>,
}

impl std::future::Future for Logged {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        let response = std::task::ready!(this.answer.as_mut().poll(cx));
        let status = response.status().as_u16();
        let trace = response
            .extensions()
            .get::<Trace>()
            .copied()
            .unwrap_or_default();
        this.state.metrics.request(this.method, this.route, status);
        tracing::info!(
            target: "otvi::request",
            method = tracing::field::display(this.method),
            route = tracing::field::display(this.route),
            status,
            ms = this.started.elapsed().as_secs_f64() * 1000.0,
            provider = this.provider.map(tracing::field::display),
            flow = trace.flow.map(tracing::field::display),
            step = trace.step,
            outcome = trace.outcome.map(|o| tracing::field::display(o.as_str())),
        );
        std::task::Poll::Ready(Ok(response))
    }
}

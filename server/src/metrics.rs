//! `GET /metrics`: what operators watch, in the OpenMetrics text format Prometheus scrapes.
//! Labels are provider and flow ids, outcomes and routes: never a user's value.

use crate::store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    provider: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    provider_seconds: Histograms<ProviderLabels>,
    requests: Family<RequestLabels, Counter>,
}

/// What a login led to, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The flow completed: a session is stored.
    Success,
    /// The flow asks for another step.
    NextStep,
    /// The step ran and the login failed (the provider said no, or could not be used).
    Failed,
    /// Refused before the provider was asked: too many failed attempts.
    Limited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NextStep => "next_step",
            Outcome::Failed => "failed",
            Outcome::Limited => "limited",
        }
    }
}

impl Metrics {
    pub fn new(store: &Store) -> Metrics {
        let mut registry = Registry::with_prefix("otvi");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login requests that reached a provider's flow, by provider and outcome",
            logins.clone(),
        );
        let provider_seconds: Histograms<ProviderLabels> = Family::new_with_constructor(seconds);
        registry.register(
            "provider_request_duration_seconds",
            "Time from sending a request to a provider to having its answer",
            provider_seconds.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Answered HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "pending_runs",
            "Multi-step logins waiting for their next step, as stored (SQLite: kept as they are \
             written; PostgreSQL: counted by the sweep each minute)",
            store.pending_gauge(),
        );
        registry.register(
            "store_errors",
            "Session store operations that failed",
            store.errors(),
        );
        registry.register(
            "store_commits",
            "Transactions of session writes the SQLite store committed and synced (writes that \
             reach it together share one)",
            store.commits(),
        );
        Metrics {
            registry,
            logins,
            provider_seconds,
            requests,
        }
    }

    pub fn login(&self, provider: &'static str, outcome: Outcome) {
        self.logins
            .get_or_create(&LoginLabels {
                provider,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn provider_request(&self, provider: &'static str, took: Duration) {
        self.provider_seconds
            .get_or_create(&ProviderLabels { provider })
            .observe(took.as_secs_f64());
    }

    pub fn request(&self, method: &'static str, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The text to answer a scrape with. Nothing is queried: every figure is kept as it
    /// changes (the pending runs by the store, see `Store::pending_gauge`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

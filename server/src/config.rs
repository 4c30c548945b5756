//! Assembling and running the server: configuration, the session store, the router.

use crate::api::{router, AppState};
use crate::auth::Jwt;
use crate::limits::{LimitConfig, Limiter};
use crate::seal::Sealer;
use crate::store::Store;
use crate::upstream::Upstream;
use otvi_runtime::def::ProviderDef;
use otvi_runtime::secrets::{self, Secrets};
use std::collections::HashMap;
use std::time::Duration;

/// What `serve` and `demo` need to start a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The compiled providers served.
    pub providers: &'static [&'static ProviderDef],
    pub database_url: String,
    /// `--provider-base-url` overrides, by provider id.
    pub base_urls: HashMap<String, String>,
    pub upstream_timeout: Duration,
    pub jwt_secret: String,
    /// `--jwt-audience`, `--jwt-issuer`.
    pub jwt_expect: crate::auth::Expect,
    pub pending_ttl: Duration,
    /// Provider secrets by environment variable name, consulted before the environment (the
    /// demo and tests set the mocks' secrets here).
    pub secret_values: HashMap<String, String>,
    /// How session values are sealed at rest.
    pub sealer: Sealer,
    pub limits: LimitConfig,
    /// `--client-ip-header`.
    pub client_ip_header: Option<String>,
    /// `--metrics-token`: when set, `GET /metrics` wants it as a bearer token.
    pub metrics_token: Option<String>,
    /// `--header-timeout`, `--idle-timeout`, `--max-connections`.
    pub connections: crate::api::Connections,
}

impl Config {
    pub fn new(
        providers: &'static [&'static ProviderDef],
        jwt_secret: impl Into<String>,
        database_url: impl Into<String>,
    ) -> Self {
        Config {
            providers,
            database_url: database_url.into(),
            base_urls: HashMap::new(),
            upstream_timeout: Duration::from_secs(10),
            jwt_secret: jwt_secret.into(),
            jwt_expect: Default::default(),
            pending_ttl: Duration::from_secs(600),
            secret_values: HashMap::new(),
            sealer: Sealer::ephemeral(),
            limits: LimitConfig::default(),
            client_ip_header: None,
            metrics_token: None,
            connections: Default::default(),
        }
    }
}

/// The sealer `serve` uses: `OTVI_SESSION_KEY` (and `OTVI_SESSION_KEY_OLD` for rotation), or
/// plain text only when explicitly allowed.
pub fn sealer_from_env(allow_plaintext: bool) -> Result<Sealer, String> {
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    match (var("OTVI_SESSION_KEY"), allow_plaintext) {
        (Some(key), _) => Sealer::from_keys(&key, var("OTVI_SESSION_KEY_OLD").as_deref()),
        (None, true) => Ok(Sealer::Plaintext),
        (None, false) => Err(
            "OTVI_SESSION_KEY is not set: provider sessions are encrypted at rest with it.
Create one with `otvi session-key` and set it, for example:  export OTVI_SESSION_KEY=\"$(otvi session-key)\"
(or pass --insecure-plaintext-sessions to store them in plain text)"
                .into(),
        ),
    }
}

/// Parses `ID=URL` for `--provider-base-url`: an id and an absolute http(s) URL (whether a
/// provider has that id is `known_provider`'s to say).
pub fn parse_base_url(arg: &str) -> Result<(String, String), String> {
    let (id, url) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not ID=URL"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("`{url}` is not an absolute http(s) URL"));
    }
    Ok((id.to_string(), url.to_string()))
}

/// `id` names one of `providers`; else an error listing them.
pub fn known_provider(providers: &[&ProviderDef], id: &str) -> Result<(), String> {
    if providers.iter().any(|p| p.id == id) {
        return Ok(());
    }
    let known: Vec<&str> = providers.iter().map(|p| p.id).collect();
    Err(format!(
        "no compiled provider `{id}` (compiled: {})",
        known.join(", ")
    ))
}

/// Reads every compiled provider's secrets; fails naming each provider and variable unset.
pub fn load_secrets(cfg: &Config) -> Result<HashMap<&'static str, Secrets>, String> {
    secrets::load(cfg.providers.iter().map(|p| (p.id, p.secrets)), |var| {
        cfg.secret_values
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok())
    })
    .map_err(|e| format!("provider secrets are missing: {e}"))
}

/// Loads the provider secrets, connects the store (running migrations) and builds the router.
pub async fn app(cfg: &Config) -> Result<crate::api::App, String> {
    for id in cfg.base_urls.keys() {
        known_provider(cfg.providers, id).map_err(|e| format!("--provider-base-url: {e}"))?;
    }
    let secrets = load_secrets(cfg)?;
    let client_ip_header = match &cfg.client_ip_header {
        Some(h) => Some(
            axum::http::HeaderName::try_from(h.as_str())
                .map_err(|_| format!("`{h}` is not a header name"))?,
        ),
        None => None,
    };
    let store = Store::connect(&cfg.database_url, cfg.sealer.clone())
        .await
        .map_err(|e| format!("cannot open the database {}: {e}", cfg.database_url))?;
    if matches!(cfg.sealer, Sealer::Plaintext) {
        tracing::warn!(
            "provider sessions are stored in plain text (--insecure-plaintext-sessions)"
        );
    }
    // Expired pending runs (their sealed inputs and values) are deleted now and every minute.
    store.sweep_in_background(crate::store::SWEEP_EVERY);
    let metrics = crate::metrics::Metrics::new(&store);
    Ok(router(AppState {
        providers: cfg.providers,
        metrics,
        metrics_token: cfg.metrics_token.clone(),
        store,
        upstream: Upstream::new(cfg.upstream_timeout),
        jwt: Jwt::expecting(cfg.jwt_secret.as_bytes(), &cfg.jwt_expect),
        base_urls: cfg.base_urls.clone(),
        pending_ttl: cfg.pending_ttl,
        secrets,
        limits: Limiter::new(cfg.limits),
        client_ip_header,
    }))
}

/// Descriptors kept for what is not a client connection: the database, logs, the runtime.
const RESERVED_DESCRIPTORS: usize = 64;

/// The connection limits `serve` runs with. The process's soft limit on open files is raised
/// to its hard limit first (as Go's runtime does); without `max_connections`, the cap is 1024,
/// lowered so that each connection and a provider request of its own fit in that limit. A
/// cap given that does not fit is kept, with a warning: an accept that fails for want of a
/// descriptor is logged once and retried.
pub fn connections(
    header_timeout: Duration,
    idle_timeout: Duration,
    max_connections: Option<usize>,
) -> crate::api::Connections {
    let fit = raise_descriptor_limit()
        .map(|limit| (limit.saturating_sub(RESERVED_DESCRIPTORS) / 2).max(1))
        .unwrap_or(usize::MAX);
    let max_connections = match max_connections {
        Some(n) => {
            if n > fit {
                tracing::warn!(
                    max_connections = n,
                    fits = fit,
                    "--max-connections is more than the open-file limit allows (`ulimit -n`): \
                     some connections may not be accepted until others close"
                );
            }
            n
        }
        None => crate::api::Connections::default().max_connections.min(fit),
    };
    crate::api::Connections {
        header_timeout,
        idle_timeout,
        max_connections,
    }
}

/// Raises the soft limit on open files to the hard one; the limit now in force, if known.
fn raise_descriptor_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` and `setrlimit` read or write the one struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim = raised;
            }
        }
        if lim.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
    }
    #[cfg(not(unix))]
    None
}

/// Serves `app` on `listener`, its connections held to `connections`, until Ctrl-C or SIGTERM.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: crate::api::App,
    connections: crate::api::Connections,
) -> std::io::Result<()> {
    crate::api::serve_with(listener, app, connections, shutdown()).await?;
    tracing::info!("otvi stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: no new connections; requests under way finish first");
}

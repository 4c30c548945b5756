//! `otvi demo`: the server on loopback with a temporary database, against mocks of the
//! providers' APIs that the binary brings (`Cli::demo`), with an admin token and what to try.

use crate::auth::{unix_now, Claims, Jwt};
use crate::config::{self, Config};
use otvi_runtime::def::ProviderDef;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// Mocks of a binary's provider APIs, started on loopback for `otvi demo`.
pub struct Demo {
    /// Each mocked provider's base URL at its mock, by provider id; the others keep theirs.
    pub base_urls: HashMap<String, String>,
    /// Provider secrets the mocks expect, by environment variable; any other secret gets a
    /// placeholder, whatever the environment holds.
    pub secret_values: HashMap<String, String>,
    /// A line naming the mocks and where they listen.
    pub mocks: String,
    /// What to try once the server listens, given its API's base URL
    /// (`http://ADDR/api/providers`): `curl` lines, say.
    pub guide: Box<dyn Fn(&str) -> String + Send + Sync>,
    /// Keeps the mocks running while the demo does.
    pub running: Box<dyn std::any::Any + Send>,
}

/// Starts a binary's mocks (`Cli::demo`).
pub type StartMocks = fn() -> Pin<Box<dyn Future<Output = Result<Demo, String>> + Send>>;

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(
    providers: &'static [&'static ProviderDef],
    bind: String,
    start: StartMocks,
) -> Result<(), String> {
    let demo = start().await?;
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let db = dir.path().join("otvi.db");
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut cfg = Config::new(
        providers,
        secret.clone(),
        format!("sqlite://{}?mode=rwc", db.display()),
    );
    // The demo's sessions live in a temporary file for one run: a key made now seals them.
    cfg.sealer = crate::seal::Sealer::ephemeral();
    cfg.base_urls = demo.base_urls.clone();
    cfg.secret_values = providers
        .iter()
        .flat_map(|p| p.secrets)
        .map(|s| {
            let value = demo
                .secret_values
                .get(s.env)
                .cloned()
                .unwrap_or_else(|| format!("demo-{}", s.key));
            (s.env.to_string(), value)
        })
        .collect();
    let app = config::app(&cfg).await?;
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?,
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let token = Jwt::new(secret.as_bytes()).sign(&Claims {
        sub: "demo-admin".into(),
        exp: unix_now() + 24 * 3600,
        role: "admin".into(),
        must_change_password: false,
        providers: None,
        username: None,
    });

    println!(
        "otvi demo: server on http://{addr}, database {}",
        db.display()
    );
    println!("{}", demo.mocks);
    println!("Press Ctrl-C to stop.\n");
    println!("export TOKEN={token}\n");
    println!("Login console (in a browser): http://{addr}/console#token={token}");
    println!("OpenAPI document: http://{addr}/api/openapi.json\n");
    print!("{}", (demo.guide)(&format!("http://{addr}/api/providers")));

    config::run(listener, app, cfg.connections)
        .await
        .map_err(|e| e.to_string())?;
    drop(demo.running);
    drop(dir);
    Ok(())
}

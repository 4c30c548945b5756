//! The `otvi` command line: `serve`, `token`, `providers`, `demo`.

use crate::server::{self, Config};
use clap::{Parser, Subcommand};
use otvi_runtime::auth::{unix_now, Claims, Jwt};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "otvi",
    version,
    about = "TV-provider login flows, compiled from YAML and served over HTTP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the provider authentication API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "OTVI_BIND", default_value = "127.0.0.1:3000")]
        bind: String,
        /// Session store: sqlite://FILE or postgres://…
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://otvi.db?mode=rwc"
        )]
        database_url: String,
        /// Replace a provider's base URL: ID=URL (repeatable).
        #[arg(long = "provider-base-url", value_name = "ID=URL", value_parser = server::parse_base_url)]
        provider_base_url: Vec<(String, String)>,
        /// Timeout of each request to a provider (e.g. 10s, 500ms).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        upstream_timeout: Duration,
        /// How long a multi-step run waits for its next step (e.g. 10m).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        pending_ttl: Duration,
    },
    /// Mint a JWT for development and tests (signed with OTVI_JWT_SECRET).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        #[arg(long, default_value = "user", value_parser = ["admin", "user"])]
        role: String,
        /// Set `must_change_password: true`.
        #[arg(long)]
        must_change_password: bool,
        /// Allow-list of provider ids, comma-separated.
        #[arg(long, value_delimiter = ',')]
        providers: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// List the compiled providers, their flows and steps.
    Providers,
    /// Start mocks of every shipped provider and the server on loopback; print a token and
    /// curl lines.
    Demo {
        /// Address for the server; a free port is used if it is taken.
        #[arg(long, default_value = "127.0.0.1:3000")]
        bind: String,
    },
}

/// A duration such as `10s`, `500ms` or `2m`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

const NO_SECRET: &str =
    "error: OTVI_JWT_SECRET is not set: the server signs and verifies tokens with it.
Set one, for example:  export OTVI_JWT_SECRET=\"$(openssl rand -hex 32)\"";

fn secret() -> Option<String> {
    std::env::var("OTVI_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token {
            sub,
            role,
            must_change_password,
            providers,
            ttl,
        } => {
            let Some(secret) = secret() else {
                eprintln!("{NO_SECRET}");
                return ExitCode::from(2);
            };
            let claims = Claims {
                sub,
                exp: unix_now() + ttl,
                role,
                must_change_password,
                providers,
                username: None,
            };
            println!("{}", Jwt::new(secret.as_bytes()).sign(&claims));
            ExitCode::SUCCESS
        }
        Command::Providers => {
            for p in server::providers() {
                println!(
                    "{} ({}) scope={} base_url={} [{}]",
                    p.id,
                    p.name,
                    p.scope.as_str(),
                    p.base_url,
                    p.source
                );
                if !p.secrets.is_empty() {
                    let vars: Vec<&str> = p.secrets.iter().map(|s| s.env).collect();
                    println!("  secrets from: {}", vars.join(", "));
                }
                for f in p.flows {
                    println!("  flow {} ({})", f.id, f.name);
                    for (i, s) in f.steps.iter().enumerate() {
                        let mut prompt: Vec<&str> = Vec::new();
                        for k in s.outcomes.iter().flat_map(|o| o.prompt).map(|f| f.key) {
                            if !prompt.contains(&k) {
                                prompt.push(k);
                            }
                        }
                        if prompt.is_empty() {
                            println!("    step {i}: {}", s.name);
                        } else {
                            println!(
                                "    step {i}: {}  (then prompts: {})",
                                s.name,
                                prompt.join(", ")
                            );
                        }
                    }
                }
                if p.logout.is_some() {
                    println!("  logout request");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Serve {
            bind,
            database_url,
            provider_base_url,
            upstream_timeout,
            pending_ttl,
        } => {
            let Some(secret) = secret() else {
                eprintln!("{NO_SECRET}");
                return ExitCode::from(2);
            };
            init_logs();
            let mut cfg = Config::new(secret, database_url);
            cfg.base_urls = provider_base_url.into_iter().collect();
            cfg.upstream_timeout = upstream_timeout;
            cfg.pending_ttl = pending_ttl;
            block_on(async move {
                let app = server::app(&cfg).await?;
                let listener = tokio::net::TcpListener::bind(&bind)
                    .await
                    .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                tracing::info!(%addr, "otvi listening");
                server::run(listener, app).await.map_err(|e| e.to_string())
            })
        }
        Command::Demo { bind } => {
            init_logs();
            block_on(crate::demo::run(bind))
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn block_on(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}

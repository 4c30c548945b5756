//! The `otvi` command line: `serve`, `doctor`, `token`, `session-key`, `providers`, and `demo`
//! where the binary brings mocks. A binary is its compiled providers plus one call:
//!
//! ```no_run
//! # static PROVIDERS: &[&otvi_runtime::def::ProviderDef] = &[];
//! fn main() -> std::process::ExitCode {
//!     otvi_server::Cli::new(PROVIDERS).run()
//! }
//! ```

use crate::auth::{unix_now, Claims, Jwt};
use crate::config::{self, Config};
use crate::demo::StartMocks;
use crate::limits::LimitConfig;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use otvi_runtime::def::ProviderDef;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// A binary's command line: the same as `otvi`'s, over the providers it compiled.
pub struct Cli {
    providers: &'static [&'static ProviderDef],
    demo: Option<StartMocks>,
}

impl Cli {
    /// The command line over `providers` (a build script's `PROVIDERS`).
    pub fn new(providers: &'static [&'static ProviderDef]) -> Cli {
        Cli {
            providers,
            demo: None,
        }
    }

    /// Adds `demo`: the server against the mocks `start` brings up.
    pub fn demo(mut self, start: StartMocks) -> Cli {
        self.demo = Some(start);
        self
    }

    /// Parses this process's arguments and runs the command; its exit code.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parses `args` (the program name first) and runs the command.
    pub fn run_from(self, args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
        let mut command = Args::command();
        if self.demo.is_none() {
            command = command.mut_subcommand("demo", |c| c.hide(true));
        }
        let matches = command.get_matches_from(args);
        let args = match Args::from_arg_matches(&matches) {
            Ok(a) => a,
            Err(e) => e.exit(),
        };
        main(self, args)
    }
}

#[derive(Parser)]
#[command(
    name = "otvi",
    version,
    about = "TV-provider login flows, compiled from YAML and served over HTTP"
)]
struct Args {
    /// Log lines as plain text or as one JSON object per line.
    #[arg(long, global = true, env = "OTVI_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Threads that serve requests (default: the CPU cores this process may use). With one,
    /// the single-threaded scheduler runs them, which costs less than a pool of one.
    #[arg(long, global = true, env = "OTVI_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

/// Where `serve` keeps its state and sends its requests; `doctor` checks the same.
#[derive(clap::Args)]
struct Deployment {
    /// Session store: sqlite://FILE or postgres://…
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://otvi.db?mode=rwc"
    )]
    database_url: String,
    /// Replace a provider's base URL: ID=URL (repeatable).
    #[arg(long = "provider-base-url", value_name = "ID=URL", value_parser = config::parse_base_url)]
    provider_base_url: Vec<(String, String)>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the provider authentication API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "OTVI_BIND", default_value = "127.0.0.1:3000")]
        bind: String,
        #[command(flatten)]
        deployment: Deployment,
        /// Timeout of each request to a provider (e.g. 10s, 500ms).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        upstream_timeout: Duration,
        /// How long a multi-step run waits for its next step (e.g. 10m).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        pending_ttl: Duration,
        /// Store provider sessions unencrypted when OTVI_SESSION_KEY is not set.
        #[arg(long)]
        insecure_plaintext_sessions: bool,
        /// Failed logins one user may have per provider in a window before 429 (0: no limit).
        #[arg(long, env = "OTVI_MAX_FAILURES_PER_USER", default_value_t = LimitConfig::default().per_user)]
        max_failures_per_user: u32,
        /// Failed logins one client address may have in a window before 429 (0: no limit).
        #[arg(long, env = "OTVI_MAX_FAILURES_PER_ADDRESS", default_value_t = LimitConfig::default().per_address)]
        max_failures_per_address: u32,
        /// The window failed logins are counted in; it opens at a key's first failure.
        #[arg(long, env = "OTVI_FAILURE_WINDOW", default_value = "15m", value_parser = parse_duration)]
        failure_window: Duration,
        /// A header in which a trusted proxy puts the client's address (its last entry
        /// counts), e.g. X-Forwarded-For; without it the peer address is the client's.
        #[arg(long, env = "OTVI_CLIENT_IP_HEADER", value_name = "NAME")]
        client_ip_header: Option<String>,
        /// A token `GET /metrics` then asks for (`Authorization: Bearer …`); without one, the
        /// metrics are open to anyone who can reach the server.
        #[arg(
            long,
            env = "OTVI_METRICS_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true
        )]
        metrics_token: Option<String>,
        /// An audience a token's `aud` must name (repeatable, or comma-separated); without
        /// one, `aud` is not looked at.
        #[arg(
            long,
            env = "OTVI_JWT_AUDIENCE",
            value_name = "AUD",
            value_delimiter = ','
        )]
        jwt_audience: Vec<String>,
        /// The issuer a token's `iss` must be; without one, `iss` is not looked at.
        #[arg(long, env = "OTVI_JWT_ISSUER", value_name = "ISS")]
        jwt_issuer: Option<String>,
        /// A request head must arrive whole within this (from a new connection's accept, or
        /// a kept-alive one's first byte), and then its body within this again, or the
        /// connection is closed.
        #[arg(long, env = "OTVI_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_client_timeout)]
        header_timeout: Duration,
        /// A kept-alive connection that sends nothing for this long after an answer is closed.
        #[arg(long, env = "OTVI_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_client_timeout)]
        idle_timeout: Duration,
        /// Client connections open at once; beyond it, new ones wait in the listen queue until
        /// one closes [default: 1024, or fewer if the file-descriptor limit is lower]
        #[arg(long, env = "OTVI_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: Option<u32>,
    },
    /// Check a deployment: secrets and session key set, the database reachable and migrated,
    /// each provider's base URL resolvable. Prints what is wrong; exits 1 if anything is.
    Doctor {
        #[command(flatten)]
        deployment: Deployment,
        /// Sessions are meant to be stored unencrypted: a missing OTVI_SESSION_KEY is a warning.
        #[arg(long)]
        insecure_plaintext_sessions: bool,
        /// Apply the database migrations that are missing (as `serve` does when it starts).
        #[arg(long)]
        migrate: bool,
    },
    /// Print a new random session key for OTVI_SESSION_KEY.
    SessionKey,
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
    /// Start the binary's provider mocks and the server on loopback; print a token and
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

/// A client timeout: at least 1 ms (0 would close connections before they are answered) and
/// at most a day.
fn parse_client_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
        return Err(format!("{s}: must be between 1ms and 1 day"));
    }
    Ok(d)
}

const NO_SECRET: &str =
    "error: OTVI_JWT_SECRET is not set: the server signs and verifies tokens with it.
Set one, for example:  export OTVI_JWT_SECRET=\"$(openssl rand -hex 32)\"";

fn secret() -> Option<String> {
    std::env::var("OTVI_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
}

fn main(me: Cli, cli: Args) -> ExitCode {
    let providers = me.providers;
    let deployment = match &cli.command {
        Command::Serve { deployment, .. } | Command::Doctor { deployment, .. } => Some(deployment),
        _ => None,
    };
    for (id, _) in deployment.iter().flat_map(|d| &d.provider_base_url) {
        if let Err(e) = config::known_provider(providers, id) {
            eprintln!("error: --provider-base-url: {e}");
            return ExitCode::from(2);
        }
    }
    let json_logs = cli.log_format == "json";
    if let Some(n) = cli.worker_threads {
        let _ = WORKER_THREADS.set(usize::from(n));
    }
    match cli.command {
        Command::SessionKey => {
            println!("{}", crate::seal::new_key());
            ExitCode::SUCCESS
        }
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
            if let Some(weak) = crate::auth::weak_secret(&secret) {
                eprintln!("warning: {weak} (`serve` refuses it)");
            }
            println!("{}", Jwt::new(secret.as_bytes()).sign(&claims));
            ExitCode::SUCCESS
        }
        Command::Providers => {
            // Into a buffer, then out at once: a closed pipe (`| head`) ends it quietly.
            let mut out = String::new();
            for p in providers {
                let _ = writeln!(
                    out,
                    "{} ({}) scope={} base_url={} [{}]",
                    p.id,
                    p.name,
                    p.scope.as_str(),
                    p.base_url,
                    p.source
                );
                if !p.secrets.is_empty() {
                    let vars: Vec<&str> = p.secrets.iter().map(|s| s.env).collect();
                    let _ = writeln!(out, "  secrets from: {}", vars.join(", "));
                }
                for f in p.flows {
                    let _ = writeln!(out, "  flow {} ({})", f.id, f.name);
                    for (i, s) in f.steps.iter().enumerate() {
                        let mut prompt: Vec<&str> = Vec::new();
                        for k in s.outcomes.iter().flat_map(|o| o.prompt).map(|f| f.key) {
                            if !prompt.contains(&k) {
                                prompt.push(k);
                            }
                        }
                        if prompt.is_empty() {
                            let _ = writeln!(out, "    step {i}: {}", s.name);
                        } else {
                            let _ = writeln!(
                                out,
                                "    step {i}: {}  (then prompts: {})",
                                s.name,
                                prompt.join(", ")
                            );
                        }
                    }
                }
                if p.logout.is_some() {
                    let _ = writeln!(out, "  logout request");
                }
            }
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Command::Serve {
            bind,
            deployment,
            upstream_timeout,
            pending_ttl,
            insecure_plaintext_sessions,
            max_failures_per_user,
            max_failures_per_address,
            failure_window,
            client_ip_header,
            metrics_token,
            jwt_audience,
            jwt_issuer,
            header_timeout,
            idle_timeout,
            max_connections,
        } => {
            let Some(secret) = secret() else {
                eprintln!("{NO_SECRET}");
                return ExitCode::from(2);
            };
            if let Some(weak) = crate::auth::weak_secret(&secret) {
                eprintln!("error: {weak}");
                return ExitCode::from(2);
            }
            let sealer = match config::sealer_from_env(insecure_plaintext_sessions) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_logs(json_logs);
            let mut cfg = Config::new(providers, secret, deployment.database_url);
            cfg.base_urls = deployment.provider_base_url.into_iter().collect();
            cfg.upstream_timeout = upstream_timeout;
            cfg.pending_ttl = pending_ttl;
            cfg.sealer = sealer;
            cfg.limits = LimitConfig {
                per_user: max_failures_per_user,
                per_address: max_failures_per_address,
                window: failure_window,
            };
            cfg.client_ip_header = client_ip_header;
            cfg.metrics_token = metrics_token.filter(|t| !t.is_empty());
            cfg.jwt_expect = crate::auth::Expect {
                audience: jwt_audience.into_iter().filter(|a| !a.is_empty()).collect(),
                issuer: jwt_issuer.filter(|i| !i.is_empty()),
            };
            cfg.connections = config::connections(
                header_timeout,
                idle_timeout,
                max_connections.map(|n| n as usize),
            );
            block_on(async move {
                let app = config::app(&cfg).await?;
                let listener = tokio::net::TcpListener::bind(&bind)
                    .await
                    .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                tracing::info!(%addr, "otvi listening");
                config::run(listener, app, cfg.connections)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        Command::Doctor {
            deployment,
            insecure_plaintext_sessions,
            migrate,
        } => block_on(crate::doctor::run(crate::doctor::Options {
            providers,
            database_url: deployment.database_url,
            base_urls: deployment.provider_base_url.into_iter().collect(),
            insecure_plaintext_sessions,
            migrate,
        })),
        Command::Demo { bind } => {
            let Some(start) = me.demo else {
                eprintln!("error: this binary has no provider mocks to run a demo against");
                return ExitCode::from(2);
            };
            init_logs(json_logs);
            block_on(crate::demo::run(providers, bind, start))
        }
    }
}

/// Logs go to stderr: colour only on a terminal; `json` gives one object per line.
fn init_logs(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        logs.json().with_current_span(false).try_init()
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// `--worker-threads`, once parsed.
static WORKER_THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn block_on(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let threads = WORKER_THREADS.get().copied().unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
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

    #[test]
    fn client_timeouts_are_neither_zero_nor_endless() {
        assert_eq!(parse_client_timeout("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_client_timeout("0").is_err());
        assert!(parse_client_timeout("0s").is_err());
        assert!(parse_client_timeout("1e19").is_err());
        assert!(parse_client_timeout("2days").is_err());
    }
}

//! `otvi doctor`: checks what `otvi serve` needs, with the same configuration, and says what is
//! wrong. Nothing is changed unless `--migrate` is given.

use crate::config;
use std::collections::HashMap;
use std::time::Duration;

/// What `doctor` looks at.
pub struct Options {
    pub providers: &'static [&'static otvi_runtime::def::ProviderDef],
    pub database_url: String,
    pub base_urls: HashMap<String, String>,
    pub insecure_plaintext_sessions: bool,
    pub migrate: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    problems: usize,
    warnings: usize,
}

impl Report {
    fn say(&mut self, level: Level, what: &str, detail: impl std::fmt::Display) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => {
                self.warnings += 1;
                "warn"
            }
            Level::Fail => {
                self.problems += 1;
                "FAIL"
            }
        };
        println!("{tag}  {what}: {detail}");
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Runs every check; `Err` says how many failed.
pub async fn run(opts: Options) -> Result<(), String> {
    let mut r = Report {
        problems: 0,
        warnings: 0,
    };

    // Secrets and keys.
    match var("OTVI_JWT_SECRET") {
        None => r.say(
            Level::Fail,
            "JWT secret",
            "OTVI_JWT_SECRET is not set (create one with `openssl rand -hex 32`)",
        ),
        Some(s) if crate::auth::weak_secret(&s).is_some() => r.say(
            Level::Fail,
            "JWT secret",
            format!(
                "OTVI_JWT_SECRET is set but only {} bytes long; `serve` wants at least {}",
                s.len(),
                crate::auth::MIN_SECRET
            ),
        ),
        Some(s) => r.say(
            Level::Ok,
            "JWT secret",
            format!("OTVI_JWT_SECRET is set ({} bytes)", s.len()),
        ),
    }
    match config::sealer_from_env(opts.insecure_plaintext_sessions) {
        Ok(crate::seal::Sealer::Plaintext) => r.say(
            Level::Warn,
            "session key",
            "OTVI_SESSION_KEY is not set: provider sessions would be stored in plain text",
        ),
        Ok(_) => r.say(
            Level::Ok,
            "session key",
            if var("OTVI_SESSION_KEY_OLD").is_some() {
                "OTVI_SESSION_KEY is valid (and OTVI_SESSION_KEY_OLD for rotation)"
            } else {
                "OTVI_SESSION_KEY is valid"
            },
        ),
        Err(e) => r.say(
            Level::Fail,
            "session key",
            e.lines().next().unwrap_or_default().to_string()
                + " (create one with `otvi session-key`)",
        ),
    }
    let providers = opts.providers;
    for p in providers {
        let missing: Vec<&str> = p
            .secrets
            .iter()
            .map(|s| s.env)
            .filter(|env| var(env).is_none())
            .collect();
        if p.secrets.is_empty() {
            continue;
        }
        if missing.is_empty() {
            let vars: Vec<&str> = p.secrets.iter().map(|s| s.env).collect();
            r.say(
                Level::Ok,
                &format!("provider {} secrets", p.id),
                format!("set: {}", vars.join(", ")),
            );
        } else {
            r.say(
                Level::Fail,
                &format!("provider {} secrets", p.id),
                format!("not set: {}", missing.join(", ")),
            );
        }
    }
    if let Err(e) = config::load_secrets(&config::Config::new(providers, "", "")) {
        // Set but unusable (a line break in a value, say).
        if !e.contains("not set") {
            r.say(Level::Fail, "provider secrets", e);
        }
    }

    // The database.
    let shown = redact(&opts.database_url);
    let what = format!("database {shown}");
    if opts.migrate {
        match crate::store::Store::connect(&opts.database_url, crate::seal::Sealer::Plaintext).await
        {
            Ok(_) => {}
            Err(e) => r.say(Level::Fail, &what, format!("cannot migrate: {e}")),
        }
    }
    match crate::store::inspect(&opts.database_url).await {
        Err(e) => r.say(Level::Fail, &what, format!("not reachable: {e}")),
        Ok(m) => {
            let mut bad = Vec::new();
            if !m.pending.is_empty() {
                bad.push(format!(
                    "{} migration(s) not applied ({}): run `otvi doctor --migrate` or start `otvi serve` once",
                    m.pending.len(),
                    m.pending.join(", ")
                ));
            }
            if !m.broken.is_empty() {
                bad.push(format!(
                    "applied migration(s) differ from this build's: {}",
                    m.broken.join(", ")
                ));
            }
            if bad.is_empty() {
                r.say(
                    Level::Ok,
                    &what,
                    format!("reachable, {} migrations applied", m.applied),
                );
            } else {
                r.say(Level::Fail, &what, bad.join("; "));
            }
            if !m.unknown.is_empty() {
                r.say(
                    Level::Warn,
                    &what,
                    format!(
                        "migrations of a newer build are applied ({:?}): is this binary older than the database?",
                        m.unknown
                    ),
                );
            }
        }
    }

    // Each provider's base URL: its host resolves.
    for p in providers {
        let base = opts.base_urls.get(p.id).map_or(p.base_url, String::as_str);
        let what = format!("provider {} base URL {base}", p.id);
        let url = match url::Url::parse(base) {
            Ok(u) => u,
            Err(e) => {
                r.say(Level::Fail, &what, format!("not a URL: {e}"));
                continue;
            }
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            r.say(Level::Fail, &what, "has no host");
            continue;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.clone(), port)),
        )
        .await
        {
            Ok(Ok(addrs)) => {
                let n = addrs.count();
                r.say(
                    Level::Ok,
                    &what,
                    format!(
                        "{host} resolves ({n} address{})",
                        if n == 1 { "" } else { "es" }
                    ),
                )
            }
            Ok(Err(e)) => r.say(Level::Fail, &what, format!("{host} does not resolve: {e}")),
            Err(_) => r.say(Level::Fail, &what, format!("{host}: no DNS answer in 5 s")),
        }
    }

    println!();
    match (r.problems, r.warnings) {
        (0, 0) => {
            println!("everything otvi serve needs is in place");
            Ok(())
        }
        (0, w) => {
            println!("no problems; {w} warning(s)");
            Ok(())
        }
        (n, _) => Err(format!("{n} problem(s) found")),
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

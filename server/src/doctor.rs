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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    // Each provider's base URL: its host resolves, and it answers at the base URL's path.
    for p in providers {
        let base = opts.base_urls.get(p.id).map_or(p.base_url, String::as_str);
        let what = format!("provider {} base URL {base}", p.id);
        for (level, detail) in
            base_url(p.base_url, opts.base_urls.get(p.id).map(String::as_str)).await
        {
            r.say(level, &what, detail);
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

/// How long `doctor` waits for a provider's host to resolve, and then for it to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `doctor` says of a provider's base URL, `overridden` (by `--provider-base-url`) or
/// the `compiled` one: that its host resolves, and what it answers at the base URL's path.
///
/// Requests go to the base URL followed by each step's `path`, so a base URL that lacks the
/// path its API lives under makes every login "the provider answered HTTP 404". Only the base
/// URL itself can be asked without signing in, and many APIs answer 404 there even when it is
/// right, so a 404 is a warning with a hint, never a failure; the override's path is compared
/// with the compiled one's, which needs no request at all.
async fn base_url(compiled: &str, overridden: Option<&str>) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let base = overridden.unwrap_or(compiled);
    let url = match url::Url::parse(base) {
        Ok(u) => u,
        Err(e) => return vec![(Level::Fail, format!("not a URL: {e}"))],
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return vec![(Level::Fail, "has no host".into())];
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();

    // The override replaces the whole base URL: the compiled path goes with it.
    let compiled_path = url::Url::parse(compiled)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    if overridden.is_some() && !compiled_path.is_empty() && !path.ends_with(&compiled_path) {
        out.push((
            Level::Warn,
            format!(
                "the compiled base URL {compiled} has the path `{compiled_path}`, which this one \
                 lacks: --provider-base-url replaces the whole base URL, path included (did you \
                 mean {}{compiled_path}?)",
                base.trim_end_matches('/')
            ),
        ));
    }

    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::lookup_host((host.clone(), port))).await {
        Ok(Ok(addrs)) => {
            let n = addrs.count();
            out.push((
                Level::Ok,
                format!(
                    "{host} resolves ({n} address{})",
                    if n == 1 { "" } else { "es" }
                ),
            ));
        }
        Ok(Err(e)) => {
            out.push((Level::Fail, format!("{host} does not resolve: {e}")));
            return out;
        }
        Err(_) => {
            out.push((Level::Fail, format!("{host}: no DNS answer in 5 s")));
            return out;
        }
    }

    let hint = "--provider-base-url replaces the whole base URL, path included: if logins \
                fail with \"the provider answered HTTP 404\", give the path the API lives under";
    let shown = if path.is_empty() { "/" } else { url.path() };
    match probe(url.as_str()).await {
        Err(e) => out.push((
            Level::Warn,
            format!("{host} gave no HTTP answer at {shown}: {e}; logins fail until it does"),
        )),
        Ok(404) if path.is_empty() => out.push((
            Level::Warn,
            format!(
                "answers HTTP 404 at /; many APIs do at their root, and then logins still work, \
                 but {hint}"
            ),
        )),
        Ok(404) => {
            let mut root = url.clone();
            root.set_path("/");
            root.set_query(None);
            let detail = match probe(root.as_str()).await {
                Ok(status) if status != 404 => format!(
                    "answers HTTP 404 at {shown} while its / answers HTTP {status}: the path \
                     may be wrong; {hint}"
                ),
                _ => format!(
                    "answers HTTP 404 at {shown} and at /; if the API is not under this path, \
                     {hint}"
                ),
            };
            out.push((Level::Warn, detail));
        }
        Ok(status) => out.push((Level::Ok, format!("answers HTTP {status} at {shown}"))),
    }
    out
}

/// The status of a `GET url`, redirects not followed; or why there is none, in a few words.
async fn probe(url: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(url).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) if e.is_timeout() => Err("no answer in 5 s".into()),
        Err(e) => {
            // The innermost cause says it best ("Connection refused", a certificate error).
            let mut cause: &dyn std::error::Error = &e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            Err(cause.to_string())
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    /// A local HTTP server answering 200 on `paths` and 404 elsewhere; its URL.
    async fn server(paths: &[&'static str]) -> String {
        let mut app = Router::new();
        for p in paths {
            app = app.route(p, get(|| async { "ok" }));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn levels(said: &[(Level, String)]) -> Vec<Level> {
        said.iter().map(|(l, _)| *l).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_base_url_that_answers_is_in_order() {
        let url = server(&["/v2"]).await;
        let said = base_url("https://api.example/v2", Some(&format!("{url}/v2"))).await;
        assert_eq!(levels(&said), [Level::Ok, Level::Ok], "{said:?}");
        assert!(said[1].1.contains("answers HTTP 200 at /v2"), "{said:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_override_without_the_compiled_path_is_a_warning_naming_the_fix() {
        let url = server(&["/"]).await;
        let said = base_url("https://api.example/v2/", Some(&url)).await;
        let (level, text) = &said[0];
        assert_eq!(*level, Level::Warn);
        assert!(text.contains("has the path `/v2`"), "{text}");
        assert!(
            text.contains("replaces the whole base URL, path included"),
            "{text}"
        );
        assert!(text.contains(&format!("did you mean {url}/v2?")), "{text}");
        // The host's root answers: not a failure.
        assert!(!levels(&said).contains(&Level::Fail), "{said:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_404_on_the_path_while_the_root_answers_says_the_path_may_be_wrong() {
        let url = server(&["/"]).await;
        let said = base_url("https://api.example", Some(&format!("{url}/wrong"))).await;
        assert_eq!(levels(&said), [Level::Ok, Level::Warn], "{said:?}");
        assert!(
            said[1]
                .1
                .contains("answers HTTP 404 at /wrong while its / answers HTTP 200"),
            "{said:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_404_on_the_root_is_a_warning_with_a_hint_never_a_failure() {
        let url = server(&[]).await;
        let said = base_url("https://api.example", Some(&url)).await;
        assert_eq!(levels(&said), [Level::Ok, Level::Warn], "{said:?}");
        assert!(said[1].1.contains("answers HTTP 404 at /"), "{said:?}");
        assert!(said[1].1.contains("path included"), "{said:?}");
        let said = base_url("https://api.example", Some(&format!("{url}/api"))).await;
        assert_eq!(levels(&said), [Level::Ok, Level::Warn], "{said:?}");
        assert!(said[1].1.contains("at /api and at /"), "{said:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_host_that_does_not_answer_is_a_warning() {
        // Bound, then closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let said = base_url(
            "https://api.example",
            Some(&format!("http://127.0.0.1:{port}")),
        )
        .await;
        assert_eq!(levels(&said), [Level::Ok, Level::Warn], "{said:?}");
        assert!(said[1].1.contains("gave no HTTP answer"), "{said:?}");
    }
}

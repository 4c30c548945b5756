//! Test harness: the real router on a loopback port, with a temporary SQLite database, and
//! tokens signed with its secret.

#![allow(dead_code)]

use otvi_server::auth::{unix_now, Claims, Jwt};
use otvi_server::config::{self as server, Config};
use std::time::Duration;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123";
/// The session key of test servers: one key, so a restarted server opens what it wrote.
pub const SESSION_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff";

pub fn sealer() -> otvi_server::seal::Sealer {
    otvi_server::seal::Sealer::from_keys(SESSION_KEY, None).unwrap()
}

pub struct TestServer {
    pub url: String,
    pub database_url: String,
    pub sealer: otvi_server::seal::Sealer,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config pointing every provider at `base`, on a fresh SQLite file in `dir`.
pub fn config(base: &str, dir: &std::path::Path) -> Config {
    let mut cfg = Config::new(
        otvi::PROVIDERS,
        SECRET,
        format!("sqlite://{}?mode=rwc", dir.join("otvi.db").display()),
    );
    cfg.base_urls = otvi::PROVIDERS
        .iter()
        .map(|p| (p.id.to_string(), base.to_string()))
        .collect();
    cfg.secret_values = secrets();
    cfg.sealer = sealer();
    cfg
}

/// A value for every provider secret, as `serve` reads them from the environment.
pub fn secrets() -> std::collections::HashMap<String, String> {
    otvi::PROVIDERS
        .iter()
        .flat_map(|p| p.secrets)
        .map(|s| {
            let value = match s.env {
                "INDEE_API_KEY" => otvi_mocks::indee::API_KEY.to_string(),
                _ => format!("test-{}", s.key),
            };
            (s.env.to_string(), value)
        })
        .collect()
}

impl TestServer {
    /// Every provider pointed at `base`.
    pub async fn start(base: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(base, dir.path());
        Self::start_with(cfg, Some(dir)).await
    }

    pub async fn start_with(cfg: Config, dir: Option<tempfile::TempDir>) -> TestServer {
        let app = server::app(&cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = otvi_server::api::serve(listener, app, std::future::pending()).await;
        });
        TestServer {
            url,
            database_url: cfg.database_url.clone(),
            sealer: cfg.sealer.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
            task,
        }
    }

    /// A server started elsewhere (a custom router).
    pub fn from_parts(url: String, task: tokio::task::JoinHandle<()>) -> TestServer {
        TestServer {
            url,
            database_url: String::new(),
            sealer: sealer(),
            client: reqwest::Client::new(),
            _dir: None,
            task,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut rb = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.url, path));
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn login(&self, token: &str, provider: &str, body: &str) -> (u16, String) {
        self.send(
            "POST",
            &format!("/api/providers/{provider}/auth/login"),
            Some(token),
            Some(body),
        )
        .await
    }

    pub async fn check(&self, token: &str, provider: &str) -> (u16, String) {
        self.send(
            "GET",
            &format!("/api/providers/{provider}/auth/check"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn logout(&self, token: &str, provider: &str) -> (u16, String) {
        self.send(
            "POST",
            &format!("/api/providers/{provider}/auth/logout"),
            Some(token),
            None,
        )
        .await
    }
}

pub fn claims(sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        exp: unix_now() + 3600,
        role: "user".into(),
        must_change_password: false,
        providers: None,
        username: None,
    }
}

pub fn sign(c: &Claims) -> String {
    Jwt::new(SECRET.as_bytes()).sign(c)
}

pub fn user(sub: &str) -> String {
    sign(&claims(sub))
}

pub fn admin(sub: &str) -> String {
    sign(&Claims {
        role: "admin".into(),
        ..claims(sub)
    })
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|_| panic!("not JSON: {s}"))
}

pub const EMAIL_LOGIN: &str = r#"{"flow_id":"email_password","step":0,"inputs":{"email":"alice@example.com","password":"secretpassword"}}"#;

/// The provider session `owner` has with `provider`, read from the server's database.
pub async fn session_of(
    s: &TestServer,
    owner: &str,
    provider: &str,
) -> Option<std::collections::HashMap<String, String>> {
    let store = otvi_server::store::Store::connect(&s.database_url, s.sealer.clone())
        .await
        .unwrap();
    store.session(owner, provider).await.unwrap()
}

/// The real `otvi serve` binary as a child process, its log read line by line as it comes (so
/// a full pipe never blocks it). Killed when dropped.
pub struct RealServer {
    pub server: TestServer,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: String,
}

impl RealServer {
    /// Starts `otvi serve --bind 127.0.0.1:0 ARGS…` with the test JWT secret, the test session
    /// key, every provider secret and `envs`; waits for it to listen.
    pub fn start(args: &[String], envs: &[(&str, &str)]) -> RealServer {
        Self::start_bin(std::path::Path::new(env!("CARGO_BIN_EXE_otvi")), args, envs)
    }

    /// `start` with another binary built the same way (a team's).
    pub fn start_bin(bin: &std::path::Path, args: &[String], envs: &[(&str, &str)]) -> RealServer {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env("OTVI_JWT_SECRET", SECRET)
            .env("OTVI_SESSION_KEY", SESSION_KEY)
            .env_remove("DATABASE_URL")
            .env_remove("OTVI_LOG_FORMAT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in secrets() {
            cmd.env(k, v);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut me = RealServer {
            server: TestServer::from_parts(String::new(), tokio::spawn(async {})),
            child,
            lines,
            reader: Some(reader),
            log: String::new(),
        };
        let addr = loop {
            let line = me
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("serve did not start: {}", me.log));
            me.log.push_str(&line);
            me.log.push('\n');
            if line.contains("otvi listening") {
                let at = line.find("127.0.0.1:").unwrap();
                let port: String = line[at + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                break format!("127.0.0.1:{port}");
            }
        };
        me.server.url = format!("http://{addr}");
        me
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `limit`) for the server to exit by itself; its exit status (None if it
    /// had to be killed) and everything it logged.
    pub fn wait_exit(mut self, limit: Duration) -> (Option<std::process::ExitStatus>, String) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stop())
    }

    /// Stops the server and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let mut log = std::mem::take(&mut self.log);
        for line in self.lines.try_iter() {
            log.push_str(&line);
            log.push('\n');
        }
        log
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file in `dir` (a SQLite database, its write-ahead log and shared memory), read
/// whole, with its name.
pub fn files_in(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect()
}

pub fn holds(bytes: &[u8], s: &str) -> bool {
    bytes.windows(s.len()).any(|w| w == s.as_bytes())
}

/// Every shipped provider file's checked model, with the provider compiled from it.
pub fn shipped() -> Vec<(
    otvi_codegen::model::Provider,
    &'static otvi_runtime::def::ProviderDef,
)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = otvi_codegen::collect_files(&[root.join("providers")]).unwrap();
    otvi_codegen::check_paths_from(&files, root)
        .files
        .into_iter()
        .map(|f| {
            let p = f.provider.expect("the shipped providers check clean");
            let def = otvi::PROVIDERS
                .iter()
                .copied()
                .find(|d| d.id == p.id.v)
                .expect("every shipped provider is compiled in");
            (p, def)
        })
        .collect()
}

/// A provider whose every answer is `answer` (a status and a JSON body), given after `delay`;
/// its URL and how many requests reached it. The answer can be changed while it runs.
pub struct ScriptedProvider {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub answer: std::sync::Arc<std::sync::Mutex<(u16, serde_json::Value)>>,
}

impl ScriptedProvider {
    pub async fn start(status: u16, body: serde_json::Value, delay: Duration) -> Self {
        use std::sync::atomic::Ordering;
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answer = std::sync::Arc::new(std::sync::Mutex::new((status, body)));
        let (h, a) = (hits.clone(), answer.clone());
        let app = axum::Router::new().fallback(move || {
            let (h, a) = (h.clone(), a.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let (status, body) = a.lock().unwrap().clone();
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ScriptedProvider { url, hits, answer }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Sends `n` copies of `body` at once to `servers` in turn, as `token` (with `headers`);
/// the statuses and `Retry-After` values that came back.
pub async fn parallel_logins(
    servers: &[&TestServer],
    n: usize,
    token: impl Fn(usize) -> String,
    headers: impl Fn(usize) -> Vec<(String, String)>,
    body: &str,
) -> Vec<(u16, Option<u64>, String)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = servers[i % servers.len()];
        let mut rb = s
            .client
            .post(format!("{}/api/providers/acme/auth/login", s.url))
            .bearer_auth(token(i))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers(i) {
            rb = rb.header(k, v);
        }
        tasks.push(tokio::spawn(async move {
            let r = rb.send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse().unwrap());
            (r.status().as_u16(), retry, r.text().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

//! Test harness: the real router on a loopback port, with a temporary SQLite database, and
//! tokens signed with its secret.

#![allow(dead_code)]

use otvi::server::{self, Config};
use otvi_runtime::auth::{unix_now, Claims, Jwt};
use std::time::Duration;

pub const SECRET: &str = "test-secret";

pub struct TestServer {
    pub url: String,
    pub database_url: String,
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
        SECRET,
        format!("sqlite://{}?mode=rwc", dir.join("otvi.db").display()),
    );
    cfg.base_urls = server::providers()
        .iter()
        .map(|p| (p.id.to_string(), base.to_string()))
        .collect();
    cfg.secret_values = secrets();
    cfg
}

/// A value for every provider secret, as `serve` reads them from the environment.
pub fn secrets() -> std::collections::HashMap<String, String> {
    server::providers()
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
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            url,
            database_url: cfg.database_url.clone(),
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
    let store = otvi_runtime::store::Store::connect(&s.database_url)
        .await
        .unwrap();
    store.session(owner, provider).await.unwrap()
}

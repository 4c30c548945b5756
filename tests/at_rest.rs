//! Secrets at rest and in logs: the real `otvi serve` runs every shipped provider's paths with
//! the most verbose logging, and neither its log nor its SQLite files (write-ahead log
//! included) hold a password, code, token, cookie or provider secret; on PostgreSQL neither do
//! the rows. Sealed values are bound to their row, keys rotate, logs are plain or JSON lines,
//! and a second server on one SQLite file is refused.

mod common;

use common::*;
use otvi_mocks::acme::{self, MockProvider};
use otvi_mocks::ags::{self, AgsMock};
use otvi_mocks::indee::{self, code_from_page, IndeeMock};
use otvi_mocks::truenas::{self, TrueNasMock};
use otvi_server::seal::{Place, Sealer};
use serde_json::{json, Value};

struct Mocks {
    acme: MockProvider,
    ags: AgsMock,
    truenas: TrueNasMock,
    indee: IndeeMock,
}

impl Mocks {
    async fn start() -> Mocks {
        Mocks {
            acme: MockProvider::start().await.unwrap(),
            ags: AgsMock::start().await.unwrap(),
            truenas: TrueNasMock::start().await.unwrap(),
            indee: IndeeMock::start().await.unwrap(),
        }
    }

    fn base_url_args(&self) -> Vec<String> {
        [
            ("acme", self.acme.url()),
            ("acme-shared", self.acme.url()),
            ("opentv", self.ags.url()),
            ("truenas", self.truenas.url()),
            ("indee", self.indee.url()),
        ]
        .into_iter()
        .flat_map(|(id, url)| ["--provider-base-url".to_string(), format!("{id}={url}")])
        .collect()
    }

    /// Everything a user typed or a provider issued: none of it may be at rest or in a log.
    fn secrets(&self) -> Vec<String> {
        let mut s: Vec<String> = [
            "secretpassword",
            acme::OTP,
            ags::ONE_ACCOUNT.1,
            ags::SEVERAL_ACCOUNTS.1,
            truenas::TWO_FACTOR.1,
            truenas::PLAIN.1,
            truenas::OTP,
            indee::API_KEY,
            indee::PASSWORD,
        ]
        .map(String::from)
        .to_vec();
        s.extend(self.acme.issued_tokens());
        s.extend(self.ags.issued_tokens());
        s.extend(self.ags.issued_user_account_tokens());
        s.extend(self.truenas.authenticated_sessions());
        s.extend(self.indee.issued_tokens());
        s.extend(self.indee.issued_refresh_tokens());
        s
    }
}

fn ok(answer: &(u16, String)) -> Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    json(&answer.1)
}

/// One path or more of every shipped provider, with wrong passwords and codes on the way;
/// leaves a pending run behind for acme (a code asked, not sent) so that state is at rest too.
async fn every_provider(s: &TestServer, sub: &str) {
    let t = user(sub);
    let b = |v: Value| v.to_string();
    // acme: a wrong then a right password, then a code flow.
    ok(&s.login(&t, "acme", &b(json!({"flow_id": "email_password", "step": 0, "inputs": {"email": "a@example.com", "password": "wrong-one"}}))).await);
    assert_eq!(ok(&s.login(&t, "acme", EMAIL_LOGIN).await)["success"], true);
    let phone = json!({"flow_id": "phone_otp", "step": 0, "inputs": {"phone": "5551234"}});
    ok(&s.login(&t, "acme", &b(phone.clone())).await);
    let code = json!({"flow_id": "phone_otp", "step": 1, "inputs": {"otp": acme::OTP}});
    assert_eq!(ok(&s.login(&t, "acme", &b(code)).await)["success"], true);
    ok(&s.login(&t, "acme", &b(phone)).await);
    // AGS: one account, then several with a choice.
    let sign_on = |u: (&str, &str)| {
        b(json!({"flow_id": "sign_on", "step": 0, "inputs": {"username": u.0, "password": u.1}}))
    };
    assert_eq!(
        ok(&s.login(&t, "opentv", &sign_on(ags::ONE_ACCOUNT)).await)["success"],
        true
    );
    ok(&s.login(&t, "opentv", &sign_on(ags::SEVERAL_ACCOUNTS)).await);
    let choose =
        b(json!({"flow_id": "sign_on", "step": 1, "inputs": {"account": ags::LINKED_ACCOUNTS[0]}}));
    assert_eq!(ok(&s.login(&t, "opentv", &choose).await)["success"], true);
    // TrueNAS: two-factor with a wrong code first.
    let tn = |u: (&str, &str)| {
        b(json!({"flow_id": "password", "step": 0, "inputs": {"username": u.0, "password": u.1}}))
    };
    ok(&s.login(&t, "truenas", &tn(truenas::TWO_FACTOR)).await);
    let otp = |c: &str| b(json!({"flow_id": "password", "step": 1, "inputs": {"otp": c}}));
    ok(&s.login(&t, "truenas", &otp("000000")).await);
    assert_eq!(
        ok(&s.login(&t, "truenas", &otp(truenas::OTP)).await)["success"],
        true
    );
    // Indee: password, refresh, SSO through the identity provider's page.
    let pw = b(
        json!({"flow_id": "password", "step": 0, "inputs": {"username": indee::USERNAME, "password": indee::PASSWORD}}),
    );
    assert_eq!(ok(&s.login(&t, "indee", &pw).await)["success"], true);
    assert_eq!(
        ok(&s
            .login(&t, "indee", r#"{"flow_id": "refresh", "step": 0}"#)
            .await)["success"],
        true
    );
    let start = ok(&s
        .login(
            &t,
            "indee",
            &b(json!({"flow_id": "sso", "step": 0, "inputs": {"email": indee::SSO_EMAIL}})),
        )
        .await);
    let link = start["next_step"]["fields"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let page = reqwest::get(&link).await.unwrap().text().await.unwrap();
    let code = code_from_page(&page).unwrap();
    let finish = b(
        json!({"flow_id": "sso", "step": 1, "inputs": {"email": indee::SSO_EMAIL, "code": code}}),
    );
    assert_eq!(ok(&s.login(&t, "indee", &finish).await)["success"], true);
    for p in ["acme", "opentv", "truenas", "indee"] {
        assert_eq!(ok(&s.check(&t, p).await)["valid"], true, "{p}");
    }
}

fn assert_holds_none(what: &str, bytes: &[u8], secrets: &[String]) {
    for s in secrets {
        assert!(!holds(bytes, s), "{what} holds `{s}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_in_the_log_or_the_sqlite_files() {
    let mocks = Mocks::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = mocks.base_url_args();
    args.extend([
        "--database-url".into(),
        format!("sqlite://{}", dir.path().join("otvi.db").display()),
    ]);
    let real = RealServer::start(&args, &[("RUST_LOG", "trace")]);
    every_provider(&real.server, "alice").await;
    let log = real.stop();
    let secrets = mocks.secrets();
    assert!(secrets.len() > 15, "the mocks issued tokens: {secrets:?}");
    assert!(log.contains("provider step"), "trace logging was on");
    assert!(log.lines().count() > 50, "{log}");
    assert!(!log.contains('\x1b'), "no colour codes off a terminal");
    assert_holds_none("the log", log.as_bytes(), &secrets);
    let files = files_in(dir.path());
    assert!(
        files.iter().any(|(n, _)| n.ends_with("-wal")),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (name, bytes) in files {
        assert_holds_none(&name, &bytes, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let mock = MockProvider::start().await.unwrap();
    let real = RealServer::start(
        &[
            "--log-format".into(),
            "json".into(),
            "--database-url".into(),
            "sqlite::memory:".into(),
            "--provider-base-url".into(),
            format!("acme={}", mock.url()),
        ],
        &[("RUST_LOG", "info")],
    );
    ok(&real.server.login(&user("alice"), "acme", EMAIL_LOGIN).await);
    let log = real.stop();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""target":"otvi::request""#)
                && l.contains(r#""route":"/api/providers/{id}/auth/login""#)),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("one.db").display());
    let first = RealServer::start(&["--database-url".into(), url.clone()], &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_otvi"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
        .env("OTVI_JWT_SECRET", SECRET)
        .env("OTVI_SESSION_KEY", SESSION_KEY)
        .envs(secrets())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process is serving"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    // The first one serves on; once it is gone the file can be served again.
    assert_eq!(first.server.send("GET", "/readyz", None, None).await.0, 200);
    first.stop();
    let again = RealServer::start(&["--database-url".into(), url], &[]);
    assert_eq!(again.server.send("GET", "/readyz", None, None).await.0, 200);
}

fn pg_url() -> String {
    std::env::var("OTVI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_hold_no_secret() {
    let mocks = Mocks::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mocks.acme.url(), dir.path());
    cfg.database_url = pg_url();
    // Every test comes from 127.0.0.1 and the counts outlive the run in the database.
    cfg.limits.per_address = 0;
    for (id, url) in [
        ("opentv", mocks.ags.url()),
        ("truenas", mocks.truenas.url()),
        ("indee", mocks.indee.url()),
    ] {
        cfg.base_urls.insert(id.into(), url);
    }
    let s = TestServer::start_with(cfg, Some(dir)).await;
    let sub = format!("rest-{}", uuid::Uuid::new_v4());
    every_provider(&s, &sub).await;
    let pool = sqlx::PgPool::connect(&pg_url()).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT provider, data FROM provider_sessions WHERE owner = $1 \
         UNION ALL SELECT provider, inputs || extracted FROM pending_runs WHERE owner = $1",
    )
    .bind(&sub)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(rows.len() >= 5, "four sessions and a pending run: {rows:?}");
    let secrets = mocks.secrets();
    for (provider, data) in &rows {
        assert!(data.starts_with("otvi1:"), "{provider}: {data}");
        assert_holds_none(provider, data.as_bytes(), &secrets);
    }
}

async fn sqlite_pool(s: &TestServer) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&s.database_url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_copied_to_another_user_does_not_open() {
    let mock = MockProvider::start().await.unwrap();
    let s = TestServer::start(&mock.url()).await;
    ok(&s.login(&user("alice"), "acme", EMAIL_LOGIN).await);
    let pool = sqlite_pool(&s).await;
    sqlx::query(
        "INSERT INTO provider_sessions (owner, provider, data, updated_at) \
         SELECT 'mallory', provider, data, updated_at FROM provider_sessions WHERE owner = 'alice'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        s.check(&user("mallory"), "acme").await.1,
        r#"{"valid":false}"#
    );
    assert_eq!(session_of(&s, "mallory", "acme").await, None);
    assert_eq!(s.check(&user("alice"), "acme").await.1, r#"{"valid":true}"#);
    // Nor does a session moved to another provider's row.
    sqlx::query(
        "INSERT INTO provider_sessions (owner, provider, data, updated_at) \
         SELECT owner, 'opentv', data, updated_at FROM provider_sessions WHERE owner = 'alice'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        s.check(&user("alice"), "opentv").await.1,
        r#"{"valid":false}"#
    );
}

async fn raw_session(s: &TestServer, owner: &str) -> String {
    sqlx::query_scalar("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = 'acme'")
        .bind(owner)
        .fetch_one(&sqlite_pool(s).await)
        .await
        .unwrap()
}

const ACME_ALICE: Place = Place {
    column: "provider_sessions.data",
    provider: "acme",
    owner: "alice",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_old_rows_open_and_are_resealed_when_written() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (otvi_server::seal::new_key(), otvi_server::seal::new_key());
    let with = |current: &str, previous: Option<&str>| {
        let mut cfg = config(&mock.url(), dir.path());
        cfg.sealer = Sealer::from_keys(current, previous).unwrap();
        cfg
    };
    let only_old = Sealer::from_keys(&old, None).unwrap();
    let only_new = Sealer::from_keys(&new, None).unwrap();

    let s = TestServer::start_with(with(&old, None), None).await;
    ok(&s.login(&user("alice"), "acme", EMAIL_LOGIN).await);
    let before = raw_session(&s, "alice").await;
    assert!(only_old.open(ACME_ALICE, &before).is_some());
    drop(s);

    let s = TestServer::start_with(with(&new, Some(&old)), None).await;
    let session = session_of(&s, "alice", "acme").await.unwrap();
    assert!(session.contains_key("access_token"), "{session:?}");
    assert_eq!(
        raw_session(&s, "alice").await,
        before,
        "reading rewrites nothing"
    );
    // The next write of the row seals it under the new key.
    ok(&s.login(&user("alice"), "acme", EMAIL_LOGIN).await);
    let after = raw_session(&s, "alice").await;
    assert!(only_new.open(ACME_ALICE, &after).is_some());
    assert!(only_old.open(ACME_ALICE, &after).is_none());
    drop(s);

    // The old key can go now.
    let s = TestServer::start_with(with(&new, None), None).await;
    let session = session_of(&s, "alice", "acme").await.unwrap();
    assert!(session.contains_key("access_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_sessions_are_written_only_when_asked_for() {
    let mock = MockProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.sealer = Sealer::Plaintext;
    let s = TestServer::start_with(cfg, Some(dir)).await;
    ok(&s.login(&user("alice"), "acme", EMAIL_LOGIN).await);
    let raw = raw_session(&s, "alice").await;
    let token = mock.issued_tokens().pop().unwrap();
    assert!(raw.contains(&token), "{raw}");
}

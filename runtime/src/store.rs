//! The session store: completed provider sessions and pending multi-step runs, in SQLite (the
//! default) or PostgreSQL, through one set of queries on `sqlx`'s `Any` driver.
//!
//! Session values and a pending run's inputs and extracted values are sealed (`seal`) before
//! they are written; ids, step names and expiry times are not secret and stay readable.

use crate::seal::{Place, Sealer};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Values keyed by name: inputs, extracted values, a session.
pub type Values = HashMap<String, String>;

/// The store could not be reached or answered with an error.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError(e.to_string())
    }
}

/// A multi-step run waiting for its next step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PendingRun {
    pub flow_id: String,
    /// The index of the step expected next, as it was when the run was saved.
    pub next_step: usize,
    /// The id of the step expected next: what identifies it (an index may shift when a
    /// provider file changes between two requests of a run).
    pub next_step_id: String,
    /// `{{run_id}}`.
    pub run_id: String,
    /// Keys of the fields the last prompt asked for: the next request must carry them.
    pub awaiting: Vec<String>,
    /// Non-password inputs sent so far.
    pub inputs: Values,
    /// Values extracted by the steps run so far.
    pub extracted: Values,
    /// Unix seconds after which the run is gone.
    pub expires_at: i64,
}

/// When the store last failed: connections opened before then are not reused, so a database
/// that comes back (a disk writable again, a restarted server) is met on fresh connections,
/// not on ones left in an error state.
#[derive(Debug)]
struct Faults {
    origin: std::time::Instant,
    /// Milliseconds after `origin`, plus one; 0 when the store never failed.
    last: std::sync::atomic::AtomicU64,
}

impl Faults {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// May a connection of this age be used.
    fn fresh(&self, age: Duration) -> bool {
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        last == 0
            || self
                .now_ms()
                .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
                >= last
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    faults: Arc<Faults>,
    sqlite: bool,
    sealer: Arc<Sealer>,
    /// SQLite only: whether (owner, provider) has a session, as last read or written.
    sessions: Option<SessionCache>,
    /// SQLite file only: what makes this process the file's one server.
    _claim: Option<Arc<FileClaim>>,
}

type SessionCache = Arc<Mutex<HashMap<(String, String), bool>>>;

/// Entries in the session-existence cache before it starts over.
const SESSION_CACHE_MAX: usize = 1_000_000;

fn window_secs(window: Duration) -> i64 {
    i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

fn from_json<T: DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

const SESSION: &str = "provider_sessions.data";
const INPUTS: &str = "pending_runs.inputs";
const EXTRACTED: &str = "pending_runs.extracted";

/// A SQLite file this process serves: the lock on `FILE.lock` that refuses a second server
/// process, and the session cache, which is right only while one process writes the file.
/// Every `Store` of this process on the same file shares one.
#[derive(Debug)]
struct FileClaim {
    _lock: std::fs::File,
    sessions: SessionCache,
}

static CLAIMS: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<FileClaim>)>> =
    Mutex::new(Vec::new());

fn claim_sqlite_file(url: &str) -> Result<Option<Arc<FileClaim>>, StoreError> {
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let file = opts.get_filename();
    if file.as_os_str().is_empty() {
        return Ok(None);
    }
    let mut lock_path = file.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError(format!("cannot open {}: {e}", lock_path.display())))?;
    let key = std::fs::canonicalize(&lock_path).unwrap_or(lock_path.clone());
    let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
    claims.retain(|(_, c)| c.strong_count() > 0);
    if let Some(c) = claims
        .iter()
        .find(|(p, _)| *p == key)
        .and_then(|(_, c)| c.upgrade())
    {
        return Ok(Some(c));
    }
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError(format!(
                "another process is serving {} (it holds {}); a SQLite file serves one \
                 process — use PostgreSQL (DATABASE_URL=postgres://…) to run several instances",
                file.display(),
                lock_path.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )))
        }
    }
    let claim = Arc::new(FileClaim {
        _lock: lock,
        sessions: SessionCache::default(),
    });
    claims.push((key, Arc::downgrade(&claim)));
    Ok(Some(claim))
}

impl Store {
    /// Connects and runs the embedded migrations. SQLite files are opened in WAL mode, and
    /// only by one process (a second is refused); `sqlite::memory:` works too (one
    /// connection, state lost at exit).
    pub async fn connect(url: &str, sealer: Sealer) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let in_memory = is_sqlite && url.contains(":memory:");
        let claim = if is_sqlite && !in_memory {
            claim_sqlite_file(&url)?
        } else {
            None
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        // Each connection to `sqlite::memory:` is its own database: keep exactly one, forever.
        let max = match (is_sqlite, in_memory) {
            (_, true) => 1,
            (true, false) => 4,
            (false, _) => 16,
        };
        let faults = Arc::new(Faults {
            origin: std::time::Instant::now(),
            last: Default::default(),
        });
        let seen = faults.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(u32::from(in_memory))
            .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
            .max_lifetime((!in_memory).then_some(Duration::from_secs(1800)))
            .acquire_timeout(Duration::from_secs(5))
            // An in-memory database lives in its one connection: it is never replaced.
            .before_acquire(move |_, meta| {
                let fresh = in_memory || seen.fresh(meta.age);
                Box::pin(async move { Ok(fresh) })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            faults,
            sqlite: is_sqlite,
            sealer: Arc::new(sealer),
            sessions: match &claim {
                Some(c) => Some(c.sessions.clone()),
                None => in_memory.then(Default::default),
            },
            _claim: claim,
        })
    }

    /// Notes a failure (see `Faults`) and passes it on.
    fn fault(&self, e: impl Into<StoreError>) -> StoreError {
        let at = self.faults.now_ms().saturating_add(1);
        self.faults
            .last
            .store(at, std::sync::atomic::Ordering::Relaxed);
        e.into()
    }

    /// Can the database be written: one small write, so a store that still answers reads but
    /// refuses writes (a read-only or full disk) is not reported ready.
    pub async fn ping(&self) -> bool {
        // A counter, not the time: an update that changes nothing writes nothing.
        sqlx::query(
            "INSERT INTO store_probe (id, at) VALUES (1, 0) \
             ON CONFLICT (id) DO UPDATE SET at = store_probe.at + 1",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| self.fault(e))
        .is_ok()
    }

    /// Opens what the store holds at `place`, as JSON; a value that does not open (another key,
    /// another row's value) counts as absent.
    fn unseal<T: DeserializeOwned + Default>(&self, place: Place<'_>, stored: &str) -> Option<T> {
        let opened = self.sealer.open(place, stored);
        if opened.is_none() {
            tracing::warn!(
                provider = place.provider,
                column = place.column,
                "a stored value does not open with the session key; it is ignored"
            );
        }
        opened.map(|t| from_json(&t))
    }

    fn seal<T: Serialize>(&self, place: Place<'_>, v: &T) -> String {
        self.sealer.seal(place, &to_json(v))
    }

    pub async fn session(&self, owner: &str, provider: &str) -> Result<Option<Values>, StoreError> {
        Ok(self
            .session_text(owner, provider)
            .await
            .map_err(|e| self.fault(e))?
            .and_then(|t| self.unseal(session_place(owner, provider), &t)))
    }

    async fn session_text(
        &self,
        owner: &str,
        provider: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = $2")
                .bind(owner)
                .bind(provider)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.fault(e))?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    /// Is there a completed session.
    ///
    /// On SQLite the answer is cached in memory: the server process is the database's only
    /// writer (several instances use PostgreSQL), so it sees every change. Writers overwrite
    /// the cached answer after their write; a reader only fills an absent one, so a read that
    /// raced with a write can never leave a stale answer behind.
    pub async fn has_session(&self, owner: &str, provider: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.cached(owner, provider) {
            return Ok(known);
        }
        // A session that does not open (another key, copied from another row) is no session.
        let exists = self.session(owner, provider).await?.is_some();
        if let Some(cache) = &self.sessions {
            if let Ok(mut c) = cache.lock() {
                if c.len() >= SESSION_CACHE_MAX {
                    c.clear();
                }
                c.entry((owner.to_string(), provider.to_string()))
                    .or_insert(exists);
            }
        }
        Ok(exists)
    }

    fn cached(&self, owner: &str, provider: &str) -> Option<bool> {
        let c = self.sessions.as_ref()?.lock().ok()?;
        c.get(&(owner.to_string(), provider.to_string())).copied()
    }

    /// Records a write's outcome; `None` forgets the answer (a write that failed midway).
    fn remember(&self, owner: &str, provider: &str, exists: Option<bool>) {
        if let Some(Ok(mut c)) = self.sessions.as_ref().map(|c| c.lock()) {
            let key = (owner.to_string(), provider.to_string());
            match exists {
                Some(e) => {
                    c.insert(key, e);
                }
                None => {
                    c.remove(&key);
                }
            }
        }
    }

    /// Completes a run: merges `extracted` over the existing session and deletes the pending
    /// run, in one transaction. Values are sealed, so the merge happens here, not in SQL: a
    /// session written by someone else between the read and the write is detected (the write
    /// names the value it replaces) and the merge is done again. Returns the merged session.
    pub async fn complete(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        let result = self.merge_session(owner, provider, extracted).await;
        // An error may have come after the commit: forget rather than guess.
        self.remember(owner, provider, result.as_ref().ok().map(|_| true));
        result
    }

    async fn merge_session(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        let place = session_place(owner, provider);
        for _ in 0..16 {
            let before = self.session_text(owner, provider).await?;
            let mut merged: Values = before
                .as_deref()
                .and_then(|t| self.unseal(place, t))
                .unwrap_or_default();
            merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
            let data = self.seal(place, &merged);
            // The write comes first in the transaction, so SQLite takes its write lock before
            // reading anything and never has to upgrade a stale read.
            let mut tx = self.pool.begin().await.map_err(|e| self.fault(e))?;
            let written = match &before {
                None => sqlx::query(
                    "INSERT INTO provider_sessions (owner, provider, data, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (owner, provider) DO NOTHING",
                )
                .bind(owner)
                .bind(provider)
                .bind(&data)
                .bind(now()),
                Some(old) => sqlx::query(
                    "UPDATE provider_sessions SET data = $3, updated_at = $4 \
                     WHERE owner = $1 AND provider = $2 AND data = $5",
                )
                .bind(owner)
                .bind(provider)
                .bind(&data)
                .bind(now())
                .bind(old),
            }
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fault(e))?
            .rows_affected();
            if written == 0 {
                tx.rollback().await.map_err(|e| self.fault(e))?;
                continue;
            }
            sqlx::query("DELETE FROM pending_runs WHERE owner = $1 AND provider = $2")
                .bind(owner)
                .bind(provider)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.fault(e))?;
            tx.commit().await.map_err(|e| self.fault(e))?;
            return Ok(merged);
        }
        Err(StoreError(
            "the session kept changing while it was being written".into(),
        ))
    }

    /// Deletes the session and any pending run: logout, or a provider that revoked it.
    pub async fn logout(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let result = self.delete_session(owner, provider).await;
        self.remember(owner, provider, result.is_ok().then_some(false));
        result
    }

    async fn delete_session(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.fault(e))?;
        for table in ["provider_sessions", "pending_runs"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE owner = $1 AND provider = $2"
            ))
            .bind(owner)
            .bind(provider)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fault(e))?;
        }
        tx.commit().await.map_err(|e| self.fault(e))?;
        Ok(())
    }

    /// The pending run, if one exists and has not expired.
    pub async fn pending(
        &self,
        owner: &str,
        provider: &str,
    ) -> Result<Option<PendingRun>, StoreError> {
        let row = sqlx::query(
            "SELECT flow_id, next_step, inputs, extracted, expires_at, next_step_id, run_id, awaiting \
             FROM pending_runs WHERE owner = $1 AND provider = $2 AND expires_at > $3",
        )
        .bind(owner)
        .bind(provider)
        .bind(now())
        .fetch_optional(&self.pool)
        .await.map_err(|e| self.fault(e))?;
        Ok(row.and_then(|r| {
            Some(PendingRun {
                flow_id: r.get(0),
                next_step: usize::try_from(r.get::<i64, _>(1)).unwrap_or(usize::MAX),
                inputs: self.unseal(
                    pending_place(INPUTS, owner, provider),
                    &r.get::<String, _>(2),
                )?,
                extracted: self.unseal(
                    pending_place(EXTRACTED, owner, provider),
                    &r.get::<String, _>(3),
                )?,
                expires_at: r.get(4),
                next_step_id: r.get(5),
                run_id: r.get(6),
                awaiting: from_json(&r.get::<String, _>(7)),
            })
        }))
    }

    pub async fn save_pending(
        &self,
        owner: &str,
        provider: &str,
        run: &PendingRun,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_runs (owner, provider, flow_id, next_step, inputs, extracted, expires_at, \
             next_step_id, run_id, awaiting) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (owner, provider) DO UPDATE SET flow_id = excluded.flow_id, next_step = excluded.next_step, \
             inputs = excluded.inputs, extracted = excluded.extracted, expires_at = excluded.expires_at, \
             next_step_id = excluded.next_step_id, run_id = excluded.run_id, awaiting = excluded.awaiting",
        )
        .bind(owner)
        .bind(provider)
        .bind(&run.flow_id)
        .bind(run.next_step as i64)
        .bind(self.seal(pending_place(INPUTS, owner, provider), &run.inputs))
        .bind(self.seal(pending_place(EXTRACTED, owner, provider), &run.extracted))
        .bind(run.expires_at)
        .bind(&run.next_step_id)
        .bind(&run.run_id)
        .bind(to_json(&run.awaiting))
        .execute(&self.pool)
        .await.map_err(|e| self.fault(e))?;
        Ok(())
    }

    pub async fn discard_pending(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_runs WHERE owner = $1 AND provider = $2")
            .bind(owner)
            .bind(provider)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fault(e))?;
        Ok(())
    }

    /// Whether this store keeps failed-attempt counters in the database: PostgreSQL, where
    /// several instances share them. SQLite means one process, which counts in memory.
    pub fn shares_counters(&self) -> bool {
        !self.sqlite
    }

    /// The open window of each key that has one: (key, window start, failures in it).
    pub async fn failures_by_key(
        &self,
        keys: &[&str],
        window: Duration,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let mut out = Vec::new();
        for key in keys {
            let row = sqlx::query(
                "SELECT window_start, failures FROM login_failures WHERE key = $1 AND window_start > $2",
            )
            .bind(*key)
            .bind(now() - window_secs(window))
            .fetch_optional(&self.pool)
            .await.map_err(|e| self.fault(e))?;
            out.extend(row.map(|r| (key.to_string(), r.get::<i64, _>(0), r.get::<i64, _>(1))));
        }
        Ok(out)
    }

    /// Counts a failure for each key: in its open window, or in a new one starting now.
    pub async fn record_failure(&self, keys: &[&str], window: Duration) -> Result<(), StoreError> {
        let t = now();
        for key in keys {
            sqlx::query(
                "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN login_failures.window_start > $3 THEN login_failures.failures + 1 ELSE 1 END, \
                 window_start = CASE WHEN login_failures.window_start > $3 THEN login_failures.window_start ELSE $2 END",
            )
            .bind(*key)
            .bind(t)
            .bind(t - window_secs(window))
            .execute(&self.pool)
            .await.map_err(|e| self.fault(e))?;
        }
        Ok(())
    }

    /// Deletes counts whose window has closed.
    pub async fn sweep_failures(&self, window: Duration) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE window_start <= $1")
            .bind(now() - window_secs(window))
            .execute(&self.pool)
            .await
            .map_err(|e| self.fault(e))?;
        Ok(())
    }

    pub async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fault(e))?;
        Ok(())
    }

    /// A pending run's expiry for a run saved now with `ttl`.
    pub fn expiry(ttl: Duration) -> i64 {
        now() + i64::try_from(ttl.as_secs()).unwrap_or(600)
    }
}

fn session_place<'a>(owner: &'a str, provider: &'a str) -> Place<'a> {
    pending_place(SESSION, owner, provider)
}

fn pending_place<'a>(column: &'static str, owner: &'a str, provider: &'a str) -> Place<'a> {
    Place {
        column,
        provider,
        owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_database_keeps_its_state_across_queries() {
        let store = Store::connect("sqlite::memory:", Sealer::ephemeral())
            .await
            .unwrap();
        let mut v = Values::new();
        v.insert("access_token".into(), "t".into());
        store.complete("alice", "acme", &v).await.unwrap();
        let mut more = Values::new();
        more.insert("user_name".into(), "Alice".into());
        let merged = store.complete("alice", "acme", &more).await.unwrap();
        assert_eq!(
            merged.len(),
            2,
            "merged over the earlier session: {merged:?}"
        );
        assert!(store.has_session("alice", "acme").await.unwrap());
        assert!(!store.has_session("bob", "acme").await.unwrap());
        store.logout("alice", "acme").await.unwrap();
        assert!(!store.has_session("alice", "acme").await.unwrap());
    }
}

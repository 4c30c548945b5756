//! The session store: completed provider sessions and pending multi-step runs, in SQLite (the
//! default) or PostgreSQL, through one set of queries on `sqlx`'s `Any` driver.

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

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
    /// SQLite only: whether (owner, provider) has a session, as last read or written.
    sessions: Option<SessionCache>,
}

type SessionCache = Arc<Mutex<HashMap<(String, String), bool>>>;

/// Entries in the session-existence cache before it starts over.
const SESSION_CACHE_MAX: usize = 1_000_000;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

fn from_json<T: DeserializeOwned + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

impl Store {
    /// Connects and runs the embedded migrations. SQLite files are opened in WAL mode;
    /// `sqlite::memory:` works too (one connection, state lost at exit).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        // Each connection to `sqlite::memory:` is its own database: keep exactly one, forever.
        let in_memory = is_sqlite && url.contains(":memory:");
        let max = match (is_sqlite, in_memory) {
            (_, true) => 1,
            (true, false) => 4,
            (false, _) => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(u32::from(in_memory))
            .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
            .max_lifetime((!in_memory).then_some(Duration::from_secs(1800)))
            .acquire_timeout(Duration::from_secs(5))
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
            sqlite: is_sqlite,
            sessions: is_sqlite.then(Default::default),
        })
    }

    /// Is the database reachable.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn session(&self, owner: &str, provider: &str) -> Result<Option<Values>, StoreError> {
        let row =
            sqlx::query("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = $2")
                .bind(owner)
                .bind(provider)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| from_json(&r.get::<String, _>(0))))
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
        let row = sqlx::query("SELECT 1 FROM provider_sessions WHERE owner = $1 AND provider = $2")
            .bind(owner)
            .bind(provider)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(cache) = &self.sessions {
            if let Ok(mut c) = cache.lock() {
                if c.len() >= SESSION_CACHE_MAX {
                    c.clear();
                }
                c.entry((owner.to_string(), provider.to_string()))
                    .or_insert(row.is_some());
            }
        }
        Ok(row.is_some())
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

    /// Completes a run: merges `extracted` over the existing session (one upsert, so
    /// concurrent completions never see a half-written session) and deletes the pending run.
    /// Returns the merged session.
    pub async fn complete(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        // SQLite's json_patch and PostgreSQL's jsonb `||` both merge top-level keys, new over old.
        let merge = if self.sqlite {
            "json_patch(provider_sessions.data, excluded.data)"
        } else {
            "(provider_sessions.data::jsonb || excluded.data::jsonb)::text"
        };
        let row = sqlx::query(&format!(
            "INSERT INTO provider_sessions (owner, provider, data, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner, provider) DO UPDATE SET data = {merge}, updated_at = excluded.updated_at \
             RETURNING data"
        ))
        .bind(owner)
        .bind(provider)
        .bind(to_json(extracted))
        .bind(now())
        .fetch_one(&self.pool)
        .await;
        // An error may have come after the commit: forget rather than guess.
        self.remember(owner, provider, row.as_ref().ok().map(|_| true));
        let row = row?;
        self.discard_pending(owner, provider).await?;
        Ok(from_json(&row.get::<String, _>(0)))
    }

    /// Deletes the session and any pending run: logout, or a provider that revoked it.
    pub async fn logout(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let result = self.delete_session(owner, provider).await;
        self.remember(owner, provider, result.is_ok().then_some(false));
        result
    }

    async fn delete_session(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["provider_sessions", "pending_runs"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE owner = $1 AND provider = $2"
            ))
            .bind(owner)
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
        .await?;
        Ok(row.map(|r| PendingRun {
            flow_id: r.get(0),
            next_step: usize::try_from(r.get::<i64, _>(1)).unwrap_or(usize::MAX),
            inputs: from_json(&r.get::<String, _>(2)),
            extracted: from_json(&r.get::<String, _>(3)),
            expires_at: r.get(4),
            next_step_id: r.get(5),
            run_id: r.get(6),
            awaiting: from_json(&r.get::<String, _>(7)),
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
        .bind(to_json(&run.inputs))
        .bind(to_json(&run.extracted))
        .bind(run.expires_at)
        .bind(&run.next_step_id)
        .bind(&run.run_id)
        .bind(to_json(&run.awaiting))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn discard_pending(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_runs WHERE owner = $1 AND provider = $2")
            .bind(owner)
            .bind(provider)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A pending run's expiry for a run saved now with `ttl`.
    pub fn expiry(ttl: Duration) -> i64 {
        now() + i64::try_from(ttl.as_secs()).unwrap_or(600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_database_keeps_its_state_across_queries() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
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

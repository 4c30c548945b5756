//! The session store: completed provider sessions and pending multi-step runs, in SQLite (the
//! default) or PostgreSQL, through one set of queries (`Query`): on PostgreSQL through a
//! `sqlx` pool, on SQLite through a read connection called on the request's thread and a
//! writer thread that commits writes in groups (`sqlite`). Migrations run through `sqlx` on
//! both.
//!
//! A write is answered once it is on the disk: on SQLite the writer thread syncs each commit
//! (`synchronous = FULL`) before it answers the writes of its batch; on PostgreSQL `COMMIT`
//! returns once the server has flushed its log (`synchronous_commit = on`, its default), and
//! the pool is async. Nothing that waits for the disk or a lock runs on a tokio worker.
//!
//! Session values and a pending run's inputs and extracted values are sealed (`seal`) before
//! they are written; ids, step names and expiry times are not secret and stay readable.
//!
//! This module is the `Store`'s API: sessions, pending runs, the readiness probe. The rest is
//! where its name says: `connect` (a URL to a store), `postgres` (the pool and the
//! PostgreSQL-only statements), `sqlite` (the read connection and the writer thread), `claim`
//! (one process per SQLite file), `cache` (SQLite's session cache and the merge over it),
//! `query` (one query on either driver), `faults` (failures noted and counted), `attempts`
//! (the failed-attempt counters of `limits`), `upkeep` (readiness, and the sweep of expired
//! pending runs) and `migrations`.

mod attempts;
mod cache;
mod checks;
mod claim;
mod connect;
mod faults;
mod migrations;
mod postgres;
mod query;
mod sqlite;
mod upkeep;

pub use migrations::{inspect, Migrations};
pub use upkeep::SWEEP_EVERY;

use crate::seal::{Place, Sealer};
use cache::{remember, remember_read, Known, SessionCache};
use claim::FileClaim;
use faults::Faults;
use query::Query;
use serde::{de::DeserializeOwned, Serialize};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
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
    db: Db,
    faults: Arc<Faults>,
    sqlite: bool,
    sealer: Arc<Sealer>,
    /// SQLite only: each (owner, provider)'s session row as last read or written.
    sessions: Option<SessionCache>,
    /// SQLite file only: what makes this process the file's one server.
    _claim: Option<Arc<FileClaim>>,
    /// `auth.check` verdicts still fresh.
    checks: Arc<checks::CheckCache>,
    /// `/readyz`'s write probe, one at a time (`upkeep`).
    probe: Arc<upkeep::Probe>,
    /// PostgreSQL: the pending runs counted by the last sweep (SQLite's writer keeps its own).
    pending: prometheus_client::metrics::gauge::Gauge,
    /// Held by every `Store` but the sweep's own: the sweep ends when the last goes.
    life: Option<Arc<()>>,
}

/// Where the queries go.
#[derive(Debug, Clone)]
enum Db {
    /// PostgreSQL: a pool shared by this instance's requests.
    Pool(AnyPool),
    /// SQLite: a read connection used on the request's thread, and the writer thread that
    /// commits writes in groups (see `sqlite`). The process is the file's only writer and
    /// SQLite runs one write at a time anyway.
    One(Arc<sqlite::Local>),
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

impl Store {
    /// Runs a whole read on SQLite's read connection, on this thread (see
    /// `sqlite::Local::read`).
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let Db::One(local) = &self.db else {
            return Err(StoreError(
                "no SQLite connection: the store is a pool".into(),
            ));
        };
        local.read(op).await.map_err(|e| self.fault(e))
    }

    /// Runs a write on SQLite's writer thread, committed (and synced) with the others queued
    /// with it, and `then` once its outcome is final (see `sqlite::Local::write`).
    async fn write<T, W, S>(&self, write: W, then: S) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnMut(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
        S: FnOnce(Option<&T>) + Send + 'static,
    {
        let Db::One(local) = &self.db else {
            return Err(StoreError(
                "no SQLite connection: the store is a pool".into(),
            ));
        };
        local.write(write, then).await.map_err(|e| self.fault(e))
    }

    /// Counts the transactions of session writes committed on SQLite, where writes that reach
    /// the store together share one, and its sync (a new counter on PostgreSQL, which does not
    /// count them).
    pub fn commits(&self) -> prometheus_client::metrics::counter::Counter {
        match &self.db {
            Db::One(local) => local.commits(),
            Db::Pool(_) => Default::default(),
        }
    }

    /// The pending runs stored, read without a query (shared: it moves as they change). On
    /// SQLite, exact: this process is the one writer, and its commits move it (expired runs
    /// count until the sweep deletes them). On PostgreSQL, what the last sweep counted
    /// (`upkeep`): several instances share the table.
    pub fn pending_gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        match &self.db {
            Db::One(local) => local.pending(),
            Db::Pool(_) => self.pending.clone(),
        }
    }

    /// Multi-step runs waiting for their next step (not yet expired), counted in the table.
    pub async fn pending_runs(&self) -> Result<i64, StoreError> {
        let q = Query::new("SELECT COUNT(*) FROM pending_runs WHERE expires_at > $1").bind(now());
        let rows = self.rows(q, true, |r| r.int(0)).await?;
        Ok(rows.first().copied().unwrap_or(0))
    }

    /// Can the database be written: one small write, so a store that still answers reads but
    /// refuses writes (a read-only or full disk) is not reported ready. `/readyz` calls it
    /// through `ready`, which spares the write while other writes prove the same.
    pub async fn ping(&self) -> bool {
        // A counter, not the time: an update that changes nothing writes nothing.
        self.run(Query::new(
            "INSERT INTO store_probe (id, at) VALUES (1, 0) \
             ON CONFLICT (id) DO UPDATE SET at = store_probe.at + 1",
        ))
        .await
        .is_ok()
    }

    /// Opens what the store holds at `place`, as JSON; a value that does not open (another key,
    /// another row's value) counts as absent.
    fn unseal<T: DeserializeOwned + Default>(&self, place: Place<'_>, stored: &str) -> Option<T> {
        unseal(&self.sealer, place, stored)
    }

    fn seal<T: Serialize>(&self, place: Place<'_>, v: &T) -> String {
        self.sealer.seal(place, &to_json(v))
    }

    pub async fn session(&self, owner: &str, provider: &str) -> Result<Option<Values>, StoreError> {
        Ok(self
            .session_row(owner, provider)
            .await?
            .and_then(|t| self.unseal(session_place(owner, provider), &t)))
    }

    /// The session row's sealed value, as stored.
    async fn session_row(&self, owner: &str, provider: &str) -> Result<Option<String>, StoreError> {
        let rows = self.rows(session_query(owner, provider), true, |r| r.text(0));
        Ok(rows.await?.pop())
    }

    /// Is there a completed session.
    ///
    /// On SQLite the session row is cached in memory: the server process is the database's
    /// only writer (several instances use PostgreSQL), so it sees every change. Writes change
    /// the cache on the writer thread, right after their commit (see `remember`); a read
    /// caches what it found only if no write committed while it ran (`remember_read`).
    pub async fn has_session(&self, owner: &str, provider: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.cached(owner, provider) {
            return Ok(known.opens);
        }
        let place = session_place(owner, provider);
        let Some(cache) = self.sessions.clone() else {
            let text = self.session_row(owner, provider).await?;
            // A session that does not open (another key, copied from another row) is none.
            return Ok(text.is_some_and(|t| self.unseal::<Values>(place, &t).is_some()));
        };
        let q = session_query(owner, provider);
        let sealer = self.sealer.clone();
        let Db::One(local) = &self.db else {
            return Err(StoreError(
                "no SQLite connection: the store is a pool".into(),
            ));
        };
        let local = local.clone();
        let (owner, provider) = (owner.to_string(), provider.to_string());
        self.read(move |c| {
            let era = local.era();
            let mut st = q.sqlite(c)?;
            let mut rows = st.raw_query();
            let text: Option<String> = match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            };
            let opened = text
                .as_deref()
                .and_then(|t| unseal::<Values>(&sealer, session_place(&owner, &provider), t));
            let known = Known {
                data: text.map(Arc::from),
                opens: opened.is_some(),
                keys: opened.map_or_else(Default::default, |v| v.into_keys().collect()),
            };
            let opens = known.opens;
            remember_read(&cache, &owner, &provider, known, || {
                era % 2 == 0 && local.era() == era
            });
            Ok(opens)
        })
        .await
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
        if self.sqlite {
            return self.merge_session_sqlite(owner, provider, extracted).await;
        }
        self.merge_session(owner, provider, extracted).await
    }

    /// Deletes the session and any pending run: logout, or a provider that revoked it.
    pub async fn logout(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        if !self.sqlite {
            let q = Query::new(
                "WITH s AS (DELETE FROM provider_sessions WHERE owner = $1 AND provider = $2) \
                 DELETE FROM pending_runs WHERE owner = $1 AND provider = $2",
            );
            return self.run(q.bind(owner).bind(provider)).await.map(drop);
        }
        let session =
            Query::new("DELETE FROM provider_sessions WHERE owner = $1 AND provider = $2")
                .bind(owner)
                .bind(provider);
        let pending = Query::new(DELETE_PENDING).bind(owner).bind(provider);
        let cache = self.sessions.clone();
        let (owner, provider) = (owner.to_string(), provider.to_string());
        self.write(
            move |c| {
                session.sqlite_exec(c)?;
                pending.sqlite_exec(c).map(drop)
            },
            move |r| {
                if let Some(cache) = &cache {
                    let gone = Known {
                        data: None,
                        opens: false,
                        keys: Default::default(),
                    };
                    remember(cache, &owner, &provider, r.map(|()| gone));
                }
            },
        )
        .await
    }

    /// The session as stored (sealed) and what it opens to: what `forget_session` takes, so
    /// that it deletes that session and not one a later login wrote.
    pub async fn session_sealed(
        &self,
        owner: &str,
        provider: &str,
    ) -> Result<Option<(String, Values)>, StoreError> {
        let Some(text) = self.session_row(owner, provider).await? else {
            return Ok(None);
        };
        Ok(self
            .unseal(session_place(owner, provider), &text)
            .map(|v| (text, v)))
    }

    /// Deletes `owner`'s session with `provider` if it is still `sealed` (as
    /// `session_sealed` read it); a session written since, and any pending run, stay.
    pub async fn forget_session(
        &self,
        owner: &str,
        provider: &str,
        sealed: &str,
    ) -> Result<(), StoreError> {
        let q = Query::new(
            "DELETE FROM provider_sessions WHERE owner = $1 AND provider = $2 AND data = $3",
        )
        .bind(owner)
        .bind(provider)
        .bind(sealed);
        if !self.sqlite {
            return self.run(q).await.map(drop);
        }
        let cache = self.sessions.clone();
        let (owner, provider) = (owner.to_string(), provider.to_string());
        self.write(
            move |c| q.sqlite_exec(c).map(|n| n > 0),
            move |deleted| {
                let Some(cache) = &cache else { return };
                match deleted {
                    Some(true) => {
                        let gone = Known {
                            data: None,
                            opens: false,
                            keys: Default::default(),
                        };
                        remember(cache, &owner, &provider, Some(gone));
                    }
                    Some(false) => {}
                    None => remember(cache, &owner, &provider, None),
                }
            },
        )
        .await
        .map(drop)
    }

    /// The pending run, if one exists and has not expired.
    pub async fn pending(
        &self,
        owner: &str,
        provider: &str,
    ) -> Result<Option<PendingRun>, StoreError> {
        let q = Query::new(
            "SELECT flow_id, next_step, inputs, extracted, expires_at, next_step_id, run_id, \
             awaiting FROM pending_runs WHERE owner = $1 AND provider = $2 AND expires_at > $3",
        )
        .bind(owner)
        .bind(provider)
        .bind(now());
        let rows = self.rows(q, true, |r| {
            Ok((
                PendingRun {
                    flow_id: r.text(0)?,
                    next_step: usize::try_from(r.int(1)?).unwrap_or(usize::MAX),
                    expires_at: r.int(4)?,
                    next_step_id: r.text(5)?,
                    run_id: r.text(6)?,
                    awaiting: from_json(&r.text(7)?),
                    ..PendingRun::default()
                },
                r.text(2)?,
                r.text(3)?,
            ))
        });
        Ok(rows.await?.pop().and_then(|(run, inputs, extracted)| {
            Some(PendingRun {
                inputs: self.unseal(pending_place(INPUTS, owner, provider), &inputs)?,
                extracted: self.unseal(pending_place(EXTRACTED, owner, provider), &extracted)?,
                ..run
            })
        }))
    }

    pub async fn save_pending(
        &self,
        owner: &str,
        provider: &str,
        run: &PendingRun,
    ) -> Result<(), StoreError> {
        let q = Query::new(
            "INSERT INTO pending_runs (owner, provider, flow_id, next_step, inputs, extracted, \
             expires_at, next_step_id, run_id, awaiting) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (owner, provider) DO UPDATE SET flow_id = excluded.flow_id, \
             next_step = excluded.next_step, inputs = excluded.inputs, \
             extracted = excluded.extracted, expires_at = excluded.expires_at, \
             next_step_id = excluded.next_step_id, run_id = excluded.run_id, \
             awaiting = excluded.awaiting",
        )
        .bind(owner)
        .bind(provider)
        .bind(run.flow_id.as_str())
        .bind(i64::try_from(run.next_step).unwrap_or(i64::MAX))
        .bind(self.seal(pending_place(INPUTS, owner, provider), &run.inputs))
        .bind(self.seal(pending_place(EXTRACTED, owner, provider), &run.extracted))
        .bind(run.expires_at)
        .bind(run.next_step_id.as_str())
        .bind(run.run_id.as_str())
        .bind(to_json(&run.awaiting));
        self.run(q).await.map(drop)
    }

    pub async fn discard_pending(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let q = Query::new(DELETE_PENDING).bind(owner).bind(provider);
        self.run(q).await.map(drop)
    }

    /// A pending run's expiry for a run saved now with `ttl`.
    pub fn expiry(ttl: Duration) -> i64 {
        now() + i64::try_from(ttl.as_secs()).unwrap_or(600)
    }
}

/// Opens what the store holds at `place`, as JSON; a value that does not open (another key,
/// another row's value) counts as absent.
fn unseal<T: DeserializeOwned + Default>(
    sealer: &Sealer,
    place: Place<'_>,
    stored: &str,
) -> Option<T> {
    let opened = sealer.open(place, stored);
    if opened.is_none() {
        tracing::warn!(
            provider = place.provider,
            column = place.column,
            "a stored value does not open with the session key; it is ignored"
        );
    }
    opened.map(|t| from_json(&t))
}

fn session_query(owner: &str, provider: &str) -> Query {
    Query::new("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = $2")
        .bind(owner)
        .bind(provider)
}

const DELETE_PENDING: &str = "DELETE FROM pending_runs WHERE owner = $1 AND provider = $2";

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
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_waiting_for_another_process_s_lock_does_not_hold_the_request_thread() {
        let (dir, file, store) = file_store().await;
        let one = |k: &str, v: &str| Values::from([(k.to_string(), v.to_string())]);
        store
            .complete("alice", "acme", &one("a", "1"))
            .await
            .unwrap();
        let (release, holder) = hold_write_lock(file);
        // This test's runtime has one thread: the write waits elsewhere, and neither the thread
        // nor the connection waits with it: a read of the database goes on.
        let write = tokio::spawn({
            let store = store.clone();
            async move { store.complete("bob", "acme", &one("b", "2")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            store.session("alice", "acme").await.unwrap(),
            Some(one("a", "1"))
        );
        assert!(!write.is_finished(), "the write waits for the lock");
        release.send(()).unwrap();
        holder.join().unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(
            store.session("bob", "acme").await.unwrap(),
            Some(one("b", "2"))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_overlaps_a_commit_is_answered_but_not_cached() {
        let (dir, _, store) = file_store().await;
        let one = Values::from([("a".to_string(), "1".to_string())]);
        store.complete("alice", "acme", &one).await.unwrap();
        let Db::One(local) = &store.db else {
            unreachable!()
        };
        // Bob's row is not cached; a batch is under way while it is read.
        let held = local.hold().await;
        assert!(!store.has_session("bob", "acme").await.unwrap());
        assert!(store.cached("bob", "acme").is_none(), "not cached");
        held.release().await;
        local.until_idle().await;
        assert!(!store.has_session("bob", "acme").await.unwrap());
        assert!(
            store.cached("bob", "acme").is_some(),
            "cached between batches"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A store on a new file: (its directory, the file, the store).
    pub(super) async fn file_store() -> (std::path::PathBuf, std::path::PathBuf, Store) {
        let dir = tempfile_dir();
        let file = dir.join("s.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()), Sealer::Plaintext)
            .await
            .unwrap();
        (dir, file, store)
    }

    /// Another process (here: a connection on a thread of its own) holds `file`'s write lock
    /// until told to let go.
    pub(super) fn hold_write_lock(
        file: std::path::PathBuf,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut c = rusqlite::Connection::open(&file).unwrap();
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            tx.execute("UPDATE store_probe SET at = at", []).unwrap();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            tx.commit().unwrap();
        });
        locked.recv().unwrap();
        (release, holder)
    }

    pub(super) fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("otvi-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

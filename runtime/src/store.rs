//! The session store: completed provider sessions and pending multi-step runs, in SQLite (the
//! default) or PostgreSQL, through one set of queries on `sqlx`'s `Any` driver.
//!
//! Session values and a pending run's inputs and extracted values are sealed (`seal`) before
//! they are written; ids, step names and expiry times are not secret and stay readable.

use crate::seal::{Place, Sealer};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
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
    /// Every failure so far (the `otvi_store_errors` metric).
    count: prometheus_client::metrics::counter::Counter,
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
    db: Db,
    faults: Arc<Faults>,
    sqlite: bool,
    sealer: Arc<Sealer>,
    /// SQLite only: each (owner, provider)'s session row as last read or written.
    sessions: Option<SessionCache>,
    /// SQLite file only: what makes this process the file's one server.
    _claim: Option<Arc<FileClaim>>,
}

/// Where the queries go.
#[derive(Debug, Clone)]
enum Db {
    /// PostgreSQL: a pool shared by this instance's requests.
    Pool(AnyPool),
    /// SQLite: one connection, used by one request at a time. The process is the file's only
    /// writer and SQLite runs one write at a time anyway; one connection keeps its page cache
    /// (another connection's write empties it), never waits for a lock, and skips the pool's
    /// test of a connection on every acquire and release (a round trip to the connection's
    /// worker thread each).
    One(Arc<Held>),
}

#[derive(Debug)]
struct Held {
    opts: AnyConnectOptions,
    conn: tokio::sync::Mutex<Option<AnyConnection>>,
    /// `sqlite::memory:`: the database lives in its one connection, which is never replaced.
    in_memory: bool,
    /// Whether the checkpoint task runs (see `checkpoints`).
    checkpointing: std::sync::atomic::AtomicBool,
}

/// How often the checkpoint task copies the write-ahead log into the database file. Measured
/// with bench/load.sh: every second cost a login about 10 % less CPU than every 200 ms, but
/// its larger checkpoints raised p99 at 16 and 64 connections from 4–15 ms to 35–50 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Runs SQLite's checkpoints on a connection of its own, so that the one that serves requests
/// never waits for one (a checkpoint ends with an fsync, which would hold every request
/// queued behind it). A passive checkpoint does not block writers. Ends with the `Held`.
fn checkpoints(held: &Arc<Held>) {
    use std::sync::atomic::Ordering;
    if held.in_memory || held.checkpointing.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        held.checkpointing.store(false, Ordering::Relaxed);
        return;
    };
    let weak = Arc::downgrade(held);
    let opts = held.opts.clone();
    rt.spawn(async move {
        let mut conn: Option<AnyConnection> = None;
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if weak.strong_count() == 0 {
                return;
            }
            if conn.is_none() {
                conn = AnyConnection::connect_with(&opts).await.ok();
            }
            let Some(c) = conn.as_mut() else { continue };
            if let Err(e) = c.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::debug!(error = %e, "checkpoint failed; retried on a new connection");
                conn = None;
            }
        }
    });
}

/// A connection lent to one operation: from the pool, or the held one. An operation that
/// does not finish (its request was dropped midway, or a statement failed) may have left a
/// transaction open or a statement unread, so a connection not handed back with `done` is
/// not used again.
struct Conn<'a> {
    lent: Lent<'a>,
    done: bool,
}

enum Lent<'a> {
    Pooled(PoolConnection<Any>),
    Held(tokio::sync::MutexGuard<'a, Option<AnyConnection>>, bool),
}

impl std::ops::Deref for Conn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.lent {
            Lent::Pooled(c) => c,
            Lent::Held(c, _) => c.as_ref().expect("a held connection is open while lent"),
        }
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.lent {
            Lent::Pooled(c) => c,
            Lent::Held(c, _) => c.as_mut().expect("a held connection is open while lent"),
        }
    }
}

impl Conn<'_> {
    /// The operation finished: the connection may be used again.
    fn done(mut self) {
        self.done = true;
    }

    /// The connection is not used again (closing it rolls back a transaction it left open),
    /// except an in-memory database's only one.
    fn broken(&mut self) {
        match &mut self.lent {
            Lent::Pooled(c) => c.close_on_drop(),
            Lent::Held(c, in_memory) => {
                if !*in_memory {
                    c.take();
                }
            }
        }
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.broken();
        }
    }
}

/// (owner, provider)'s session row as the store last read or wrote it, by provider then
/// owner: looked up without building a key.
type SessionCache = Arc<Mutex<HashMap<String, HashMap<String, Known>>>>;

/// A session row as known: its sealed value (`None`: no row), whether that opens, and the
/// names (not the values) it holds.
#[derive(Debug, Clone)]
struct Known {
    data: Option<Arc<str>>,
    opens: bool,
    keys: Arc<[String]>,
}

/// Entries in the session cache before it starts over (a few hundred bytes each).
const SESSION_CACHE_MAX: usize = 100_000;

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
    held: Arc<Held>,
}

static CLAIMS: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<FileClaim>)>> =
    Mutex::new(Vec::new());

fn claim_sqlite_file(
    url: &str,
    connect: &AnyConnectOptions,
) -> Result<Option<Arc<FileClaim>>, StoreError> {
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
        held: Arc::new(Held {
            opts: connect.clone(),
            conn: Default::default(),
            in_memory: false,
            checkpointing: Default::default(),
        }),
    });
    claims.push((key, Arc::downgrade(&claim)));
    Ok(Some(claim))
}

/// SQLite's settings for the connection that serves requests: wait for a lock rather than
/// fail, write-ahead logging, commits that survive a crash of the process (not of the
/// machine) without an fsync each, checkpoints left to `checkpoints` (its own only when the
/// log has grown far: that task is not running), and a log file cut back to 64 MiB after a
/// burst.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 20000; \
     PRAGMA journal_size_limit = 67108864;";

/// What a database holds of this build's migrations (`otvi doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrations {
    /// Applied migrations this build knows.
    pub applied: usize,
    /// This build's migrations not applied yet ("version description").
    pub pending: Vec<String>,
    /// Applied migrations that differ from this build's (checksum) or failed part-way.
    pub broken: Vec<String>,
    /// Applied migrations this build does not know (a newer build's).
    pub unknown: Vec<i64>,
}

/// The database at `url` and its migrations, read without changing anything: an SQLite file
/// is opened read-only (a missing file is an error, not created).
pub async fn inspect(url: &str) -> Result<Migrations, StoreError> {
    use sqlx::migrate::Migrate;
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let file = opts.get_filename();
        if !file.as_os_str().is_empty() && !file.exists() {
            return Err(StoreError(format!(
                "{} does not exist (`otvi serve` or `otvi doctor --migrate` creates it)",
                file.display()
            )));
        }
        let base = url.split('?').next().unwrap_or(url);
        format!("{base}?mode=ro")
    } else {
        url.to_string()
    };
    let opts = AnyConnectOptions::from_str(&url)?;
    let mut c = tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect_with(&opts))
        .await
        .map_err(|_| StoreError("no answer in 10 s".into()))??;
    let has_table: bool = if url.starts_with("sqlite:") {
        sqlx::query(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut c)
        .await?
        .get::<i64, _>(0)
            > 0
    } else {
        sqlx::query("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()")
            .fetch_one(&mut c)
            .await?
            .get::<i64, _>(0)
            > 0
    };
    let applied = if has_table {
        c.list_applied_migrations().await?
    } else {
        Vec::new()
    };
    let _ = c.close().await;
    let migrator = sqlx::migrate!("./migrations");
    let mut m = Migrations {
        applied: 0,
        pending: Vec::new(),
        broken: Vec::new(),
        unknown: Vec::new(),
    };
    for known in migrator.iter() {
        let name = format!("{} {}", known.version, known.description);
        match applied.iter().find(|a| a.version == known.version) {
            None => m.pending.push(name),
            Some(a) if a.checksum != known.checksum => m.broken.push(name),
            Some(_) => m.applied += 1,
        }
    }
    m.unknown = applied
        .iter()
        .map(|a| a.version)
        .filter(|v| !migrator.iter().any(|k| k.version == *v))
        .collect();
    Ok(m)
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
        let opts = AnyConnectOptions::from_str(&url)?;
        let faults = Arc::new(Faults {
            origin: std::time::Instant::now(),
            last: Default::default(),
            count: Default::default(),
        });
        let (db, claim) = if is_sqlite {
            let claim = if in_memory {
                None
            } else {
                claim_sqlite_file(&url, &opts)?
            };
            let held = match &claim {
                Some(c) => c.held.clone(),
                None => Arc::new(Held {
                    opts,
                    conn: Default::default(),
                    in_memory,
                    checkpointing: Default::default(),
                }),
            };
            checkpoints(&held);
            (Db::One(held), claim)
        } else {
            let seen = faults.clone();
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .idle_timeout(Duration::from_secs(600))
                .max_lifetime(Duration::from_secs(1800))
                .acquire_timeout(Duration::from_secs(5))
                .before_acquire(move |_, meta| {
                    let fresh = seen.fresh(meta.age);
                    Box::pin(async move { Ok(fresh) })
                })
                .connect_with(opts)
                .await?;
            (Db::Pool(pool), None)
        };
        let store = Store {
            db,
            faults,
            sqlite: is_sqlite,
            sealer: Arc::new(sealer),
            sessions: match &claim {
                Some(c) => Some(c.sessions.clone()),
                None => in_memory.then(Default::default),
            },
            _claim: claim,
        };
        let mut c = store.conn().await?;
        let migrated = sqlx::migrate!("./migrations").run(&mut *c).await;
        store.check(&mut c, migrated)?;
        c.done();
        Ok(store)
    }

    /// A connection for one operation (see `Db`).
    async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        match &self.db {
            Db::Pool(pool) => pool
                .acquire()
                .await
                .map(|c| Conn {
                    lent: Lent::Pooled(c),
                    done: false,
                })
                .map_err(|e| self.fault(e)),
            Db::One(held) => {
                let mut guard = held.conn.lock().await;
                if guard.is_none() {
                    let mut c = AnyConnection::connect_with(&held.opts)
                        .await
                        .map_err(|e| self.fault(e))?;
                    c.execute(SQLITE_PRAGMAS).await.map_err(|e| self.fault(e))?;
                    *guard = Some(c);
                }
                Ok(Conn {
                    lent: Lent::Held(guard, held.in_memory),
                    done: false,
                })
            }
        }
    }

    /// Passes on an operation's result; a failure marks the connection broken (see
    /// `Conn::broken`) and is noted (see `Faults`).
    fn check<T, E: Into<StoreError>>(
        &self,
        c: &mut Conn<'_>,
        r: Result<T, E>,
    ) -> Result<T, StoreError> {
        r.map_err(|e| {
            c.broken();
            self.fault(e)
        })
    }

    /// Notes a failure (see `Faults`) and passes it on.
    fn fault(&self, e: impl Into<StoreError>) -> StoreError {
        let at = self.faults.now_ms().saturating_add(1);
        self.faults
            .last
            .store(at, std::sync::atomic::Ordering::Relaxed);
        self.faults.count.inc();
        e.into()
    }

    /// Counts the store's failures (shared: it goes up as they happen).
    pub fn errors(&self) -> prometheus_client::metrics::counter::Counter {
        self.faults.count.clone()
    }

    /// Multi-step runs waiting for their next step (not yet expired).
    pub async fn pending_runs(&self) -> Result<i64, StoreError> {
        let row = self
            .row(sqlx::query("SELECT COUNT(*) FROM pending_runs WHERE expires_at > $1").bind(now()))
            .await?;
        Ok(row.map_or(0, |r| r.get::<i64, _>(0)))
    }

    /// Runs one statement that returns nothing.
    async fn run<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let r = q.execute(&mut *c).await.map(|r| r.rows_affected());
        let n = self.check(&mut c, r)?;
        c.done();
        Ok(n)
    }

    /// Runs one query that returns at most one row.
    async fn row<'q>(
        &self,
        q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<Option<AnyRow>, StoreError> {
        let mut c = self.conn().await?;
        let r = q.fetch_optional(&mut *c).await;
        let row = self.check(&mut c, r)?;
        c.done();
        Ok(row)
    }

    /// Can the database be written: one small write, so a store that still answers reads but
    /// refuses writes (a read-only or full disk) is not reported ready.
    pub async fn ping(&self) -> bool {
        // A counter, not the time: an update that changes nothing writes nothing.
        self.run(sqlx::query(
            "INSERT INTO store_probe (id, at) VALUES (1, 0) \
             ON CONFLICT (id) DO UPDATE SET at = store_probe.at + 1",
        ))
        .await
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
            .session_row(owner, provider)
            .await?
            .and_then(|t| self.unseal(session_place(owner, provider), &t)))
    }

    /// The session row's sealed value, as stored.
    async fn session_row(&self, owner: &str, provider: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn().await?;
        let text = session_text(&mut c, owner, provider).await;
        let text = self.check(&mut c, text)?;
        c.done();
        Ok(text)
    }

    /// Is there a completed session.
    ///
    /// On SQLite the session row is cached in memory: the server process is the database's
    /// only writer (several instances use PostgreSQL), so it sees every change. Writers
    /// overwrite the cached row after their write; a reader only fills an absent one, so a
    /// read that raced with a write can never leave a stale row behind.
    pub async fn has_session(&self, owner: &str, provider: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.cached(owner, provider) {
            return Ok(known.opens);
        }
        let text = self.session_row(owner, provider).await?;
        // A session that does not open (another key, copied from another row) is no session.
        let opened = text
            .as_deref()
            .and_then(|t| self.unseal::<Values>(session_place(owner, provider), t));
        let opens = opened.is_some();
        self.remember(
            owner,
            provider,
            Some(Known {
                data: text.map(Arc::from),
                opens,
                keys: opened.map_or_else(Default::default, |v| v.into_keys().collect()),
            }),
            false,
        );
        Ok(opens)
    }

    fn cached(&self, owner: &str, provider: &str) -> Option<Known> {
        let c = self.sessions.as_ref()?.lock().ok()?;
        c.get(provider)?.get(owner).cloned()
    }

    /// Records a row as read (`overwrite` false: only if none is known) or written (true);
    /// `None` forgets it (a write that failed midway).
    fn remember(&self, owner: &str, provider: &str, known: Option<Known>, overwrite: bool) {
        let Some(Ok(mut c)) = self.sessions.as_ref().map(|c| c.lock()) else {
            return;
        };
        match known {
            Some(k) => {
                if c.values().map(HashMap::len).sum::<usize>() >= SESSION_CACHE_MAX {
                    c.clear();
                }
                let owners = c.entry(provider.to_string()).or_default();
                if overwrite {
                    owners.insert(owner.to_string(), k);
                } else {
                    owners.entry(owner.to_string()).or_insert(k);
                }
            }
            None => {
                if let Some(owners) = c.get_mut(provider) {
                    owners.remove(owner);
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
        let (merged, known) = match result {
            Ok((merged, data)) => {
                let keys = merged.keys().cloned().collect();
                (
                    Ok(merged),
                    Some(Known {
                        data: Some(data.into()),
                        opens: true,
                        keys,
                    }),
                )
            }
            Err(e) => (Err(e), None),
        };
        self.remember(owner, provider, known, true);
        merged
    }

    /// The merge and write of `complete`: the merged session and its sealed text.
    async fn merge_session(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<(Values, String), StoreError> {
        let place = session_place(owner, provider);
        let mut c = self.conn().await?;
        // The cached row saves the read; if it is stale, the write fails and the next round
        // reads. When the new values replace every name it holds (or it does not open), the
        // merge is the new values, and the row need not be opened either.
        let mut cached = self.cached(owner, provider);
        for _ in 0..16 {
            let (before, replaced) = match cached.take() {
                Some(k) => {
                    let replaced = !k.opens || k.keys.iter().all(|key| extracted.contains_key(key));
                    (k.data, replaced)
                }
                None => {
                    let text = session_text(&mut c, owner, provider).await;
                    (self.check(&mut c, text)?.map(Arc::from), false)
                }
            };
            let mut merged: Values = if replaced {
                Values::new()
            } else {
                before
                    .as_deref()
                    .and_then(|t| self.unseal(place, t))
                    .unwrap_or_default()
            };
            merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
            let data = self.seal(place, &merged);
            // One round trip: the write names the value it replaces, and the pending run is
            // deleted only if the write happened.
            let sql = match (self.sqlite, before.is_some()) {
                (true, false) => SQLITE_CREATE_SESSION,
                (true, true) => SQLITE_REPLACE_SESSION,
                (false, false) => PG_CREATE_SESSION,
                (false, true) => PG_REPLACE_SESSION,
            };
            let q = sqlx::query(sql)
                .bind(owner)
                .bind(provider)
                .bind(&data)
                .bind(now())
                .bind(before.as_deref().unwrap_or(""));
            let written = if self.sqlite {
                q.execute(&mut *c).await.map(|r| r.rows_affected() > 0)
            } else {
                q.fetch_one(&mut *c).await.map(|r| r.get::<i64, _>(0) > 0)
            };
            if self.check(&mut c, written)? {
                c.done();
                return Ok((merged, data));
            }
        }
        Err(StoreError(
            "the session kept changing while it was being written".into(),
        ))
    }

    /// Deletes the session and any pending run: logout, or a provider that revoked it.
    pub async fn logout(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let result = self.delete_session(owner, provider).await;
        let gone = Known {
            data: None,
            opens: false,
            keys: Default::default(),
        };
        self.remember(owner, provider, result.is_ok().then_some(gone), true);
        result
    }

    async fn delete_session(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        let sql = if self.sqlite {
            "BEGIN IMMEDIATE; \
             DELETE FROM provider_sessions WHERE owner = $1 AND provider = $2; \
             DELETE FROM pending_runs WHERE owner = $1 AND provider = $2; \
             COMMIT"
        } else {
            "WITH s AS (DELETE FROM provider_sessions WHERE owner = $1 AND provider = $2) \
             DELETE FROM pending_runs WHERE owner = $1 AND provider = $2"
        };
        self.run(sqlx::query(sql).bind(owner).bind(provider))
            .await
            .map(drop)
    }

    /// The pending run, if one exists and has not expired.
    pub async fn pending(
        &self,
        owner: &str,
        provider: &str,
    ) -> Result<Option<PendingRun>, StoreError> {
        let row = self
            .row(
                sqlx::query(
                    "SELECT flow_id, next_step, inputs, extracted, expires_at, next_step_id, run_id, awaiting \
                     FROM pending_runs WHERE owner = $1 AND provider = $2 AND expires_at > $3",
                )
                .bind(owner)
                .bind(provider)
                .bind(now()),
            )
            .await?;
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
        self.run(
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
            .bind(to_json(&run.awaiting)),
        )
        .await
        .map(drop)
    }

    pub async fn discard_pending(&self, owner: &str, provider: &str) -> Result<(), StoreError> {
        self.run(
            sqlx::query("DELETE FROM pending_runs WHERE owner = $1 AND provider = $2")
                .bind(owner)
                .bind(provider),
        )
        .await
        .map(drop)
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = (2..keys.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT key, window_start, failures FROM login_failures \
             WHERE window_start > $1 AND key IN ({})",
            names.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now() - window_secs(window));
        for key in keys {
            q = q.bind(*key);
        }
        let mut c = self.conn().await?;
        let rows = q.fetch_all(&mut *c).await;
        let rows = self.check(&mut c, rows)?;
        c.done();
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<i64, _>(1),
                    r.get::<i64, _>(2),
                )
            })
            .collect())
    }

    /// Counts a failure for each key: in its open window, or in a new one starting now.
    pub async fn record_failure(&self, keys: &[&str], window: Duration) -> Result<(), StoreError> {
        let t = now();
        for key in keys {
            self.run(
                sqlx::query(
                    "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1) \
                     ON CONFLICT (key) DO UPDATE SET \
                     failures = CASE WHEN login_failures.window_start > $3 THEN login_failures.failures + 1 ELSE 1 END, \
                     window_start = CASE WHEN login_failures.window_start > $3 THEN login_failures.window_start ELSE $2 END",
                )
                .bind(*key)
                .bind(t)
                .bind(t - window_secs(window)),
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes counts whose window has closed.
    pub async fn sweep_failures(&self, window: Duration) -> Result<(), StoreError> {
        self.run(
            sqlx::query("DELETE FROM login_failures WHERE window_start <= $1")
                .bind(now() - window_secs(window)),
        )
        .await
        .map(drop)
    }

    pub async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.run(sqlx::query("DELETE FROM login_failures WHERE key = $1").bind(key))
            .await
            .map(drop)
    }

    /// A pending run's expiry for a run saved now with `ttl`.
    pub fn expiry(ttl: Duration) -> i64 {
        now() + i64::try_from(ttl.as_secs()).unwrap_or(600)
    }
}

async fn session_text(
    c: &mut AnyConnection,
    owner: &str,
    provider: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = $2")
        .bind(owner)
        .bind(provider)
        .fetch_optional(c)
        .await?;
    Ok(row.map(|r| r.get::<String, _>(0)))
}

// Writing a merged session ($3, at $4) for ($1, $2) over the value it replaces ($5, or none)
// and deleting the pending run, all or nothing, in one round trip; the pending run goes only
// when the session was written. SQLite runs the statements in one transaction (a connection
// whose statement fails is closed, which rolls it back); `changes()` is what the write changed.
// PostgreSQL runs one statement, whose parts see the write through `RETURNING`.
const SQLITE_CREATE_SESSION: &str = "BEGIN IMMEDIATE; \
    INSERT INTO provider_sessions (owner, provider, data, updated_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (owner, provider) DO NOTHING; \
    DELETE FROM pending_runs WHERE owner = $1 AND provider = $2 AND changes() > 0; \
    COMMIT";
const SQLITE_REPLACE_SESSION: &str = "BEGIN IMMEDIATE; \
    UPDATE provider_sessions SET data = $3, updated_at = $4 \
    WHERE owner = $1 AND provider = $2 AND data = $5; \
    DELETE FROM pending_runs WHERE owner = $1 AND provider = $2 AND changes() > 0; \
    COMMIT";
const PG_CREATE_SESSION: &str = "WITH w AS (\
    INSERT INTO provider_sessions (owner, provider, data, updated_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (owner, provider) DO NOTHING RETURNING 1), \
    d AS (DELETE FROM pending_runs WHERE owner = $1 AND provider = $2 \
    AND EXISTS (SELECT 1 FROM w) AND $5 = '') \
    SELECT count(*) FROM w";
const PG_REPLACE_SESSION: &str = "WITH w AS (\
    UPDATE provider_sessions SET data = $3, updated_at = $4 \
    WHERE owner = $1 AND provider = $2 AND data = $5 RETURNING 1), \
    d AS (DELETE FROM pending_runs WHERE owner = $1 AND provider = $2 AND EXISTS (SELECT 1 FROM w)) \
    SELECT count(*) FROM w";

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

    #[tokio::test]
    async fn a_merge_over_a_cached_row_keeps_what_the_new_values_do_not_replace() {
        let dir = tempfile_dir();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let store = Store::connect(&url, Sealer::ephemeral()).await.unwrap();
        let values = |pairs: &[(&str, &str)]| -> Values {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        store
            .complete("alice", "acme", &values(&[("a", "1"), ("b", "1")]))
            .await
            .unwrap();
        // Every name replaced: the row need not be opened.
        let m = store
            .complete("alice", "acme", &values(&[("a", "2"), ("b", "2")]))
            .await
            .unwrap();
        assert_eq!(m, values(&[("a", "2"), ("b", "2")]));
        // Some names kept: they come from the stored row.
        let m = store
            .complete("alice", "acme", &values(&[("c", "3")]))
            .await
            .unwrap();
        assert_eq!(m, values(&[("a", "2"), ("b", "2"), ("c", "3")]));
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(m));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_row_changed_behind_the_cache_is_read_again_before_the_merge() {
        let dir = tempfile_dir();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let store = Store::connect(&url, Sealer::Plaintext).await.unwrap();
        let one = |k: &str, v: &str| Values::from([(k.to_string(), v.to_string())]);
        store
            .complete("alice", "acme", &one("a", "1"))
            .await
            .unwrap();
        // Another writer (here: by hand) changes the row the cache holds.
        let mut other = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE provider_sessions SET data = '{\"a\":\"x\",\"z\":\"9\"}'")
            .execute(&mut other)
            .await
            .unwrap();
        // The cached row says every name is replaced; the write finds the row changed, reads
        // it and merges over what it holds now.
        let m = store
            .complete("alice", "acme", &one("a", "2"))
            .await
            .unwrap();
        assert_eq!(
            m,
            Values::from([("a".into(), "2".into()), ("z".into(), "9".into())])
        );
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(m));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("otvi-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

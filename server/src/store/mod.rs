//! The session store: completed provider sessions and pending multi-step runs, in SQLite (the
//! default) or PostgreSQL, through one set of queries (`Query`): on PostgreSQL through a
//! `sqlx` pool, on SQLite through one connection called on the request's thread (`sqlite`).
//! Migrations run through `sqlx` on both.
//!
//! Session values and a pending run's inputs and extracted values are sealed (`seal`) before
//! they are written; ids, step names and expiry times are not secret and stay readable.

mod sqlite;

use crate::seal::{Place, Sealer};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, SqliteConnection};
use std::borrow::Cow;
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

/// When the store last failed: pooled (PostgreSQL) connections opened before then are not
/// reused, so a database that comes back (a disk writable again, a restarted server) is met on
/// fresh connections, not on ones left in an error state. (SQLite's one connection is closed
/// by the operation that failed on it.)
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
    /// SQLite: one connection, used by one operation at a time on the request's thread (see
    /// `sqlite`). The process is the file's only writer and SQLite runs one write at a time
    /// anyway; one connection keeps its page cache (another connection's write empties it)
    /// and never waits for a lock of this process.
    One(Arc<sqlite::Local>),
}

/// A pooled connection lent to one operation. An operation that does not finish (its request
/// was dropped midway, or a statement failed) may have left a transaction open or a statement
/// unread, so a connection not handed back with `done` is closed, not pooled again.
struct Conn {
    c: PoolConnection<Any>,
    done: bool,
}

impl std::ops::Deref for Conn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.c
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.c
    }
}

impl Conn {
    /// The operation finished: the connection may be used again.
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.done {
            self.c.close_on_drop();
        }
    }
}

/// A value bound to a query's `$N` (N its place in the list, from 1).
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Arg {
        Arg::Int(i)
    }
}

/// A query's SQL and arguments, bound to either driver.
#[derive(Debug, Clone)]
struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Query {
    fn new(sql: impl Into<Cow<'static, str>>) -> Query {
        Query {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    fn bind(mut self, a: impl Into<Arg>) -> Query {
        self.args.push(a.into());
        self
    }

    fn sqlx(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// The statement, prepared (once per connection) and bound: each of its parameters, `$N`,
    /// to argument N (an argument it does not name is not bound, as in `SQLITE_CREATE_SESSION`;
    /// a parameter without an argument is an error, not a NULL).
    fn sqlite<'c>(
        &self,
        c: &'c rusqlite::Connection,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        let mut st = c.prepare_cached(&self.sql)?;
        for i in 1..=st.parameter_count() {
            let name = st.parameter_name(i).unwrap_or("?");
            let arg = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| self.args.get(n.checked_sub(1)?))
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?;
            match arg {
                Arg::Text(s) => st.raw_bind_parameter(i, s)?,
                Arg::Int(v) => st.raw_bind_parameter(i, v)?,
            }
        }
        Ok(st)
    }

    /// Runs it on SQLite: the rows it changed.
    fn sqlite_exec(&self, c: &rusqlite::Connection) -> rusqlite::Result<u64> {
        self.sqlite(c)?.raw_execute().map(|n| n as u64)
    }
}

/// A row as either driver gives it.
trait Cols {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
}

impl Cols for AnyRow {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
}

/// (owner, provider)'s session row as the store last read or wrote it, by provider then
/// owner: looked up without building a key.
type SessionCache = Arc<Mutex<crate::FastMap<String, crate::FastMap<String, Known>>>>;

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
    local: Arc<sqlite::Local>,
}

static CLAIMS: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<FileClaim>)>> =
    Mutex::new(Vec::new());

fn claim_sqlite_file(
    opts: &SqliteConnectOptions,
    create: bool,
) -> Result<Arc<FileClaim>, StoreError> {
    let file = opts.get_filename();
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
        return Ok(c);
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
        local: Arc::new(sqlite::Local::new(file.to_path_buf(), false, create)),
    });
    claims.push((key, Arc::downgrade(&claim)));
    Ok(claim)
}

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
        let faults = Arc::new(Faults {
            origin: std::time::Instant::now(),
            last: Default::default(),
            count: Default::default(),
        });
        if !url.starts_with("sqlite:") {
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
                .connect_with(AnyConnectOptions::from_str(url)?)
                .await?;
            let store = Store {
                db: Db::Pool(pool),
                faults,
                sqlite: false,
                sealer: Arc::new(sealer),
                sessions: None,
                _claim: None,
            };
            let mut c = store.pooled().await?;
            let migrated = sqlx::migrate!("./migrations").run(&mut *c).await;
            store.failed(migrated)?;
            c.done();
            return Ok(store);
        }
        let url = if !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let (in_memory, create) = sqlite::url_mode(&url)?;
        // Parsed once: for `sqlite::memory:`, `sqlx` names a new shared in-memory database on
        // every parse, and the migrations and the serving connection must meet in one.
        // (`sqlx` shares a database in memory between connections only under the name it
        // gives `sqlite::memory:`; `mode=memory` on a path is that database too.)
        let opts =
            SqliteConnectOptions::from_str(if in_memory { "sqlite::memory:" } else { &url })?;
        if opts.get_filename().as_os_str().is_empty() {
            return Err(StoreError(
                "the SQLite URL names no file (sqlite://PATH, or sqlite::memory: for a \
                 database that lives in memory)"
                    .into(),
            ));
        }
        let claim = if in_memory {
            None
        } else {
            Some(claim_sqlite_file(&opts, create)?)
        };
        let local = match &claim {
            Some(c) => c.local.clone(),
            None => Arc::new(sqlite::Local::new(
                opts.get_filename().to_path_buf(),
                true,
                true,
            )),
        };
        // The migrations run on a `sqlx` connection (its migration table and checksums); an
        // in-memory database lives on in the serving connection, opened before it closes.
        let mut migrating = SqliteConnection::connect_with(&opts).await?;
        sqlx::migrate!("./migrations").run(&mut migrating).await?;
        let store = Store {
            db: Db::One(local.clone()),
            faults,
            sqlite: true,
            sealer: Arc::new(sealer),
            sessions: match &claim {
                Some(c) => Some(c.sessions.clone()),
                None => Some(Default::default()),
            },
            _claim: claim,
        };
        store.sqlite(|_| Ok(())).await?;
        let _ = migrating.close().await;
        local.checkpoints();
        Ok(store)
    }

    /// A pooled connection for one operation (PostgreSQL).
    async fn pooled(&self) -> Result<Conn, StoreError> {
        let Db::Pool(pool) = &self.db else {
            return Err(StoreError("no connection pool: the store is SQLite".into()));
        };
        pool.acquire()
            .await
            .map(|c| Conn { c, done: false })
            .map_err(|e| self.fault(e))
    }

    /// Runs a whole operation on the SQLite connection (see `sqlite::Local::call`).
    async fn sqlite<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let Db::One(local) = &self.db else {
            return Err(StoreError(
                "no SQLite connection: the store is a pool".into(),
            ));
        };
        local.call(op).await.map_err(|e| self.fault(e))
    }

    /// Runs a write on the SQLite connection, committed with the others queued with it, and
    /// `then` once its outcome is final (see `sqlite::Local::write`).
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

    /// Passes on an operation's result, noting a failure (see `Faults`).
    fn failed<T, E: Into<StoreError>>(&self, r: Result<T, E>) -> Result<T, StoreError> {
        r.map_err(|e| self.fault(e))
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

    /// Counts the transactions of session writes committed on SQLite, where writes that reach
    /// the store together share one (a new counter on PostgreSQL, which does not count them).
    pub fn commits(&self) -> prometheus_client::metrics::counter::Counter {
        match &self.db {
            Db::One(local) => local.commits(),
            Db::Pool(_) => Default::default(),
        }
    }

    /// Multi-step runs waiting for their next step (not yet expired).
    pub async fn pending_runs(&self) -> Result<i64, StoreError> {
        let q = Query::new("SELECT COUNT(*) FROM pending_runs WHERE expires_at > $1").bind(now());
        let rows = self.rows(q, true, |r| r.int(0)).await?;
        Ok(rows.first().copied().unwrap_or(0))
    }

    /// Runs one statement: the rows it changed.
    async fn run(&self, q: Query) -> Result<u64, StoreError> {
        match &self.db {
            Db::Pool(_) => {
                let mut c = self.pooled().await?;
                let r = q.sqlx().execute(&mut *c).await.map(|r| r.rows_affected());
                let n = self.failed(r)?;
                c.done();
                Ok(n)
            }
            Db::One(_) => self.write(move |c| q.sqlite_exec(c), |_| {}).await,
        }
    }

    /// Runs one query and reads its rows (`first`: only the first) with `read`.
    async fn rows<T: Send + 'static>(
        &self,
        q: Query,
        first: bool,
        read: fn(&dyn Cols) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match &self.db {
            Db::Pool(_) => {
                let mut c = self.pooled().await?;
                let rows = if first {
                    q.sqlx()
                        .fetch_optional(&mut *c)
                        .await
                        .map(|r| r.into_iter().collect())
                } else {
                    q.sqlx().fetch_all(&mut *c).await
                };
                let rows: Vec<AnyRow> = self.failed(rows)?;
                c.done();
                rows.iter()
                    .map(|r| read(r))
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.fault(e))
            }
            Db::One(_) => {
                let read = self
                    .sqlite(move |c| {
                        let mut st = q.sqlite(c)?;
                        let mut rows = st.raw_query();
                        let mut out = Vec::new();
                        while let Some(r) = rows.next()? {
                            out.push(read(r));
                            if first {
                                break;
                            }
                        }
                        Ok(out)
                    })
                    .await?;
                read.into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.fault(e))
            }
        }
    }

    /// Can the database be written: one small write, so a store that still answers reads but
    /// refuses writes (a read-only or full disk) is not reported ready.
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
    /// only writer (several instances use PostgreSQL), so it sees every change. The cache
    /// changes only on the connection, right after the database did (see `remember`).
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
        let (owner, provider) = (owner.to_string(), provider.to_string());
        self.sqlite(move |c| {
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
            remember(&cache, &owner, &provider, Some(known), false);
            Ok(opens)
        })
        .await
    }

    fn cached(&self, owner: &str, provider: &str) -> Option<Known> {
        let c = self.sessions.as_ref()?.lock().ok()?;
        c.get(provider)?.get(owner).cloned()
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
        self.merge_session(owner, provider, extracted).await
    }

    /// The merge and write of `complete` on PostgreSQL: the read and the write on one pooled
    /// connection, the write naming the value it replaces, again while someone else changes
    /// the row in between.
    async fn merge_session(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        if self.sqlite {
            return self.merge_session_sqlite(owner, provider, extracted).await;
        }
        let place = session_place(owner, provider);
        let mut c = self.pooled().await?;
        for _ in 0..16 {
            let row = session_query(owner, provider)
                .sqlx()
                .fetch_optional(&mut *c)
                .await;
            let before = self.failed(row)?.map(|r| r.text(0)).transpose()?;
            let mut merged: Values = before
                .as_deref()
                .and_then(|t| self.unseal(place, t))
                .unwrap_or_default();
            merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
            let data = self.seal(place, &merged);
            let q = Query::new(if before.is_some() {
                PG_REPLACE_SESSION
            } else {
                PG_CREATE_SESSION
            })
            .bind(owner)
            .bind(provider)
            .bind(data.as_str())
            .bind(now())
            .bind(before.as_deref().unwrap_or(""));
            let row = q.sqlx().fetch_one(&mut *c).await;
            if self.failed(row)?.int(0)? > 0 {
                c.done();
                return Ok(merged);
            }
        }
        Err(StoreError(
            "the session kept changing while it was being written".into(),
        ))
    }

    /// The merge and write of `complete` on SQLite, in the transaction of the write's batch.
    /// The cached row saves the read, and when the new values replace every name it holds (or
    /// it does not open), the unsealing too: the merge is prepared before the write and written
    /// over the value it names. If that value is gone (an earlier write of the same batch
    /// changed the row), the row is read and merged again inside the transaction, where it
    /// cannot change.
    async fn merge_session_sqlite(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        let place = session_place(owner, provider);
        let prepared = self.cached(owner, provider).map(|k| {
            let mut merged: Values =
                if !k.opens || k.keys.iter().all(|key| extracted.contains_key(key)) {
                    Values::new()
                } else {
                    k.data
                        .as_deref()
                        .and_then(|t| self.unseal(place, t))
                        .unwrap_or_default()
                };
            merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
            let data = self.seal(place, &merged);
            (k.data, merged, data)
        });
        let sealer = self.sealer.clone();
        let cache = self.sessions.clone();
        let extracted = extracted.clone();
        let (owner, provider) = (owner.to_string(), provider.to_string());
        let (o, p) = (owner.clone(), provider.clone());
        let (merged, _) = self
            .write(
                move |c| {
                    let place = session_place(&owner, &provider);
                    let write = |before: Option<&str>, data: &str| -> rusqlite::Result<bool> {
                        let q = Query::new(match before {
                            Some(_) => SQLITE_REPLACE_SESSION,
                            None => SQLITE_CREATE_SESSION,
                        })
                        .bind(owner.as_str())
                        .bind(provider.as_str())
                        .bind(data)
                        .bind(now())
                        .bind(before.unwrap_or(""));
                        let written = q.sqlite_exec(c)? > 0;
                        if written {
                            let gone = Query::new(DELETE_PENDING)
                                .bind(owner.as_str())
                                .bind(provider.as_str());
                            gone.sqlite_exec(c)?;
                        }
                        Ok(written)
                    };
                    if let Some((before, merged, data)) = &prepared {
                        if write(before.as_deref(), data)? {
                            return Ok((merged.clone(), Arc::<str>::from(data.as_str())));
                        }
                    }
                    let mut st = session_query(&owner, &provider).sqlite(c)?;
                    let before: Option<String> = match st.raw_query().next()? {
                        Some(r) => Some(r.get(0)?),
                        None => None,
                    };
                    let mut merged: Values = before
                        .as_deref()
                        .and_then(|t| unseal(&sealer, place, t))
                        .unwrap_or_default();
                    merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
                    let data = sealer.seal(place, &to_json(&merged));
                    if !write(before.as_deref(), &data)? {
                        // The transaction holds the write lock: the row cannot have changed.
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
                            Some("the session row changed inside its transaction".into()),
                        ));
                    }
                    Ok((merged, Arc::from(data)))
                },
                move |r| {
                    if let Some(cache) = &cache {
                        let known = r.map(|(merged, data)| Known {
                            data: Some(data.clone()),
                            opens: true,
                            keys: merged.keys().cloned().collect(),
                        });
                        remember(cache, &o, &p, known, true);
                    }
                },
            )
            .await?;
        Ok(merged)
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
                    remember(cache, &owner, &provider, r.map(|()| gone), true);
                }
            },
        )
        .await
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

    /// Whether this store keeps failed-attempt counters in the database: PostgreSQL, where
    /// several instances share them. SQLite means one process, which counts in memory.
    pub fn shares_counters(&self) -> bool {
        !self.sqlite
    }

    /// Reserves one attempt under `key` if its failures and attempts in flight, in its open
    /// window, are fewer than `limit` (a closed window starts over): `Ok` with the start of the
    /// window it was counted in, or `Err` with the key's (window start, failures) when it had
    /// no room. One statement, so two instances never both take the last attempt.
    pub async fn take_attempt(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Result<i64, (i64, i64)>, StoreError> {
        let t = now();
        let cutoff = t - window_secs(window);
        let q = Query::new(
            "INSERT INTO login_failures (key, window_start, failures, in_flight) \
             VALUES ($1, $2, 0, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN login_failures.window_start > $3 THEN login_failures.failures ELSE 0 END, \
             in_flight = CASE WHEN login_failures.window_start > $3 THEN login_failures.in_flight + 1 ELSE 1 END, \
             window_start = CASE WHEN login_failures.window_start > $3 THEN login_failures.window_start ELSE $2 END \
             WHERE login_failures.window_start <= $3 \
             OR login_failures.failures + login_failures.in_flight < $4 \
             RETURNING window_start",
        )
        .bind(key)
        .bind(t)
        .bind(cutoff)
        .bind(i64::from(limit));
        if let Some(start) = self.rows(q, true, |r| r.int(0)).await?.into_iter().next() {
            return Ok(Ok(start));
        }
        let q = Query::new("SELECT window_start, failures FROM login_failures WHERE key = $1")
            .bind(key);
        let row = self.rows(q, true, |r| Ok((r.int(0)?, r.int(1)?))).await?;
        // Gone meanwhile (swept): full until the next look.
        Ok(Err(row.into_iter().next().unwrap_or((t, 0))))
    }

    /// Settles an attempt `take_attempt` reserved in the window that started at `start`:
    /// counted as a failure (`failed`), or not; `clear` sets the key's failures to zero.
    pub async fn settle_attempt(
        &self,
        key: &str,
        start: i64,
        failed: bool,
        clear: bool,
    ) -> Result<(), StoreError> {
        let failures = match (failed, clear) {
            (_, true) => "0",
            (true, false) => "failures + 1",
            (false, false) => "failures",
        };
        let q = Query::new(format!(
            "UPDATE login_failures SET failures = {failures}, \
             in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END \
             WHERE key = $1 AND window_start = $2"
        ))
        .bind(key)
        .bind(start);
        self.run(q).await.map(drop)
    }

    /// Deletes counts whose window has closed.
    pub async fn sweep_failures(&self, window: Duration) -> Result<(), StoreError> {
        self.run(
            Query::new("DELETE FROM login_failures WHERE window_start <= $1")
                .bind(now() - window_secs(window)),
        )
        .await
        .map(drop)
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

/// Records a session row as read (`overwrite` false: only if none is known) or written (true);
/// `None` forgets it (a write that failed: it may have failed after its commit). Called only
/// inside an operation on SQLite's connection, right after the database changed: the cache
/// changes in the database's order, and a request dropped while its write waited for a lock
/// (the write goes on) cannot leave the cache behind the database.
fn remember(
    cache: &SessionCache,
    owner: &str,
    provider: &str,
    known: Option<Known>,
    overwrite: bool,
) {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
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

fn session_query(owner: &str, provider: &str) -> Query {
    Query::new("SELECT data FROM provider_sessions WHERE owner = $1 AND provider = $2")
        .bind(owner)
        .bind(provider)
}

// Writing a merged session ($3, at $4) for ($1, $2) over the value it replaces ($5, or none)
// and deleting the pending run, all or nothing; the pending run goes only when the session
// was written. SQLite runs two statements in one transaction (`merge_session`).
// PostgreSQL runs one statement, whose parts see the write through `RETURNING`, in one round
// trip.
const SQLITE_CREATE_SESSION: &str = "INSERT INTO provider_sessions (owner, provider, data, \
    updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (owner, provider) DO NOTHING";
const SQLITE_REPLACE_SESSION: &str = "UPDATE provider_sessions SET data = $3, updated_at = $4 \
    WHERE owner = $1 AND provider = $2 AND data = $5";
const DELETE_PENDING: &str = "DELETE FROM pending_runs WHERE owner = $1 AND provider = $2";
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

    #[tokio::test]
    async fn logins_of_one_user_committed_together_each_merge_over_the_one_before() {
        let (dir, _, store) = file_store().await;
        let one = |k: &str, v: &str| Values::from([(k.to_string(), v.to_string())]);
        store
            .complete("alice", "acme", &one("a", "0"))
            .await
            .unwrap();
        let commits = store.commits().get();
        // Four at once on this one-thread runtime: one batch, each prepared over the same
        // cached row; all but the first find it changed and merge again in the transaction.
        let tasks: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|k| {
                let store = store.clone();
                tokio::spawn(async move { store.complete("alice", "acme", &one(k, "1")).await })
            })
            .collect();
        let mut last = Values::new();
        for t in tasks {
            last = t.await.unwrap().unwrap();
        }
        assert_eq!(store.commits().get(), commits + 1, "one transaction");
        let all: Values = ["a", "b", "c", "d"]
            .into_iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect();
        assert_eq!(last, all, "the last write merged over the three before it");
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(all));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
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

    #[tokio::test]
    async fn a_logout_dropped_while_it_waits_for_a_lock_still_reaches_the_cache() {
        let (dir, file, store) = file_store().await;
        let one = Values::from([("a".to_string(), "1".to_string())]);
        store.complete("alice", "acme", &one).await.unwrap();
        assert!(store.has_session("alice", "acme").await.unwrap());
        let (release, holder) = hold_write_lock(file);
        // The request gives up (its client went away) while the logout waits for the lock.
        let logout = store.logout("alice", "acme");
        let given_up = tokio::time::timeout(Duration::from_millis(50), logout).await;
        assert!(given_up.is_err(), "the logout waits for the lock");
        release.send(()).unwrap();
        holder.join().unwrap();
        // The logout goes on without its request; once the database has it, so does the cache.
        for _ in 0..500 {
            if store.session("alice", "acme").await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.session("alice", "acme").await.unwrap(), None);
        assert!(!store.has_session("alice", "acme").await.unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A store on a new file: (its directory, the file, the store).
    async fn file_store() -> (std::path::PathBuf, std::path::PathBuf, Store) {
        let dir = tempfile_dir();
        let file = dir.join("s.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()), Sealer::Plaintext)
            .await
            .unwrap();
        (dir, file, store)
    }

    /// Another process (here: a connection on a thread of its own) holds `file`'s write lock
    /// until told to let go.
    fn hold_write_lock(
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

    #[tokio::test]
    async fn a_failed_operation_is_counted_and_the_next_one_succeeds() {
        let dir = tempfile_dir();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let store = Store::connect(&url, Sealer::Plaintext).await.unwrap();
        let errors = store.errors();
        // A table gone (by hand) fails the operation; put back, the next one succeeds.
        let mut other = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("ALTER TABLE pending_runs RENAME TO pending_runs_away")
            .execute(&mut other)
            .await
            .unwrap();
        assert!(store.discard_pending("alice", "acme").await.is_err());
        assert_eq!(errors.get(), 1);
        sqlx::query("ALTER TABLE pending_runs_away RENAME TO pending_runs")
            .execute(&mut other)
            .await
            .unwrap();
        store.discard_pending("alice", "acme").await.unwrap();
        assert_eq!(store.pending_runs().await.unwrap(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn sqlite_url_parameters_the_server_cannot_honour_are_refused() {
        for (url, says) in [
            ("sqlite://x.db?mode=ro", "mode=ro"),
            ("sqlite://x.db?mode=rwc&immutable=1", "`immutable=1`"),
            ("sqlite::memory:?cache=private", "`cache=private`"),
        ] {
            let e = Store::connect(url, Sealer::Plaintext).await.unwrap_err();
            assert!(e.0.contains(says), "{url}: {e}");
        }
        // mode=rw: the file must exist.
        let dir = tempfile_dir();
        let url = format!("sqlite://{}?mode=rw", dir.join("none.db").display());
        assert!(Store::connect(&url, Sealer::Plaintext).await.is_err());
        assert!(!dir.join("none.db").exists());
        // mode=memory: a database in memory, migrated and served by the same connections.
        let url = format!("sqlite://{}?mode=memory", dir.join("m.db").display());
        let store = Store::connect(&url, Sealer::Plaintext).await.unwrap();
        store.discard_pending("alice", "acme").await.unwrap();
        assert!(!dir.join("m.db").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_parameter_without_an_argument_is_an_error_not_a_null() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a TEXT, b TEXT)").unwrap();
        let q = Query::new("INSERT INTO t VALUES ($2, $1)").bind("one");
        assert!(q.sqlite_exec(&c).is_err());
        // Arguments bind by their number, whatever the order they appear in.
        let q = q.bind("two");
        q.sqlite_exec(&c).unwrap();
        let row: (String, String) = c
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(row, ("two".into(), "one".into()));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("otvi-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

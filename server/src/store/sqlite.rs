//! SQLite's connections: reads on the request's own thread, writes on a thread of their own
//! that commits them in groups, each commit synced to the disk before its writes are answered.
//!
//! **Reads** run where the request runs, on a connection of their own (`Local::read`): in WAL
//! mode a reader never waits for the writer, and this connection is shared only with other
//! reads, each holding it for one query (microseconds). It is opened `query_only`, so nothing
//! on it ever writes or syncs. When another connection holds a lock a read needs (rare in WAL
//! mode: a log being recovered), the read is tried again from tokio's blocking pool, releasing
//! the connection between attempts.
//!
//! **Writes** join a queue (`Local::write`) that one thread, `otvi-sqlite-writer`, owns with
//! the write connection. It takes everything queued, runs it in one transaction and commits
//! it with `synchronous = FULL`: the write-ahead log is synced (fdatasync) before `COMMIT`
//! returns, and only then is each write's caller answered. Writes that arrive while a commit
//! and its sync are under way wait for the next one, and share it: concurrent logins share
//! one transaction and one sync (group commit), however slow the disk. Anything that can wait
//! for the disk or for a lock (the commit's sync, the log restarted after a checkpoint,
//! another process's write lock) waits on that thread, never on a tokio worker: a request
//! waits for its own write by awaiting a channel. A write that fails its batch fails only
//! itself: the others are committed again, each alone.
//!
//! **Checkpoints** run on a third connection and thread (`Local::checkpoints`).
//!
//! A database in memory (`sqlite::memory:`) has one connection for both, shared under a lock:
//! nothing of it reaches a disk.
//!
//! Migrations and `otvi doctor` still use `sqlx` (its migration table and checksums); they run
//! before these connections open.

use super::faults::stamp;
use super::StoreError;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a write waits for another process's write lock before it fails.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts of a read waiting for a lock.
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// How often the checkpoint thread copies the write-ahead log into the database file.
/// Measured with bench/load.sh: every second cost a login about 10 % less CPU than every
/// 200 ms, but its larger checkpoints raised p99 at 16 and 64 connections from 4–15 ms to
/// 35–50 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// SQLite's settings for the write connection: write-ahead logging; every commit synced to
/// the disk before it returns (`FULL`: in WAL mode, the log is synced at each commit), so an
/// answered write survives a power loss; checkpoints left to the checkpoint thread (this
/// connection runs one itself, on the writer thread, only when the log has grown far: that
/// thread is not keeping up); and a log file cut back to 64 MiB after a burst.
const WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA wal_autocheckpoint = 20000; PRAGMA journal_size_limit = 67108864;";

/// The read connection's: it never writes.
const READER_PRAGMAS: &str = "PRAGMA query_only = 1;";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A connection slot: opened on first use, and again after an operation failed on it.
type Slot = Arc<Mutex<Option<Connection>>>;

/// The database's connections: reads on the caller's thread, writes on the writer thread.
#[derive(Debug)]
pub(super) struct Local {
    /// The file, or `sqlx`'s name for a shared in-memory database.
    name: PathBuf,
    in_memory: bool,
    /// Reads' connection (in memory: the writer's).
    reader: Slot,
    writer: Arc<Writer>,
    checkpointing: AtomicBool,
}

/// What the writer thread and the callers of `Local::write` share.
#[derive(Debug)]
struct Writer {
    name: PathBuf,
    in_memory: bool,
    /// Create the file if it is missing (`mode=rwc`).
    create: bool,
    queue: Mutex<Queue>,
    /// The writer thread waits here for writes.
    wake: Condvar,
    conn: Slot,
    /// Transactions of writes committed.
    commits: Counter,
    /// Pending runs stored, kept as the committed writes change them (see `Pending`).
    pending: Pending,
    /// Odd while a batch is under way (from before its `BEGIN` until every write of it has
    /// been settled), even between batches: a read that saw the same even value before and
    /// after it knows that no write committed meanwhile (see `Local::era`).
    era: AtomicU64,
    /// When a commit last wrote something (`faults::stamp`; 0: never): readiness's proof.
    wrote: AtomicU64,
}

impl Local {
    /// `name` as `sqlx`'s options give it; an in-memory database must be open elsewhere (it
    /// lives while a connection holds it: this one, once opened, is never replaced).
    pub(super) fn new(name: PathBuf, in_memory: bool, create: bool) -> Local {
        let writer = Arc::new(Writer {
            name: name.clone(),
            in_memory,
            create,
            queue: Mutex::default(),
            wake: Condvar::new(),
            conn: Slot::default(),
            commits: Counter::default(),
            pending: Pending::default(),
            era: AtomicU64::new(0),
            wrote: AtomicU64::new(0),
        });
        let reader = if in_memory {
            writer.conn.clone()
        } else {
            Slot::default()
        };
        Local {
            name,
            in_memory,
            reader,
            writer,
            checkpointing: AtomicBool::new(false),
        }
    }

    fn open_reader(&self) -> rusqlite::Result<Connection> {
        if self.in_memory {
            return self.writer.open();
        }
        let c = Connection::open_with_flags(
            &self.name,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::ZERO)?;
        c.set_prepared_statement_cache_capacity(32);
        c.execute_batch(READER_PRAGMAS)?;
        Ok(c)
    }

    /// One attempt of the read `op`, SQLite failing at once on a lock held elsewhere. A read
    /// that failed otherwise may have left the connection in any state: it is closed, except
    /// an in-memory database's. A transaction left open by a read that panicked is rolled
    /// back first.
    fn attempt<T>(
        &self,
        op: &mut impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut slot = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let c = match &mut *slot {
            Some(c) => c,
            None => slot.insert(self.open_reader()?),
        };
        let r = if c.is_autocommit() {
            op(c)
        } else {
            c.execute_batch("ROLLBACK").and_then(|()| op(c))
        };
        if r.as_ref().is_err_and(|e| !busy(e)) && !self.in_memory {
            slot.take();
        }
        r
    }

    /// Runs the read `op` (a whole operation; it must not write: the connection is
    /// `query_only`) on this thread, or, when another connection holds a lock it needs, again
    /// from the blocking pool until the lock is free (up to `BUSY_WAIT`).
    pub(super) async fn read<T, F>(self: &Arc<Self>, mut op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        match self.attempt(&mut op) {
            Err(e) if busy(&e) => {}
            r => return Ok(r?),
        }
        let this = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + BUSY_WAIT;
            let mut pause = Duration::from_millis(1);
            loop {
                std::thread::sleep(pause);
                match this.attempt(&mut op) {
                    Err(e) if busy(&e) && Instant::now() < deadline => {}
                    r => return r,
                }
                pause = (pause * 2).min(BUSY_PAUSE_MAX);
            }
        })
        .await;
        match r {
            Ok(r) => Ok(r?),
            Err(e) => Err(StoreError(format!("a store operation did not finish: {e}"))),
        }
    }

    /// Runs `write` (statements, no transaction of its own) on the writer thread, in the
    /// transaction of the next batch, and `then` once its outcome is final: on that thread,
    /// right after the commit and its sync (`Some`: what `write` returned) or the failure
    /// (`None`). `then` runs even if the caller is dropped meanwhile: the write goes on
    /// without it. The caller is answered after `then`.
    pub(super) async fn write<T, W, S>(self: &Arc<Self>, write: W, then: S) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
        S: FnOnce(Option<&T>) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Job {
            write,
            then: Some(then),
            value: None,
            reply: Some(reply),
        });
        if let Err(job) = self.writer.queue(job) {
            job.settle(Err(StoreError(
                "the store's writer thread could not be started".into(),
            )));
        }
        answer.await.unwrap_or_else(|_| Err(unfinished()))
    }

    /// Counts the transactions of writes committed (shared: it goes up as they happen).
    pub(super) fn commits(&self) -> Counter {
        self.writer.commits.clone()
    }

    /// The pending runs stored, as committed writes change them (shared).
    pub(super) fn pending(&self) -> Gauge {
        self.writer.pending.gauge.clone()
    }

    /// Sets the pending runs' count from the table, once: before this process's first write
    /// (later, committed writes keep it).
    pub(super) async fn count_pending(self: &Arc<Self>) -> Result<(), StoreError> {
        if self.writer.pending.counted.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let n = self
            .read(|c| c.query_row("SELECT COUNT(*) FROM pending_runs", [], |r| r.get(0)))
            .await;
        match n {
            Ok(n) => {
                self.writer.pending.gauge.set(n);
                Ok(())
            }
            Err(e) => {
                self.writer.pending.counted.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The batch era (see `Writer::era`): a read that looks at it before it starts and finds
    /// it unchanged and even after it ends saw the database as every settled write left it,
    /// with none committed since.
    pub(super) fn era(&self) -> u64 {
        self.writer.era.load(Ordering::SeqCst)
    }

    /// When a commit last wrote something (`faults::stamp`), if one did.
    pub(super) fn wrote(&self) -> Option<u64> {
        Some(self.writer.wrote.load(Ordering::SeqCst)).filter(|w| *w > 0)
    }

    /// Starts the thread that runs SQLite's checkpoints on a connection of its own, so that
    /// the writer never waits for one (a checkpoint ends with an fsync of the database file).
    /// A passive checkpoint does not block writers. The thread ends with the last `Arc`.
    pub(super) fn checkpoints(self: &Arc<Self>) {
        if self.in_memory || self.checkpointing.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Local> = Arc::downgrade(self);
        let name = self.name.clone();
        let spawned = std::thread::Builder::new()
            .name("otvi-checkpoint".into())
            .spawn(move || {
                let mut conn: Option<Connection> = None;
                loop {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if weak.strong_count() == 0 {
                        return;
                    }
                    if conn.is_none() {
                        conn = Connection::open_with_flags(
                            &name,
                            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .ok();
                    }
                    let Some(c) = conn.as_ref() else { continue };
                    if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, "checkpoint failed; retried on a new connection");
                        conn = None;
                    }
                }
            });
        if spawned.is_err() {
            self.checkpointing.store(false, Ordering::Relaxed);
        }
    }
}

/// The writer thread ends once the writes queued before the last `Local` went are done.
impl Drop for Local {
    fn drop(&mut self) {
        let mut q = self.writer.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        self.writer.wake.notify_one();
    }
}

impl Writer {
    fn open(&self) -> rusqlite::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if self.create || self.in_memory {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        if self.in_memory {
            flags |= OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_MEMORY
                | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        }
        let c = Connection::open_with_flags(&self.name, flags)?;
        // Only this thread waits for another process's lock, and nothing else waits for it
        // but the writes queued behind.
        c.busy_timeout(if self.in_memory {
            Duration::ZERO
        } else {
            BUSY_WAIT
        })?;
        c.set_prepared_statement_cache_capacity(32);
        if !self.in_memory {
            c.execute_batch(WRITER_PRAGMAS)?;
        }
        let changed = self.pending.changed.clone();
        c.update_hook(Some(
            move |action: rusqlite::hooks::Action, _db: &str, table: &str, _row: i64| {
                let by = match action {
                    rusqlite::hooks::Action::SQLITE_INSERT => 1,
                    rusqlite::hooks::Action::SQLITE_DELETE => -1,
                    _ => 0,
                };
                if by != 0 && table == "pending_runs" {
                    changed.fetch_add(by, Ordering::Relaxed);
                }
            },
        ));
        Ok(c)
    }

    /// Queues a write for the writer thread, starting the thread if it is not running; the
    /// write back if it cannot be started.
    fn queue(self: &Arc<Self>, job: Box<dyn Write>) -> Result<(), Box<dyn Write>> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if !q.running {
            let this = self.clone();
            let spawned = std::thread::Builder::new()
                .name("otvi-sqlite-writer".into())
                .spawn(move || this.run());
            if spawned.is_err() {
                return Err(job);
            }
            q.running = true;
        }
        q.writes.push(job);
        if q.idle {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The writer thread: batch after batch until the last `Local` is gone and the queue is
    /// empty.
    fn run(self: Arc<Self>) {
        loop {
            let writes = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if !q.writes.is_empty() {
                        break std::mem::take(&mut q.writes);
                    }
                    if q.closed {
                        q.running = false;
                        return;
                    }
                    q.idle = true;
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.idle = false;
                }
            };
            self.era.fetch_add(1, Ordering::SeqCst);
            let mut batch = Batch {
                writes,
                failed: None,
            };
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&mut batch)));
            if r.is_err() {
                batch.failed = Some("a store write panicked".into());
            }
            // Writes still unsettled (the batch was given up) fail with the reason.
            drop(batch);
            self.era.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Runs one batch on the write connection (opened if need be). A connection on which
    /// something failed other than a lock held elsewhere may be in any state: it is closed,
    /// except an in-memory database's.
    fn commit(&self, batch: &mut Batch) {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let c = match &mut *slot {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => slot.insert(c),
                Err(e) => {
                    batch.failed = Some(e.to_string());
                    return;
                }
            },
        };
        if !c.is_autocommit() {
            let _ = c.execute_batch("ROLLBACK");
        }
        let r = batch.run(c, self);
        if r.is_err_and(|e| !busy(&e)) && !self.in_memory {
            slot.take();
        }
    }

    /// `f` in a transaction of its own (`immediate`); the pending runs it changed are counted
    /// once it is committed, and a commit that changed something is noted for readiness.
    fn transaction(
        &self,
        c: &Connection,
        f: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        self.pending.changed.store(0, Ordering::Relaxed);
        let before = c.total_changes();
        let r = immediate(c, f);
        let changed = self.pending.changed.swap(0, Ordering::Relaxed);
        if r.is_ok() {
            self.commits.inc();
            self.pending.gauge.inc_by(changed);
            if c.total_changes() != before {
                self.wrote.store(stamp(), Ordering::SeqCst);
            }
        }
        r
    }
}

/// The pending runs stored: counted once from the table (`Local::count_pending`), then moved
/// by every committed insert and delete of a row (SQLite's update hook counts them as the
/// transaction runs; its count is added once the transaction is committed). This process is
/// the file's one writer, so the count stays exact without a query.
#[derive(Debug, Default)]
struct Pending {
    gauge: Gauge,
    /// Rows inserted less rows deleted by the transaction under way.
    changed: Arc<AtomicI64>,
    counted: AtomicBool,
}

/// The queue of writes, and the writer thread's state.
#[derive(Default)]
struct Queue {
    writes: Vec<Box<dyn Write>>,
    /// The writer thread is running.
    running: bool,
    /// It waits for writes: a new one wakes it.
    idle: bool,
    /// The last `Local` is gone: the thread ends once the queue is empty.
    closed: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("writes", &self.writes.len())
            .field("running", &self.running)
            .field("idle", &self.idle)
            .field("closed", &self.closed)
            .finish()
    }
}

/// A queued write.
trait Write: Send {
    /// Its statements, in its batch's transaction (or in one of its own: `Batch::run`).
    fn run(&mut self, c: &Connection) -> rusqlite::Result<()>;
    /// Its outcome is final: committed, or failed with nothing of it in the database.
    fn settle(self: Box<Self>, r: Result<(), StoreError>);
}

struct Job<T, W, S> {
    write: W,
    then: Option<S>,
    /// What the last run of `write` returned.
    value: Option<T>,
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, W, S> Write for Job<T, W, S>
where
    T: Send,
    W: FnMut(&Connection) -> rusqlite::Result<T> + Send,
    S: FnOnce(Option<&T>) + Send,
{
    fn run(&mut self, c: &Connection) -> rusqlite::Result<()> {
        self.value = Some((self.write)(c)?);
        Ok(())
    }

    fn settle(mut self: Box<Self>, r: Result<(), StoreError>) {
        let r = r.and_then(|()| self.value.take().ok_or_else(unfinished));
        if let Some(then) = self.then.take() {
            then(r.as_ref().ok());
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(r);
        }
    }
}

/// Writes committed in one transaction.
struct Batch {
    writes: Vec<Box<dyn Write>>,
    /// Why the batch failed, for the writes still waiting when it is given up.
    failed: Option<String>,
}

impl Batch {
    /// All in one transaction. If that fails other than on a lock held by another process
    /// (waited for up to `BUSY_WAIT` already), each write is tried alone, so that one write's
    /// failure (a constraint, a bug) fails only itself.
    fn run(&mut self, c: &Connection, w: &Writer) -> rusqlite::Result<()> {
        let all = w.transaction(c, |c| self.writes.iter_mut().try_for_each(|w| w.run(c)));
        match all {
            Ok(()) => {
                for w in self.writes.drain(..) {
                    w.settle(Ok(()));
                }
                Ok(())
            }
            Err(e) if busy(&e) || self.writes.len() == 1 => {
                self.failed = Some(e.to_string());
                Err(e)
            }
            Err(_) => {
                let mut first = None;
                for mut job in self.writes.drain(..) {
                    match w.transaction(c, |c| job.run(c)) {
                        Ok(()) => job.settle(Ok(())),
                        Err(e) => {
                            job.settle(Err(StoreError(e.to_string())));
                            first.get_or_insert(e);
                        }
                    }
                }
                first.map_or(Ok(()), Err)
            }
        }
    }
}

/// A batch given up: its writes fail with the reason.
impl Drop for Batch {
    fn drop(&mut self) {
        let why = self.failed.take().unwrap_or_else(|| unfinished().0);
        for w in self.writes.drain(..) {
            w.settle(Err(StoreError(why.clone())));
        }
    }
}

fn unfinished() -> StoreError {
    StoreError("a store write did not finish".into())
}

/// Runs `f` in a transaction that takes the write lock at once; it is rolled back if `f` or
/// the commit fails. `BEGIN` and `COMMIT` are statements prepared once, like the others
/// (`rusqlite`'s `Transaction` parses them on every use).
pub(super) fn immediate<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached("BEGIN IMMEDIATE")?.raw_execute()?;
    let r = f(c).and_then(|v| {
        c.prepare_cached("COMMIT")?.raw_execute()?;
        Ok(v)
    });
    if r.is_err() && !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
    r
}

/// What an SQLite URL asks of the store: (in memory, create the file if missing). The server
/// serves one database read-write through two drivers, so of `sqlx`'s parameters only those
/// both honour the same way are accepted.
pub(super) fn url_mode(url: &str) -> Result<(bool, bool), StoreError> {
    let mut in_memory = url.contains(":memory:");
    let mut create = false;
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for (key, value) in query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
    {
        match (key, value) {
            ("mode", "rwc") => create = true,
            ("mode", "rw") => {}
            ("mode", "memory") => in_memory = true,
            ("mode", "ro") => {
                return Err(StoreError(
                    "the SQLite URL says mode=ro: the server writes sessions, so it needs \
                     mode=rwc (the default) or mode=rw"
                        .into(),
                ))
            }
            ("cache", "shared") => {}
            _ => {
                return Err(StoreError(format!(
                    "the SQLite URL's parameter `{key}={value}` is not supported: the server \
                     takes mode=rwc (the default: create the file if missing), mode=rw (the file \
                     must exist) or mode=memory"
                )))
            }
        }
    }
    Ok((in_memory, create))
}

/// Another connection holds a lock the operation needs.
fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// A write that holds the writer thread until let go, so that the writes queued meanwhile
/// reach it together (tests).
#[cfg(test)]
pub(super) struct Held {
    release: std::sync::mpsc::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

#[cfg(test)]
impl Held {
    pub(super) async fn release(self) {
        self.release.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[cfg(test)]
impl Local {
    /// Holds the writer thread inside a batch of one empty write until `Held::release`.
    pub(super) async fn hold(self: &Arc<Self>) -> Held {
        let (inside, entered) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let mut state = Some((inside, released));
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.write(
                move |_| {
                    if let Some((inside, released)) = state.take() {
                        let _ = inside.send(());
                        let _ = released.recv();
                    }
                    Ok(())
                },
                |_| {},
            )
            .await
        });
        entered.await.unwrap();
        Held { release, task }
    }

    /// Writes waiting for the writer thread.
    pub(super) fn queued(&self) -> usize {
        self.writer.queue.lock().unwrap().writes.len()
    }

    /// Waits until the writer thread is between batches with nothing queued.
    pub(super) async fn until_idle(&self) {
        for _ in 0..5000 {
            if self.queued() == 0 && self.era().is_multiple_of(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the writer thread is still busy");
    }

    /// Waits until `n` writes wait for the writer thread.
    pub(super) async fn until_queued(&self, n: usize) {
        for _ in 0..5000 {
            if self.queued() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{} writes queued, not {n}", self.queued());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn a_transaction_that_fails_midway_leaves_nothing_and_none_open() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        let r = immediate(&c, |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            c.execute("INSERT INTO nowhere VALUES (2)", [])
        });
        assert!(r.is_err());
        assert!(c.is_autocommit(), "no transaction is left open");
        assert_eq!(count(&c), 0, "the first insert was rolled back");
        immediate(&c, |c| c.execute("INSERT INTO t VALUES (1)", [])).unwrap();
        assert_eq!(count(&c), 1);
    }

    /// A store file with a table `t (v INTEGER)` and a `pending_runs` table, served by a
    /// `Local`: (its directory, it).
    async fn table() -> (PathBuf, Arc<Local>) {
        let dir = std::env::temp_dir().join(format!("otvi-batch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let local = Arc::new(Local::new(dir.join("b.db"), false, true));
        local
            .write(
                |c| {
                    c.execute_batch(
                        "CREATE TABLE t (v INTEGER); \
                         CREATE TABLE pending_runs (owner TEXT PRIMARY KEY)",
                    )
                },
                |_| {},
            )
            .await
            .unwrap();
        (dir, local)
    }

    /// Spawns one write per entry (an insert of `v`, or of a table that does not exist) while
    /// the writer thread is held, so that they reach it together, and waits for them: what
    /// each returned and what its `then` was told, in order.
    async fn write_all(
        local: &Arc<Local>,
        values: &[Option<i64>],
    ) -> (Vec<Result<usize, StoreError>>, Vec<(i64, Option<usize>)>) {
        let held = local.hold().await;
        let told = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let (l, told, v) = (local.clone(), told.clone(), *v);
            let i = i64::try_from(i).unwrap();
            tasks.push(tokio::spawn(async move {
                l.write(
                    move |c| match v {
                        Some(v) => c.execute("INSERT INTO t VALUES (?1)", [v]),
                        None => c.execute("INSERT INTO nowhere VALUES (1)", []),
                    },
                    move |r| told.lock().unwrap().push((i, r.copied())),
                )
                .await
            }));
            // Queued in order.
            local.until_queued(tasks.len()).await;
        }
        held.release().await;
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let told = told.lock().unwrap().clone();
        (results, told)
    }

    async fn rows(local: &Arc<Local>) -> Vec<i64> {
        local
            .read(|c| {
                let mut st = c.prepare("SELECT v FROM t ORDER BY v")?;
                let v = st.query_map([], |r| r.get(0))?;
                v.collect::<Result<_, _>>()
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_during_a_commit_share_the_next_one() {
        let (dir, local) = table().await;
        let before = local.commits().get();
        let values: Vec<Option<i64>> = (1..=8).map(Some).collect();
        let (results, told) = write_all(&local, &values).await;
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
        assert_eq!(told, (0..8).map(|i| (i, Some(1))).collect::<Vec<_>>());
        assert_eq!(
            local.commits().get() - before,
            2,
            "the held write's commit, then the eight in one"
        );
        assert_eq!(rows(&local).await, (1..=8).collect::<Vec<_>>());
        // One at a time, each is a batch of its own.
        for v in [9, 10] {
            let w = local.write(move |c| c.execute("INSERT INTO t VALUES (?1)", [v]), |_| {});
            w.await.unwrap();
        }
        assert_eq!(local.commits().get() - before, 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_fails_its_batch_fails_only_itself() {
        let (dir, local) = table().await;
        let before = local.commits().get();
        let (results, told) = write_all(&local, &[Some(1), None, Some(3)]).await;
        assert!(matches!(results[0], Ok(1)), "{:?}", results[0]);
        let e = results[1].as_ref().unwrap_err();
        assert!(e.0.contains("nowhere"), "{e}");
        assert!(matches!(results[2], Ok(1)), "{:?}", results[2]);
        assert_eq!(told, vec![(0, Some(1)), (1, None), (2, Some(1))]);
        assert_eq!(
            rows(&local).await,
            vec![1, 3],
            "nothing of the failed write"
        );
        assert_eq!(
            local.commits().get() - before,
            3,
            "the held write's, then the other two, each alone"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_and_their_sync_run_on_the_writer_thread_with_synchronous_full() {
        let (dir, local) = table().await;
        let (thread, synchronous) = local
            .write(
                |c| {
                    let thread = std::thread::current().name().map(str::to_string);
                    let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                    Ok((thread, sync))
                },
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(thread.as_deref(), Some("otvi-sqlite-writer"));
        assert_eq!(synchronous, 2, "FULL: the log is synced at every commit");
        // The read connection cannot write.
        let e = local
            .read(|c| c.execute("INSERT INTO t VALUES (1)", []))
            .await
            .unwrap_err();
        assert!(e.0.contains("readonly") || e.0.contains("read-only"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// This test's runtime has one thread: a commit that takes long (a slow disk's sync, here
    /// a held write) holds neither that thread, nor a read, nor a timer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_that_takes_long_holds_neither_the_caller_s_thread_nor_reads() {
        let (dir, local) = table().await;
        local
            .write(|c| c.execute("INSERT INTO t VALUES (1)", []), |_| {})
            .await
            .unwrap();
        let held = local.hold().await;
        let slow = tokio::spawn({
            let local = local.clone();
            async move {
                local
                    .write(|c| c.execute("INSERT INTO t VALUES (2)", []), |_| {})
                    .await
            }
        });
        local.until_queued(1).await;
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(rows(&local).await, vec![1], "the read goes on: WAL");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            !slow.is_finished(),
            "the write waits for the commit before it"
        );
        held.release().await;
        slow.await.unwrap().unwrap();
        assert_eq!(rows(&local).await, vec![1, 2]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_runs_are_counted_once_then_moved_by_committed_writes_only() {
        let (dir, local) = table().await;
        let run = |sql: &'static str| {
            let local = local.clone();
            async move { local.write(move |c| c.execute_batch(sql), |_| {}).await }
        };
        run("INSERT INTO pending_runs VALUES ('a')").await.unwrap();
        local.count_pending().await.unwrap();
        assert_eq!(local.pending().get(), 1, "counted from the table");
        run("INSERT INTO pending_runs VALUES ('b'); INSERT INTO pending_runs VALUES ('c')")
            .await
            .unwrap();
        assert_eq!(local.pending().get(), 3);
        // Rolled back: not counted.
        run("INSERT INTO pending_runs VALUES ('d'); INSERT INTO nowhere VALUES (1)")
            .await
            .unwrap_err();
        assert_eq!(local.pending().get(), 3);
        // An upsert that replaces a row changes nothing; a delete of none neither.
        run("INSERT INTO pending_runs VALUES ('a') ON CONFLICT (owner) DO UPDATE SET owner = 'a'")
            .await
            .unwrap();
        run("DELETE FROM pending_runs WHERE owner = 'z'")
            .await
            .unwrap();
        assert_eq!(local.pending().get(), 3);
        run("DELETE FROM pending_runs WHERE owner <> 'a'")
            .await
            .unwrap();
        assert_eq!(local.pending().get(), 1);
        // Counted once: a second look does not count again.
        local.count_pending().await.unwrap();
        assert_eq!(local.pending().get(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_commit_that_changed_a_row_counts_as_a_write_for_readiness() {
        let dir = std::env::temp_dir().join(format!("otvi-batch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let local = Arc::new(Local::new(dir.join("b.db"), false, true));
        local.write(|_| Ok(()), |_| {}).await.unwrap();
        assert_eq!(local.wrote(), None, "an empty transaction writes nothing");
        local
            .write(|c| c.execute_batch("CREATE TABLE t (v INTEGER)"), |_| {})
            .await
            .unwrap();
        assert_eq!(local.wrote(), None, "a table made, no row changed");
        local
            .write(|c| c.execute("INSERT INTO t VALUES (1)", []), |_| {})
            .await
            .unwrap();
        assert!(local.wrote().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_caller_went_away_is_committed_before_the_writer_thread_ends() {
        let (dir, local) = table().await;
        let writer = Arc::downgrade(&local.writer);
        let name = local.name.clone();
        let held = local.hold().await;
        // A request that goes away once its write is queued: the write goes on without it.
        let (told, then) = std::sync::mpsc::channel();
        let mut gone = Box::pin(local.write(
            |c| c.execute("INSERT INTO t VALUES (7)", []),
            move |r| told.send(r.copied()).unwrap(),
        ));
        std::future::poll_fn(|cx| {
            assert!(gone.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        drop(gone);
        assert_eq!(local.queued(), 1);
        // The last `Local` goes once the held write is answered.
        drop(local);
        held.release().await;
        let then = tokio::task::spawn_blocking(move || then.recv_timeout(Duration::from_secs(10)));
        assert_eq!(then.await.unwrap().unwrap(), Some(1), "committed");
        for _ in 0..500 {
            if writer.strong_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(writer.strong_count(), 0, "the writer thread ended");
        let c = Connection::open(&name).unwrap();
        let v: i64 = c.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 7);
        drop(c);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

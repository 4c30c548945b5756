//! The SQLite connection that serves requests, called on the request's own thread.
//!
//! `sqlx` runs every SQLite command on a worker thread of its connection, so each command costs
//! a round trip to that thread: a channel, two thread wake-ups and, on one core, two context
//! switches (measured with `bench/load.sh`: about a tenth of a login's CPU). A SQLite write in
//! WAL mode without an fsync per commit takes tens of microseconds, so it runs where the
//! request runs, as a lock held for one attempt of one operation. SQLite never waits for a
//! lock on this connection: when another process holds the file's write lock (the server is
//! the file's only writer; an operator's tool may not be), the operation is tried again from
//! tokio's blocking pool until the lock is free, releasing the connection between attempts,
//! so neither a request thread nor an operation that needs no write lock (a read, in WAL mode)
//! waits for another process.
//!
//! Writes are committed in batches (`Local::write`): a write joins a queue, and one task
//! commits everything queued by then in one transaction, so that when several requests reach
//! their write at once they share one `BEGIN` and one `COMMIT` (the WAL write and SQLite's
//! locks, most of a write's cost). A write that fails its batch fails only itself: the others
//! are committed again, each alone.
//!
//! Migrations and `otvi doctor` still use `sqlx` (its migration table and checksums); they run
//! before this connection opens.

use super::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long an operation waits for another process's write lock before it fails.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts of an operation waiting for a lock.
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(20);

/// How often the checkpoint thread copies the write-ahead log into the database file.
/// Measured with bench/load.sh: every second cost a login about 10 % less CPU than every
/// 200 ms, but its larger checkpoints raised p99 at 16 and 64 connections from 4–15 ms to
/// 35–50 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// SQLite's settings for the connection that serves requests: write-ahead logging, commits
/// that survive a crash of the process (not of the machine) without an fsync each,
/// checkpoints left to the checkpoint thread (its own, with an fsync on the request's thread,
/// only when the log has grown far: that thread is not keeping up), and a log file cut back to
/// 64 MiB after a burst.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA wal_autocheckpoint = 20000; PRAGMA journal_size_limit = 67108864;";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// The connection, opened on first use and again after an operation failed.
#[derive(Debug)]
pub(super) struct Local {
    /// Writes waiting for their batch.
    queue: Mutex<Queue>,
    /// Transactions of writes committed.
    commits: prometheus_client::metrics::counter::Counter,
    /// The file, or `sqlx`'s name for a shared in-memory database.
    name: PathBuf,
    in_memory: bool,
    /// Create the file if it is missing (`mode=rwc`).
    create: bool,
    conn: Mutex<Option<Connection>>,
    checkpointing: AtomicBool,
}

impl Local {
    /// `name` as `sqlx`'s options give it; an in-memory database must be open elsewhere (it
    /// lives while a connection holds it: this one, once opened, is never replaced).
    pub(super) fn new(name: PathBuf, in_memory: bool, create: bool) -> Local {
        Local {
            queue: Mutex::default(),
            commits: Default::default(),
            name,
            in_memory,
            create,
            conn: Mutex::new(None),
            checkpointing: AtomicBool::new(false),
        }
    }

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
        c.busy_timeout(Duration::ZERO)?;
        c.set_prepared_statement_cache_capacity(32);
        if !self.in_memory {
            c.execute_batch(PRAGMAS)?;
        }
        Ok(c)
    }

    /// One attempt of `op`, SQLite failing at once on a lock held elsewhere. An operation that
    /// failed otherwise may have left the connection in any state: it is closed (which rolls
    /// back what it left open), except an in-memory database's. A transaction left open by an
    /// operation that panicked is rolled back first.
    fn attempt<T>(
        &self,
        op: &mut impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let c = match &mut *slot {
            Some(c) => c,
            None => slot.insert(self.open()?),
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

    /// Runs `op` (a whole operation: a transaction it opens ends in it) on this thread, or,
    /// when another process holds a lock it needs, again from the blocking pool until the lock
    /// is free (up to `BUSY_WAIT`).
    pub(super) async fn call<T, F>(self: &Arc<Self>, mut op: F) -> Result<T, StoreError>
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

    /// Runs `write` (statements, no transaction of its own) in the transaction of the next
    /// batch, and `then` once its outcome is final, on the connection right after the commit
    /// (`Some`: what it returned) or the failure (`None`). `then` runs even if the caller is
    /// dropped meanwhile: the write goes on without it.
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
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.writes.push(job);
            !std::mem::replace(&mut q.flushing, true)
        };
        if start {
            // Spawned, the flush runs after the tasks already waiting to run: those that reach
            // their write meanwhile join this batch.
            // The guard is made here: a task dropped before it first runs (its runtime
            // shutting down) still resets the queue.
            tokio::spawn(self.clone().flush(Flushing(Some(self.clone()))));
        }
        answer.await.unwrap_or_else(|_| Err(unfinished()))
    }

    /// Counts the transactions of writes committed (shared: it goes up as they happen).
    pub(super) fn commits(&self) -> prometheus_client::metrics::counter::Counter {
        self.commits.clone()
    }

    /// Commits the queued writes, batch after batch, until none is left.
    async fn flush(self: Arc<Self>, mut guard: Flushing) {
        loop {
            let writes = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.writes.is_empty() {
                    q.flushing = false;
                    guard.0 = None;
                    return;
                }
                std::mem::take(&mut q.writes)
            };
            let mut batch = Batch {
                writes,
                failed: None,
                commits: self.commits.clone(),
            };
            // Each write learns its own outcome (`Batch`); this one is the batch's.
            let _ = self.call(move |c| batch.run(c)).await;
        }
    }

    /// Starts the thread that runs SQLite's checkpoints on a connection of its own, so that
    /// the one that serves requests never waits for one (a checkpoint ends with an fsync). A
    /// passive checkpoint does not block writers. The thread ends with the last `Arc`.
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

/// The queue of writes and whether a task is committing it.
#[derive(Default)]
struct Queue {
    writes: Vec<Box<dyn Write>>,
    flushing: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("writes", &self.writes.len())
            .field("flushing", &self.flushing)
            .finish()
    }
}

/// A flush that ends other than by emptying the queue (it panicked, or its runtime shut down):
/// the next write starts another, and the writes queued meanwhile fail rather than wait for it.
struct Flushing(Option<Arc<Local>>);

impl Drop for Flushing {
    fn drop(&mut self) {
        if let Some(local) = self.0.take() {
            let writes = {
                let mut q = local.queue.lock().unwrap_or_else(|e| e.into_inner());
                q.flushing = false;
                std::mem::take(&mut q.writes)
            };
            for w in writes {
                w.settle(Err(unfinished()));
            }
        }
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
    /// Why the last attempt failed, for the writes still waiting when the batch is given up.
    failed: Option<String>,
    commits: prometheus_client::metrics::counter::Counter,
}

impl Batch {
    /// One attempt: all in one transaction. If that fails other than on a lock held by another
    /// process (which the caller waits out), each write is tried alone, so that one write's
    /// failure (a constraint, a bug) fails only itself.
    fn run(&mut self, c: &mut Connection) -> rusqlite::Result<()> {
        let all = immediate(c, |c| self.writes.iter_mut().try_for_each(|w| w.run(c)));
        match all {
            Ok(()) => {
                self.commits.inc();
                for w in self.writes.drain(..) {
                    w.settle(Ok(()));
                }
                Ok(())
            }
            Err(e) if busy(&e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
            Err(e) if self.writes.len() == 1 => {
                for w in self.writes.drain(..) {
                    w.settle(Err(StoreError(e.to_string())));
                }
                Err(e)
            }
            Err(_) => {
                let mut first = None;
                for mut w in self.writes.drain(..) {
                    match immediate(c, |c| w.run(c)) {
                        Ok(()) => {
                            self.commits.inc();
                            w.settle(Ok(()));
                        }
                        Err(e) => {
                            w.settle(Err(StoreError(e.to_string())));
                            first.get_or_insert(e);
                        }
                    }
                }
                first.map_or(Ok(()), Err)
            }
        }
    }
}

/// A batch given up (the lock stayed held elsewhere): its writes fail with the reason.
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A store file with one table `t (v INTEGER)`, served by a `Local`: (its directory, it).
    async fn table() -> (PathBuf, Arc<Local>) {
        let dir = std::env::temp_dir().join(format!("otvi-batch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let local = Arc::new(Local::new(dir.join("b.db"), false, true));
        local
            .call(|c| c.execute_batch("CREATE TABLE t (v INTEGER)"))
            .await
            .unwrap();
        (dir, local)
    }

    /// Spawns one write per entry (an insert of `v`, or of a table that does not exist) at once
    /// and waits for them: what each returned and what its `then` was told, in order.
    async fn write_all(
        local: &Arc<Local>,
        values: &[Option<i64>],
    ) -> (Vec<Result<usize, StoreError>>, Vec<(i64, Option<usize>)>) {
        let told = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (local, told, v) = (local.clone(), told.clone(), *v);
                let i = i64::try_from(i).unwrap();
                tokio::spawn(async move {
                    local
                        .write(
                            move |c| match v {
                                Some(v) => c.execute("INSERT INTO t VALUES (?1)", [v]),
                                None => c.execute("INSERT INTO nowhere VALUES (1)", []),
                            },
                            move |r| told.lock().unwrap().push((i, r.copied())),
                        )
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let told = told.lock().unwrap().clone();
        (results, told)
    }

    fn rows(local: &Local) -> Vec<i64> {
        let mut slot = local.conn.lock().unwrap();
        let c = match &mut *slot {
            Some(c) => c,
            None => slot.insert(local.open().unwrap()),
        };
        let mut st = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let v = st.query_map([], |r| r.get(0)).unwrap();
        v.collect::<Result<_, _>>().unwrap()
    }

    #[tokio::test]
    async fn writes_that_reach_the_store_together_share_one_commit() {
        let (dir, local) = table().await;
        let values: Vec<Option<i64>> = (1..=8).map(Some).collect();
        let (results, told) = write_all(&local, &values).await;
        assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
        assert_eq!(told, (0..8).map(|i| (i, Some(1))).collect::<Vec<_>>());
        assert_eq!(local.commits().get(), 1, "eight writes, one transaction");
        assert_eq!(rows(&local), (1..=8).collect::<Vec<_>>());
        // One at a time, each is a batch of its own.
        for v in [9, 10] {
            write_all(&local, &[Some(v)]).await.0[0].as_ref().unwrap();
        }
        assert_eq!(local.commits().get(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_write_that_fails_its_batch_fails_only_itself() {
        let (dir, local) = table().await;
        let (results, told) = write_all(&local, &[Some(1), None, Some(3)]).await;
        assert!(matches!(results[0], Ok(1)), "{:?}", results[0]);
        let e = results[1].as_ref().unwrap_err();
        assert!(e.0.contains("nowhere"), "{e}");
        assert!(matches!(results[2], Ok(1)), "{:?}", results[2]);
        assert_eq!(told, vec![(0, Some(1)), (1, None), (2, Some(1))]);
        assert_eq!(rows(&local), vec![1, 3], "nothing of the failed write");
        assert_eq!(local.commits().get(), 2, "the other two, each alone");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_flush_whose_runtime_is_gone_fails_its_writes_and_the_next_write_starts_anew() {
        let gone = tokio::runtime::Runtime::new().unwrap();
        let gone_handle = gone.handle().clone();
        drop(gone);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (dir, local) = table().await;
            // The flush is spawned on a runtime that has shut down: it never runs.
            let mut lost =
                Box::pin(local.write(|c| c.execute("INSERT INTO t VALUES (1)", []), |_| {}));
            let first = {
                // Its first poll queues the write and spawns the flush there.
                let _on = gone_handle.enter();
                std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::future::Future::poll(lost.as_mut(), cx))
                })
                .await
            };
            let lost = match first {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => tokio::time::timeout(Duration::from_secs(5), lost)
                    .await
                    .expect("the write fails, not waits"),
            };
            assert!(lost.is_err(), "{lost:?}");
            let next = local.write(|c| c.execute("INSERT INTO t VALUES (2)", []), |_| {});
            let next = tokio::time::timeout(Duration::from_secs(5), next).await;
            assert!(matches!(next, Ok(Ok(1))), "the next write is committed");
            assert_eq!(rows(&local), vec![2]);
            std::fs::remove_dir_all(dir).unwrap();
        });
    }
}

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
//! Migrations and `otvi doctor` still use `sqlx` (its migration table and checksums); they run
//! before this connection opens.

use super::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
        op: &impl Fn(&mut Connection) -> rusqlite::Result<T>,
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
    pub(super) async fn call<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        match self.attempt(&op) {
            Err(e) if busy(&e) => {}
            r => return Ok(r?),
        }
        let this = self.clone();
        let r = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + BUSY_WAIT;
            let mut pause = Duration::from_millis(1);
            loop {
                std::thread::sleep(pause);
                match this.attempt(&op) {
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
}

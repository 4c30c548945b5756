//! One process per SQLite file: the lock on `FILE.lock` that refuses a second server process,
//! and what every `Store` of this process on the file shares (the session cache, the
//! connections and the writer thread).

use super::cache::SessionCache;
use super::{sqlite, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use std::sync::{Arc, Mutex};

/// A SQLite file this process serves: the lock on `FILE.lock` that refuses a second server
/// process, and the session cache, which is right only while one process writes the file.
/// Every `Store` of this process on the same file shares one.
#[derive(Debug)]
pub(super) struct FileClaim {
    _lock: std::fs::File,
    pub(super) sessions: SessionCache,
    pub(super) local: Arc<sqlite::Local>,
}

static CLAIMS: Mutex<Vec<(std::path::PathBuf, std::sync::Weak<FileClaim>)>> =
    Mutex::new(Vec::new());

pub(super) fn claim_sqlite_file(
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

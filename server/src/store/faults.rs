//! The store's failures: when it last failed, so that the pool does not reuse connections
//! opened before then, and how many times (the `otvi_store_errors` metric).

use super::{Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A moment of this process as a number: milliseconds since the first look at the clock, plus
/// one (so that 0 can mean "never"). Failures and writes are noted in it, and compared.
pub(super) fn stamp() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// When the store last failed: pooled (PostgreSQL) connections opened before then are not
/// reused, so a database that comes back (a disk writable again, a restarted server) is met on
/// fresh connections, not on ones left in an error state. (SQLite's connections are closed by
/// the operation that failed on them.) Also when a PostgreSQL write last succeeded (SQLite's
/// writer notes its own), for readiness.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// `stamp()` of the last failure; 0 when the store never failed.
    last: AtomicU64,
    /// `stamp()` of the last write that changed a row (PostgreSQL); 0: none yet.
    wrote: AtomicU64,
    /// Every failure so far (the `otvi_store_errors` metric).
    count: prometheus_client::metrics::counter::Counter,
}

impl Faults {
    pub(super) fn new() -> Faults {
        Faults::default()
    }

    /// May a connection of this age be used.
    pub(super) fn fresh(&self, age: Duration) -> bool {
        let last = self.last.load(Ordering::SeqCst);
        last == 0
            || stamp().saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)) >= last
    }

    /// Has the store failed since `at` (a `stamp()`), or in the same millisecond.
    pub(super) fn failed_since(&self, at: u64) -> bool {
        self.last.load(Ordering::SeqCst) >= at
    }

    /// A write changed a row (PostgreSQL).
    pub(super) fn wrote(&self) {
        self.wrote.store(stamp(), Ordering::SeqCst);
    }

    /// When a write last changed a row (PostgreSQL), if one did.
    pub(super) fn last_write(&self) -> Option<u64> {
        Some(self.wrote.load(Ordering::SeqCst)).filter(|w| *w > 0)
    }
}

impl Store {
    /// Passes on an operation's result, noting a failure (see `Faults`).
    pub(super) fn failed<T, E: Into<StoreError>>(&self, r: Result<T, E>) -> Result<T, StoreError> {
        r.map_err(|e| self.fault(e))
    }

    /// Notes a failure (see `Faults`) and passes it on.
    pub(super) fn fault(&self, e: impl Into<StoreError>) -> StoreError {
        self.faults.last.store(stamp(), Ordering::SeqCst);
        self.faults.count.inc();
        e.into()
    }

    /// Counts the store's failures (shared: it goes up as they happen).
    pub fn errors(&self) -> prometheus_client::metrics::counter::Counter {
        self.faults.count.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::tempfile_dir;
    use super::*;
    use crate::seal::Sealer;
    use sqlx::{AnyConnection, Connection};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
}

//! Keeping the store in shape: readiness (`ready`), which writes at most one probe at a time
//! and none while other writes prove the same; and the sweep of expired pending runs, at start
//! and every minute (`sweep_in_background`).

use super::query::Query;
use super::{now, Db, Store, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a successful write proves that the database takes writes, with no failure since.
const PROOF: Duration = Duration::from_secs(1);

/// How often expired pending runs are deleted.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// `/readyz`'s write probe: one at a time, its outcome shared by the callers that waited for it.
#[derive(Debug, Default)]
pub(super) struct Probe {
    /// Held while a probe runs.
    running: tokio::sync::Mutex<()>,
    /// Probes finished so far.
    done: AtomicU64,
    /// The last one's outcome.
    ok: AtomicBool,
}

impl Store {
    /// Can the database take a write. A write that changed a row less than a second ago, with
    /// no failure of the store since, says yes without another; otherwise one probe (`ping`)
    /// runs, and callers that arrive while it runs take its outcome. So however often it is
    /// asked, a store that takes writes is written by it at most about once a second, and
    /// while logins write, not at all. A failed probe is not remembered: the next call probes
    /// again (a failing write writes nothing), so a store that is back is ready at once.
    pub async fn ready(&self) -> bool {
        if self.wrote_lately() {
            return true;
        }
        let seen = self.probe.done.load(Ordering::SeqCst);
        let _running = self.probe.running.lock().await;
        if self.probe.done.load(Ordering::SeqCst) != seen {
            return self.probe.ok.load(Ordering::SeqCst);
        }
        if self.wrote_lately() {
            return true;
        }
        let ok = self.ping().await;
        self.probe.ok.store(ok, Ordering::SeqCst);
        self.probe.done.fetch_add(1, Ordering::SeqCst);
        ok
    }

    /// A write changed a row within `PROOF`, and the store has not failed since.
    fn wrote_lately(&self) -> bool {
        let wrote = match &self.db {
            Db::One(local) => local.wrote(),
            Db::Pool(_) => self.faults.last_write(),
        };
        let now = super::faults::stamp();
        wrote.is_some_and(|at| {
            now.saturating_sub(at) < PROOF.as_millis() as u64 && !self.faults.failed_since(at)
        })
    }

    /// Deletes the pending runs that have expired (their sealed inputs and values with them):
    /// how many. On PostgreSQL it also counts those left, for the `otvi_pending_runs` gauge
    /// (on SQLite the writer keeps that count as it commits).
    pub async fn sweep_pending(&self) -> Result<u64, StoreError> {
        let gone = self
            .run(Query::new("DELETE FROM pending_runs WHERE expires_at <= $1").bind(now()))
            .await?;
        if let Db::Pool(_) = &self.db {
            let q = Query::new("SELECT COUNT(*) FROM pending_runs");
            if let Some(n) = self.rows(q, true, |r| r.int(0)).await?.first() {
                self.pending.set(*n);
            }
        }
        Ok(gone)
    }

    /// Sweeps expired pending runs now and every `every`, on a task of the current runtime,
    /// until every other clone of this `Store` is gone. A sweep that fails is logged and
    /// counted in `otvi_store_errors`; the next one tries again.
    pub fn sweep_in_background(&self, every: Duration) {
        let Some(life) = &self.life else { return };
        let alive = Arc::downgrade(life);
        let store = Store {
            life: None,
            ..self.clone()
        };
        tokio::spawn(async move {
            // Looked at every second, so the task ends soon after the store does.
            let tick = every.min(Duration::from_secs(1));
            let mut next = tokio::time::Instant::now();
            loop {
                if alive.strong_count() == 0 {
                    return;
                }
                if tokio::time::Instant::now() >= next {
                    match store.sweep_pending().await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(deleted = n, "expired pending runs swept"),
                        Err(e) => tracing::warn!(error = %e, "expired pending runs not swept"),
                    }
                    next = tokio::time::Instant::now() + every;
                }
                tokio::time::sleep(tick).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::file_store;
    use super::super::PendingRun;
    use super::*;

    async fn probes(store: &Store) -> Option<i64> {
        let q = Query::new("SELECT at FROM store_probe WHERE id = 1");
        store
            .rows(q, true, |r| r.int(0))
            .await
            .unwrap()
            .first()
            .copied()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_writes_one_probe_at_a_time_and_none_while_a_write_proves_it() {
        let (dir, _, store) = file_store().await;
        assert_eq!(probes(&store).await, None);
        // Many at once, on a store nothing has written yet: one probe, shared.
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.ready().await })
            })
            .collect();
        for c in calls {
            assert!(c.await.unwrap());
        }
        assert_eq!(probes(&store).await, Some(0), "one probe: the row inserted");
        // Proven for a second: no more writes.
        for _ in 0..50 {
            assert!(store.ready().await);
        }
        assert_eq!(probes(&store).await, Some(0));
        // A failure of the store since: the next call probes again.
        let _ = store.fault(StoreError("a failure".into()));
        assert!(store.ready().await);
        assert_eq!(probes(&store).await, Some(1));
        // A login's write proves it as well as a probe.
        tokio::time::sleep(PROOF).await;
        let _ = store.fault(StoreError("a failure".into()));
        let one = super::super::Values::from([("a".to_string(), "1".to_string())]);
        store.complete("alice", "acme", &one).await.unwrap();
        assert!(store.ready().await);
        assert_eq!(probes(&store).await, Some(1));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweep_deletes_expired_pending_runs_and_the_gauge_follows() {
        let (dir, _, store) = file_store().await;
        let gauge = store.pending_gauge();
        let run = |expires_at| PendingRun {
            flow_id: "phone_otp".into(),
            expires_at,
            ..PendingRun::default()
        };
        store
            .save_pending("alice", "acme", &run(now() - 5))
            .await
            .unwrap();
        store
            .save_pending("bob", "acme", &run(now() + 600))
            .await
            .unwrap();
        // Saved again: replaced, not counted twice.
        store
            .save_pending("bob", "acme", &run(now() + 600))
            .await
            .unwrap();
        assert_eq!(gauge.get(), 2, "expired runs count until swept");
        assert_eq!(store.pending_runs().await.unwrap(), 1, "one not expired");
        assert_eq!(store.sweep_pending().await.unwrap(), 1);
        assert_eq!(gauge.get(), 1);
        assert!(store.pending("bob", "acme").await.unwrap().is_some());
        store
            .complete("bob", "acme", &Default::default())
            .await
            .unwrap();
        assert_eq!(gauge.get(), 0, "completing the run deleted it");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

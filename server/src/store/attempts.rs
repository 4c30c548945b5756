//! The failed-attempt counters of `limits`, kept in the database when several instances share
//! them (PostgreSQL): an attempt reserved in one statement, settled, and closed windows swept.

use super::query::Query;
use super::{now, Store, StoreError};
use std::time::Duration;

fn window_secs(window: Duration) -> i64 {
    i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2)
}

impl Store {
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
}

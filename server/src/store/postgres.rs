//! The PostgreSQL side of the store: the pool (whose connections opened before the last
//! failure are not reused, see `Faults`), a connection lent to one operation (`Conn`), and the
//! merge of `complete` as one statement.

use super::faults::Faults;
use super::migrations::MIGRATOR;
use super::query::{Cols, Query};
use super::{now, session_place, session_query, Db, Store, StoreError, Values};
use crate::seal::Sealer;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A pooled connection lent to one operation. An operation that does not finish (its request
/// was dropped midway, or a statement failed) may have left a transaction open or a statement
/// unread, so a connection not handed back with `done` is closed, not pooled again.
pub(super) struct Conn {
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
    pub(super) fn done(mut self) {
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

impl Store {
    /// Connects to PostgreSQL: the pool, and the embedded migrations run on one of its
    /// connections.
    pub(super) async fn connect_pool(
        url: &str,
        faults: Arc<Faults>,
        sealer: Sealer,
    ) -> Result<Store, StoreError> {
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
            checks: Default::default(),
            probe: Default::default(),
            pending: Default::default(),
            life: Some(Arc::new(())),
        };
        let mut c = store.pooled().await?;
        let migrated = MIGRATOR.run(&mut *c).await;
        store.failed(migrated)?;
        c.done();
        store.warn_unless_durable().await;
        Ok(store)
    }

    /// A server that acknowledges a commit before its log reaches the disk
    /// (`synchronous_commit = off`, or `fsync = off`) breaks the promise that an answered login
    /// survives a crash of the database's machine: said once, at start.
    async fn warn_unless_durable(&self) {
        let q =
            Query::new("SELECT current_setting('synchronous_commit'), current_setting('fsync')");
        let Ok(rows) = self.rows(q, true, |r| Ok((r.text(0)?, r.text(1)?))).await else {
            return;
        };
        if let Some((commit, fsync)) = rows.first() {
            if commit == "off" || fsync == "off" {
                tracing::warn!(
                    synchronous_commit = %commit,
                    fsync = %fsync,
                    "PostgreSQL acknowledges commits before they reach its disk: a login \
                     answered now may be lost if the database's machine loses power"
                );
            }
        }
    }

    /// A pooled connection for one operation (PostgreSQL).
    pub(super) async fn pooled(&self) -> Result<Conn, StoreError> {
        let Db::Pool(pool) = &self.db else {
            return Err(StoreError("no connection pool: the store is SQLite".into()));
        };
        pool.acquire()
            .await
            .map(|c| Conn { c, done: false })
            .map_err(|e| self.fault(e))
    }

    /// The merge and write of `complete` on PostgreSQL: the read and the write on one pooled
    /// connection, the write naming the value it replaces, again while someone else changes
    /// the row in between.
    pub(super) async fn merge_session(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
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
                self.faults.wrote();
                return Ok(merged);
            }
        }
        Err(StoreError(
            "the session kept changing while it was being written".into(),
        ))
    }
}

// Writing a merged session ($3, at $4) for ($1, $2) over the value it replaces ($5, or none)
// and deleting the pending run, all or nothing (see `cache` for SQLite's two statements):
// PostgreSQL runs one statement, whose parts see the write through `RETURNING`, in one round
// trip.
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

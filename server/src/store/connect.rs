//! A store opened from its URL: on PostgreSQL, a pool (`postgres`); on SQLite, the URL's mode
//! checked, the file claimed for this process (`claim`) or a database kept in memory, and its
//! read connection and writer thread (`sqlite`). The migrations run on either.

use super::claim::claim_sqlite_file;
use super::faults::Faults;
use super::migrations::MIGRATOR;
use super::{sqlite, Db, Store, StoreError};
use crate::seal::Sealer;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::str::FromStr;
use std::sync::Arc;

impl Store {
    /// Connects and runs the embedded migrations. SQLite files are opened in WAL mode, and
    /// only by one process (a second is refused); `sqlite::memory:` works too (one
    /// connection, state lost at exit).
    pub async fn connect(url: &str, sealer: Sealer) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let faults = Arc::new(Faults::new());
        if !url.starts_with("sqlite:") {
            return Store::connect_pool(url, faults, sealer).await;
        }
        let url = if !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let (in_memory, create) = sqlite::url_mode(&url)?;
        // Parsed once: for `sqlite::memory:`, `sqlx` names a new shared in-memory database on
        // every parse, and the migrations and the store's connection must meet in one.
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
        // in-memory database lives on in the store's connection, opened before it closes.
        let mut migrating = SqliteConnection::connect_with(&opts).await?;
        MIGRATOR.run(&mut migrating).await?;
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
            checks: Default::default(),
            probe: Default::default(),
            pending: Default::default(),
            life: Some(Arc::new(())),
        };
        // Both connections opened now, at start: the read connection, and the writer's (an
        // empty transaction, which writes nothing); then the pending runs counted once.
        store.read(|_| Ok(())).await?;
        store.write(|_| Ok(()), |_| {}).await?;
        local.count_pending().await?;
        let _ = migrating.close().await;
        local.checkpoints();
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::tempfile_dir;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
}

//! This build's migrations, embedded once (`connect` runs them), and what a database holds of
//! them (`inspect`, for `otvi doctor`).

use super::StoreError;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection, Row};
use std::str::FromStr;
use std::time::Duration;

/// This build's migrations (`server/migrations`), embedded: what `connect` runs and `inspect`
/// compares a database with.
pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
    let migrator = &MIGRATOR;
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

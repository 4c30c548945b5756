//! One query, bound to either driver (`Query`, its arguments `Arg`, a row's columns `Cols`),
//! and how the store runs it on the driver it has: one statement, or one query's rows.

use super::{Db, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};
use std::borrow::Cow;

/// A value bound to a query's `$N` (N its place in the list, from 1).
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Arg {
        Arg::Int(i)
    }
}

/// A query's SQL and arguments, bound to either driver.
#[derive(Debug, Clone)]
pub(super) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

impl Query {
    pub(super) fn new(sql: impl Into<Cow<'static, str>>) -> Query {
        Query {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub(super) fn bind(mut self, a: impl Into<Arg>) -> Query {
        self.args.push(a.into());
        self
    }

    pub(super) fn sqlx(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// The statement, prepared (once per connection) and bound: each of its parameters, `$N`,
    /// to argument N (an argument it does not name is not bound, as in `SQLITE_CREATE_SESSION`;
    /// a parameter without an argument is an error, not a NULL).
    pub(super) fn sqlite<'c>(
        &self,
        c: &'c rusqlite::Connection,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        let mut st = c.prepare_cached(&self.sql)?;
        for i in 1..=st.parameter_count() {
            let name = st.parameter_name(i).unwrap_or("?");
            let arg = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| self.args.get(n.checked_sub(1)?))
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?;
            match arg {
                Arg::Text(s) => st.raw_bind_parameter(i, s)?,
                Arg::Int(v) => st.raw_bind_parameter(i, v)?,
            }
        }
        Ok(st)
    }

    /// Runs it on SQLite: the rows it changed.
    pub(super) fn sqlite_exec(&self, c: &rusqlite::Connection) -> rusqlite::Result<u64> {
        self.sqlite(c)?.raw_execute().map(|n| n as u64)
    }
}

/// A row as either driver gives it.
pub(super) trait Cols {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn int(&self, i: usize) -> Result<i64, StoreError>;
}

impl Cols for AnyRow {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.try_get(i)?)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }
}

impl Store {
    /// Runs one statement: the rows it changed.
    pub(super) async fn run(&self, q: Query) -> Result<u64, StoreError> {
        match &self.db {
            Db::Pool(_) => {
                let mut c = self.pooled().await?;
                let r = q.sqlx().execute(&mut *c).await.map(|r| r.rows_affected());
                let n = self.failed(r)?;
                c.done();
                if n > 0 {
                    self.faults.wrote();
                }
                Ok(n)
            }
            Db::One(_) => self.write(move |c| q.sqlite_exec(c), |_| {}).await,
        }
    }

    /// Runs one query and reads its rows (`first`: only the first) with `read`. On SQLite, on
    /// the read connection: a query that writes belongs in `run` (or `write`).
    pub(super) async fn rows<T: Send + 'static>(
        &self,
        q: Query,
        first: bool,
        read: fn(&dyn Cols) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match &self.db {
            Db::Pool(_) => {
                let mut c = self.pooled().await?;
                let rows = if first {
                    q.sqlx()
                        .fetch_optional(&mut *c)
                        .await
                        .map(|r| r.into_iter().collect())
                } else {
                    q.sqlx().fetch_all(&mut *c).await
                };
                let rows: Vec<AnyRow> = self.failed(rows)?;
                c.done();
                rows.iter()
                    .map(|r| read(r))
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.fault(e))
            }
            Db::One(_) => {
                let read = self
                    .read(move |c| {
                        let mut st = q.sqlite(c)?;
                        let mut rows = st.raw_query();
                        let mut out = Vec::new();
                        while let Some(r) = rows.next()? {
                            out.push(read(r));
                            if first {
                                break;
                            }
                        }
                        Ok(out)
                    })
                    .await?;
                read.into_iter()
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.fault(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_without_an_argument_is_an_error_not_a_null() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a TEXT, b TEXT)").unwrap();
        let q = Query::new("INSERT INTO t VALUES ($2, $1)").bind("one");
        assert!(q.sqlite_exec(&c).is_err());
        // Arguments bind by their number, whatever the order they appear in.
        let q = q.bind("two");
        q.sqlite_exec(&c).unwrap();
        let row: (String, String) = c
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(row, ("two".into(), "one".into()));
    }
}

//! SQLite's session cache: each (owner, provider)'s session row as last read or written, right
//! only while this process is the file's one writer (see `claim`), changed on the writer thread
//! right after the database; and the merge of `complete` on SQLite, prepared over the cached
//! row and written in the transaction of its batch.

use super::query::Query;
use super::{now, session_place, session_query, to_json, unseal};
use super::{Store, StoreError, Values, DELETE_PENDING};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// (owner, provider)'s session row as the store last read or wrote it, by provider then
/// owner: looked up without building a key.
pub(super) type SessionCache = Arc<Mutex<crate::FastMap<String, crate::FastMap<String, Known>>>>;

/// A session row as known: its sealed value (`None`: no row), whether that opens, and the
/// names (not the values) it holds.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) data: Option<Arc<str>>,
    pub(super) opens: bool,
    pub(super) keys: Arc<[String]>,
}

/// Entries in the session cache before it starts over (a few hundred bytes each).
const SESSION_CACHE_MAX: usize = 100_000;

/// Records a session row as written (`None` forgets it: a write that failed, which may have
/// failed after its commit). Called only by a write's `then`, on the writer thread right after
/// the commit: the cache changes in the database's order, and a request dropped while its
/// write waited (the write goes on) cannot leave the cache behind the database.
pub(super) fn remember(cache: &SessionCache, owner: &str, provider: &str, known: Option<Known>) {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    match known {
        Some(k) => {
            if c.values().map(HashMap::len).sum::<usize>() >= SESSION_CACHE_MAX {
                c.clear();
            }
            c.entry(provider.to_string())
                .or_default()
                .insert(owner.to_string(), k);
        }
        None => {
            if let Some(owners) = c.get_mut(provider) {
                owners.remove(owner);
            }
        }
    }
}

/// Records a session row as a read found it, if none is known and `unchanged` says, under the
/// cache's lock, that no write committed since the read began (see `sqlite::Local::era`): a
/// read runs beside the writer thread, so what it found may already be older than what a
/// write's `then` recorded, or forgot, meanwhile.
pub(super) fn remember_read(
    cache: &SessionCache,
    owner: &str,
    provider: &str,
    known: Known,
    unchanged: impl FnOnce() -> bool,
) {
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if !unchanged() {
        return;
    }
    if c.values().map(HashMap::len).sum::<usize>() >= SESSION_CACHE_MAX {
        c.clear();
    }
    c.entry(provider.to_string())
        .or_default()
        .entry(owner.to_string())
        .or_insert(known);
}

impl Store {
    pub(super) fn cached(&self, owner: &str, provider: &str) -> Option<Known> {
        let c = self.sessions.as_ref()?.lock().ok()?;
        c.get(provider)?.get(owner).cloned()
    }

    /// The merge and write of `complete` on SQLite, in the transaction of the write's batch.
    /// The cached row saves the read, and when the new values replace every name it holds (or
    /// it does not open), the unsealing too: the merge is prepared before the write and written
    /// over the value it names. If that value is gone (an earlier write of the same batch
    /// changed the row), the row is read and merged again inside the transaction, where it
    /// cannot change.
    pub(super) async fn merge_session_sqlite(
        &self,
        owner: &str,
        provider: &str,
        extracted: &Values,
    ) -> Result<Values, StoreError> {
        let place = session_place(owner, provider);
        let prepared = self.cached(owner, provider).map(|k| {
            let mut merged: Values =
                if !k.opens || k.keys.iter().all(|key| extracted.contains_key(key)) {
                    Values::new()
                } else {
                    k.data
                        .as_deref()
                        .and_then(|t| self.unseal(place, t))
                        .unwrap_or_default()
                };
            merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
            let data = self.seal(place, &merged);
            (k.data, merged, data)
        });
        let sealer = self.sealer.clone();
        let cache = self.sessions.clone();
        let extracted = extracted.clone();
        let (owner, provider) = (owner.to_string(), provider.to_string());
        let (o, p) = (owner.clone(), provider.clone());
        let (merged, _) = self
            .write(
                move |c| {
                    let place = session_place(&owner, &provider);
                    let write = |before: Option<&str>, data: &str| -> rusqlite::Result<bool> {
                        let q = Query::new(match before {
                            Some(_) => SQLITE_REPLACE_SESSION,
                            None => SQLITE_CREATE_SESSION,
                        })
                        .bind(owner.as_str())
                        .bind(provider.as_str())
                        .bind(data)
                        .bind(now())
                        .bind(before.unwrap_or(""));
                        let written = q.sqlite_exec(c)? > 0;
                        if written {
                            let gone = Query::new(DELETE_PENDING)
                                .bind(owner.as_str())
                                .bind(provider.as_str());
                            gone.sqlite_exec(c)?;
                        }
                        Ok(written)
                    };
                    if let Some((before, merged, data)) = &prepared {
                        if write(before.as_deref(), data)? {
                            return Ok((merged.clone(), Arc::<str>::from(data.as_str())));
                        }
                    }
                    let mut st = session_query(&owner, &provider).sqlite(c)?;
                    let before: Option<String> = match st.raw_query().next()? {
                        Some(r) => Some(r.get(0)?),
                        None => None,
                    };
                    let mut merged: Values = before
                        .as_deref()
                        .and_then(|t| unseal(&sealer, place, t))
                        .unwrap_or_default();
                    merged.extend(extracted.iter().map(|(k, v)| (k.clone(), v.clone())));
                    let data = sealer.seal(place, &to_json(&merged));
                    if !write(before.as_deref(), &data)? {
                        // The transaction holds the write lock: the row cannot have changed.
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERNAL),
                            Some("the session row changed inside its transaction".into()),
                        ));
                    }
                    Ok((merged, Arc::from(data)))
                },
                move |r| {
                    if let Some(cache) = &cache {
                        let known = r.map(|(merged, data)| Known {
                            data: Some(data.clone()),
                            opens: true,
                            keys: merged.keys().cloned().collect(),
                        });
                        remember(cache, &o, &p, known);
                    }
                },
            )
            .await?;
        Ok(merged)
    }
}

// Writing a merged session ($3, at $4) for ($1, $2) over the value it replaces ($5, or none)
// and deleting the pending run, all or nothing; the pending run goes only when the session
// was written. SQLite runs two statements in one transaction (`merge_session_sqlite`);
// PostgreSQL one (see `postgres`).
const SQLITE_CREATE_SESSION: &str = "INSERT INTO provider_sessions (owner, provider, data, \
    updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (owner, provider) DO NOTHING";
const SQLITE_REPLACE_SESSION: &str = "UPDATE provider_sessions SET data = $3, updated_at = $4 \
    WHERE owner = $1 AND provider = $2 AND data = $5";

#[cfg(test)]
mod tests {
    use super::super::tests::{file_store, hold_write_lock, tempfile_dir};
    use super::*;
    use crate::seal::Sealer;
    use sqlx::{AnyConnection, Connection};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merge_over_a_cached_row_keeps_what_the_new_values_do_not_replace() {
        let dir = tempfile_dir();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let store = Store::connect(&url, Sealer::ephemeral()).await.unwrap();
        let values = |pairs: &[(&str, &str)]| -> Values {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        store
            .complete("alice", "acme", &values(&[("a", "1"), ("b", "1")]))
            .await
            .unwrap();
        // Every name replaced: the row need not be opened.
        let m = store
            .complete("alice", "acme", &values(&[("a", "2"), ("b", "2")]))
            .await
            .unwrap();
        assert_eq!(m, values(&[("a", "2"), ("b", "2")]));
        // Some names kept: they come from the stored row.
        let m = store
            .complete("alice", "acme", &values(&[("c", "3")]))
            .await
            .unwrap();
        assert_eq!(m, values(&[("a", "2"), ("b", "2"), ("c", "3")]));
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(m));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_changed_behind_the_cache_is_read_again_before_the_merge() {
        let dir = tempfile_dir();
        let url = format!("sqlite://{}", dir.join("s.db").display());
        let store = Store::connect(&url, Sealer::Plaintext).await.unwrap();
        let one = |k: &str, v: &str| Values::from([(k.to_string(), v.to_string())]);
        store
            .complete("alice", "acme", &one("a", "1"))
            .await
            .unwrap();
        // Another writer (here: by hand) changes the row the cache holds.
        let mut other = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE provider_sessions SET data = '{\"a\":\"x\",\"z\":\"9\"}'")
            .execute(&mut other)
            .await
            .unwrap();
        // The cached row says every name is replaced; the write finds the row changed, reads
        // it and merges over what it holds now.
        let m = store
            .complete("alice", "acme", &one("a", "2"))
            .await
            .unwrap();
        assert_eq!(
            m,
            Values::from([("a".into(), "2".into()), ("z".into(), "9".into())])
        );
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(m));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_of_one_user_committed_together_each_merge_over_the_one_before() {
        let (dir, _, store) = file_store().await;
        let one = |k: &str, v: &str| Values::from([(k.to_string(), v.to_string())]);
        store
            .complete("alice", "acme", &one("a", "0"))
            .await
            .unwrap();
        let commits = store.commits().get();
        // Four while the writer is held: one batch, each prepared over the same cached row;
        // all but the first find it changed and merge again in the transaction.
        let super::super::Db::One(local) = &store.db else {
            unreachable!()
        };
        let held = local.hold().await;
        let mut tasks = Vec::new();
        for k in ["a", "b", "c", "d"] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.complete("alice", "acme", &one(k, "1")).await
            }));
            local.until_queued(tasks.len()).await;
        }
        held.release().await;
        let mut last = Values::new();
        for t in tasks {
            last = t.await.unwrap().unwrap();
        }
        assert_eq!(
            store.commits().get(),
            commits + 2,
            "the held write's transaction, then one for the four"
        );
        let all: Values = ["a", "b", "c", "d"]
            .into_iter()
            .map(|k| (k.to_string(), "1".to_string()))
            .collect();
        assert_eq!(last, all, "the last write merged over the three before it");
        assert_eq!(store.session("alice", "acme").await.unwrap(), Some(all));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_logout_dropped_while_it_waits_for_a_lock_still_reaches_the_cache() {
        let (dir, file, store) = file_store().await;
        let one = Values::from([("a".to_string(), "1".to_string())]);
        store.complete("alice", "acme", &one).await.unwrap();
        assert!(store.has_session("alice", "acme").await.unwrap());
        let (release, holder) = hold_write_lock(file);
        // The request gives up (its client went away) while the logout waits for the lock.
        let logout = store.logout("alice", "acme");
        let given_up = tokio::time::timeout(Duration::from_millis(50), logout).await;
        assert!(given_up.is_err(), "the logout waits for the lock");
        release.send(()).unwrap();
        holder.join().unwrap();
        // The logout goes on without its request; once the database has it, so does the cache.
        for _ in 0..500 {
            if store.session("alice", "acme").await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.session("alice", "acme").await.unwrap(), None);
        assert!(!store.has_session("alice", "acme").await.unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

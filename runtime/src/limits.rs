//! Brute-force limits: failed login attempts are counted per (user, provider) and per client
//! address, each in a window that opens at its first failure. Once a key has reached its limit,
//! logins under it are refused (HTTP 429) until its window closes; a refused login never reaches
//! the provider. A completed login clears its user's count (not its address's).
//!
//! On PostgreSQL the counts live in the database, so every instance sees the same ones; on
//! SQLite (one process) they live in this process's memory.

use crate::store::{now, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How many failures each key may have in one window; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    pub per_user: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            per_user: 5,
            per_address: 50,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Counted keys above this many are swept of closed windows (memory counts only).
const SWEEP_AT: usize = 100_000;

#[derive(Debug, Default)]
pub struct Limiter {
    pub config: LimitConfig,
    /// Key → (window start, failures), Unix seconds: SQLite's counts.
    memory: Mutex<HashMap<String, (i64, u32)>>,
    /// Failures counted by this process: every `SWEEP_EVERY`th sweeps closed windows.
    recorded: AtomicU64,
}

/// What `Limiter::check` found before an attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// Seconds until the login may be tried again, if a key is at its limit.
    pub retry_after: Option<u64>,
    /// The user has failures in an open window.
    user_failures: bool,
}

/// How often (in failures) counts in the database are swept of closed windows.
const SWEEP_EVERY: u64 = 256;

/// The keys one login request is counted under.
#[derive(Debug, Clone)]
pub struct Keys {
    user: String,
    address: Option<String>,
}

impl Keys {
    pub fn new(user: &str, provider: &str, address: Option<&str>) -> Keys {
        // Lengths first, so no user and provider pair can spell another.
        Keys {
            user: format!("user:{}:{user}:{provider}", user.len()),
            address: address.map(|a| format!("addr:{a}")),
        }
    }

    fn with_limits(&self, c: &LimitConfig) -> Vec<(&str, u32)> {
        std::iter::once((self.user.as_str(), c.per_user))
            .chain(self.address.as_deref().map(|a| (a, c.per_address)))
            .filter(|(_, limit)| *limit > 0)
            .collect()
    }
}

impl Limiter {
    pub fn new(config: LimitConfig) -> Limiter {
        Limiter {
            config,
            ..Limiter::default()
        }
    }

    fn window(&self) -> i64 {
        i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX / 2)
    }

    /// Seconds until the login may be tried again, if a key is at its limit.
    #[cfg(test)]
    async fn blocked(&self, store: &Store, keys: &Keys) -> Result<Option<u64>, StoreError> {
        self.check(store, keys).await.map(|c| c.retry_after)
    }

    /// Seconds until the login may be tried again, if a key is at its limit, and whether the
    /// user has failures to clear on success.
    pub async fn check(&self, store: &Store, keys: &Keys) -> Result<Checked, StoreError> {
        let limited = keys.with_limits(&self.config);
        if limited.is_empty() {
            return Ok(Checked::default());
        }
        let t = now();
        let counts: Vec<Option<(i64, u32)>> = if store.shares_counters() {
            let names: Vec<&str> = limited.iter().map(|(k, _)| *k).collect();
            let rows = store.failures_by_key(&names, self.config.window).await?;
            names
                .iter()
                .map(|k| {
                    rows.iter()
                        .find(|(name, ..)| name == k)
                        .map(|(_, start, n)| (*start, u32::try_from(*n).unwrap_or(u32::MAX)))
                })
                .collect()
        } else {
            let m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            limited.iter().map(|(k, _)| m.get(*k).copied()).collect()
        };
        let user_failures = limited[0].0 == keys.user && counts[0].is_some();
        let retry = limited
            .iter()
            .zip(counts)
            .filter_map(|((_, limit), c)| {
                let (start, n) = c?;
                let ends = start + self.window();
                (n >= *limit && ends > t).then_some(ends - t)
            })
            .max();
        Ok(Checked {
            retry_after: retry.map(|s| u64::try_from(s.max(1)).unwrap_or(1)),
            user_failures,
        })
    }

    /// Counts a rejected attempt under every key.
    pub async fn failed(&self, store: &Store, keys: &Keys) -> Result<(), StoreError> {
        let limited = keys.with_limits(&self.config);
        if store.shares_counters() {
            let names: Vec<&str> = limited.iter().map(|(k, _)| *k).collect();
            store.record_failure(&names, self.config.window).await?;
            if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                store.sweep_failures(self.config.window).await?;
            }
            return Ok(());
        }
        let t = now();
        let window = self.window();
        let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= SWEEP_AT {
            m.retain(|_, (start, _)| *start + window > t);
        }
        for (k, _) in limited {
            let e = m.entry(k.to_string()).or_insert((t, 0));
            if e.0 + window <= t {
                *e = (t, 0);
            }
            e.1 = e.1.saturating_add(1);
        }
        Ok(())
    }

    /// A completed login: its user starts again from zero. `checked` is what `check` said
    /// before the attempt: a user it found no failures for has none to clear in the
    /// database (one a concurrent attempt adds meanwhile stays, counted).
    pub async fn succeeded(
        &self,
        store: &Store,
        keys: &Keys,
        checked: &Checked,
    ) -> Result<(), StoreError> {
        if self.config.per_user == 0 {
            return Ok(());
        }
        if store.shares_counters() {
            if !checked.user_failures {
                return Ok(());
            }
            return store.clear_failures(&keys.user).await;
        }
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&keys.user);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Sealer;

    async fn limited(config: LimitConfig) -> (Limiter, Store) {
        let store = Store::connect("sqlite::memory:", Sealer::ephemeral())
            .await
            .unwrap();
        (Limiter::new(config), store)
    }

    #[tokio::test]
    async fn a_user_is_refused_after_the_limit_and_others_are_not() {
        let (l, s) = limited(LimitConfig {
            per_user: 3,
            per_address: 0,
            window: Duration::from_secs(60),
        })
        .await;
        let alice = Keys::new("alice", "acme", Some("10.0.0.1"));
        for _ in 0..3 {
            assert_eq!(l.blocked(&s, &alice).await.unwrap(), None);
            l.failed(&s, &alice).await.unwrap();
        }
        let retry = l.blocked(&s, &alice).await.unwrap().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let other_provider = Keys::new("alice", "acme2", Some("10.0.0.1"));
        assert_eq!(l.blocked(&s, &other_provider).await.unwrap(), None);
        let bob = Keys::new("bob", "acme", Some("10.0.0.1"));
        assert_eq!(l.blocked(&s, &bob).await.unwrap(), None);
        l.succeeded(&s, &alice, &l.check(&s, &alice).await.unwrap())
            .await
            .unwrap();
        assert_eq!(l.blocked(&s, &alice).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_address_is_refused_across_users() {
        let (l, s) = limited(LimitConfig {
            per_user: 0,
            per_address: 2,
            window: Duration::from_secs(60),
        })
        .await;
        l.failed(&s, &Keys::new("a", "p", Some("10.0.0.1")))
            .await
            .unwrap();
        l.failed(&s, &Keys::new("b", "p", Some("10.0.0.1")))
            .await
            .unwrap();
        assert!(l
            .blocked(&s, &Keys::new("c", "p", Some("10.0.0.1")))
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            l.blocked(&s, &Keys::new("c", "p", Some("10.0.0.2")))
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_closed_window_starts_over() {
        let (l, s) = limited(LimitConfig {
            per_user: 1,
            per_address: 0,
            window: Duration::from_secs(0),
        })
        .await;
        let k = Keys::new("a", "p", None);
        l.failed(&s, &k).await.unwrap();
        assert_eq!(l.blocked(&s, &k).await.unwrap(), None);
    }
}

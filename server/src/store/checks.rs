//! Session checks the provider answered `valid` (`auth.check`), reused for the lifetime its
//! provider file declares, so that `check` stays cheap. In this process's memory: another
//! instance asks the provider itself, which only costs one more request per lifetime.

use super::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many (owner, provider) verdicts are kept; past it, the expired ones go, and if
/// none has expired, all of them (each is only a saved request).
const MAX: usize = 100_000;

#[derive(Debug, Default)]
pub struct CheckCache(Mutex<HashMap<(String, String), Instant>>);

impl Store {
    /// Did the provider say `valid` for this session within its cache lifetime.
    pub fn check_fresh(&self, owner: &str, provider: &str) -> bool {
        let map = self.checks.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(owner.to_string(), provider.to_string()))
            .is_some_and(|until| Instant::now() < *until)
    }

    /// The provider said `valid`: reuse it for `ttl`.
    pub fn check_valid_for(&self, owner: &str, provider: &str, ttl: Duration) {
        let mut map = self.checks.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX {
            map.retain(|_, until| now < *until);
            if map.len() >= MAX {
                map.clear();
            }
        }
        map.insert((owner.to_string(), provider.to_string()), now + ttl);
    }

    /// Forgets a verdict: the session ended.
    pub fn check_forget(&self, owner: &str, provider: &str) {
        let mut map = self.checks.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(owner.to_string(), provider.to_string()));
    }
}

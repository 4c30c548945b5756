//! Brute-force limits: attempts are counted per (user, provider) and per client address, each
//! in a window that opens at its first counted attempt.
//!
//! An attempt is *reserved* before the provider is asked, atomically, under every key: a key
//! has room while its failures plus its attempts in flight are below its limit. A key whose
//! failures have reached the limit refuses the login (HTTP 429, until its window closes), and
//! the provider is never asked. A key filled only by attempts in flight makes the login wait
//! for one of them to settle (as nginx's `limit_req` queues a burst), at most `MAX_WAIT`: so
//! however many requests run at once, at most the limit of failures reach the provider in a
//! window, and many users behind one address who all log in at once are delayed, not refused.
//!
//! When the answer comes, the reservation is *settled*: counted as a failure when the answer was
//! the user's own (a wrong password or code), dropped when it was not (the provider was down,
//! answered 5xx or 429, or something no outcome expected), and on a completed login the
//! user's failures are cleared (not the address's). A reservation that is never settled (the
//! client went away mid-attempt) stays in flight until its window closes.
//!
//! On PostgreSQL the counts live in the database, so every instance sees the same ones (a
//! waiting login looks again every `POLL`); on SQLite (one process) they live in this
//! process's memory. The memory kept for addresses is bounded (`MAX_ADDRESSES`); IPv6
//! addresses count by their /64 prefix, the block one subscriber is given.

use crate::store::{now, Store, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

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

/// The longest a login waits for attempts in flight to make room; then it is refused with
/// `Retry-After: 1`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How often a login waiting on PostgreSQL looks again.
const POLL: Duration = Duration::from_millis(50);

/// Users with counts above this many are swept of closed windows. Users are the subjects of
/// verified tokens, which a client cannot make up.
const SWEEP_USERS_AT: usize = 100_000;

/// At most this many addresses are counted at once, in memory (about 50 bytes each, see
/// `benches/limiter_memory.rs` in this crate). When every one of them has an open window, a new address is
/// not counted (logged once per episode); the per-user limit still holds for it.
pub const MAX_ADDRESSES: usize = 1_000_000;

/// How often (in reservations) counts in the database are swept of closed windows.
const SWEEP_EVERY: u64 = 256;

/// An address as counted: IPv4 as itself (mapped into IPv6), IPv6 by its /64 prefix.
type AddressKey = [u8; 16];

fn address_key(ip: IpAddr) -> AddressKey {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                o
            }
        },
    }
}

/// The keys one login request is counted under.
#[derive(Debug, Clone)]
pub struct Keys {
    user: String,
    address: Option<AddressKey>,
}

impl Keys {
    pub fn new(user: &str, provider: &str, address: Option<IpAddr>) -> Keys {
        // Lengths first, so no user and provider pair can spell another.
        Keys {
            user: format!("user:{}:{user}:{provider}", user.len()),
            address: address.map(address_key),
        }
    }

    /// The address's key in the database.
    fn address_name(&self) -> Option<String> {
        self.address.map(|a| {
            let ip = std::net::Ipv6Addr::from(a);
            match ip.to_ipv4_mapped() {
                Some(v4) => format!("addr:{v4}"),
                None => format!("addr:{ip}/64"),
            }
        })
    }
}

/// One key's count in memory: the start of its window (Unix seconds), its failures, and its
/// attempts in flight.
#[derive(Debug, Clone, Copy)]
struct Count {
    start: u32,
    failures: u16,
    in_flight: u16,
}

/// The counts of one kind of key, in memory.
#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, Count>,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts {
            map: HashMap::new(),
        }
    }
}

/// Whether a key has room for one more attempt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    Yes,
    /// Its failures are at the limit: seconds until its window closes.
    Refused(u64),
    /// Attempts in flight fill it.
    Busy,
}

impl Room {
    /// Both keys' answers: a refusal outweighs waiting, which outweighs room.
    fn and(self, other: Room) -> Room {
        match (self, other) {
            (Room::Refused(a), Room::Refused(b)) => Room::Refused(a.max(b)),
            (r @ Room::Refused(_), _) | (_, r @ Room::Refused(_)) => r,
            (Room::Busy, _) | (_, Room::Busy) => Room::Busy,
            _ => Room::Yes,
        }
    }
}

fn secs(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

fn limit16(limit: u32) -> u16 {
    u16::try_from(limit).unwrap_or(u16::MAX)
}

/// Room under a key whose window started at `start` with `failures` and `in_flight`.
fn room(start: i64, failures: i64, in_flight: i64, limit: u32, t: i64, window: i64) -> Room {
    let ends = start + window;
    if ends <= t {
        Room::Yes
    } else if failures >= i64::from(limit) {
        Room::Refused(u64::try_from(ends - t).unwrap_or(1).max(1))
    } else if failures + in_flight >= i64::from(limit) {
        Room::Busy
    } else {
        Room::Yes
    }
}

impl<K: std::hash::Hash + Eq + Clone> Counts<K> {
    fn room(&self, key: &K, limit: u32, t: i64, window: i64) -> Room {
        let limit = u32::from(limit16(limit));
        match self.map.get(key) {
            Some(c) => room(
                i64::from(c.start),
                i64::from(c.failures),
                i64::from(c.in_flight),
                limit,
                t,
                window,
            ),
            None => Room::Yes,
        }
    }

    /// Puts an attempt in flight under `key` (which has room): the start of its window, or
    /// `None` when the map is at `cap` with open windows only and the key is not counted.
    fn take(&mut self, key: &K, t: i64, window: i64, cap: usize) -> Option<i64> {
        if !self.map.contains_key(key) && self.map.len() >= cap {
            self.map.retain(|_, c| i64::from(c.start) + window > t);
            if self.map.len() >= cap {
                return None;
            }
        }
        let fresh = Count {
            start: secs(t),
            failures: 0,
            in_flight: 0,
        };
        let c = self.map.entry(key.clone()).or_insert(fresh);
        if i64::from(c.start) + window <= t {
            *c = fresh;
        }
        c.in_flight = c.in_flight.saturating_add(1);
        Some(i64::from(c.start))
    }

    /// Settles an attempt taken in the window that started at `start`.
    fn settle(&mut self, key: &K, start: i64, failed: bool, clear: bool) {
        if let Some(c) = self.map.get_mut(key) {
            if i64::from(c.start) == start {
                c.in_flight = c.in_flight.saturating_sub(1);
                if clear {
                    c.failures = 0;
                } else if failed {
                    c.failures = c.failures.saturating_add(1);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Memory {
    users: Counts<String>,
    addresses: Counts<AddressKey>,
}

#[derive(Debug, Default)]
pub struct Limiter {
    pub config: LimitConfig,
    /// SQLite's counts.
    memory: Mutex<Memory>,
    /// Woken whenever an attempt is settled in memory: logins waiting for room look again.
    settled: Notify,
    /// Reservations made against the database: every `SWEEP_EVERY`th sweeps closed windows.
    reserved: AtomicU64,
    /// The address map is full and a new address went uncounted (logged once per episode).
    addresses_full: AtomicBool,
}

/// An attempt counted before the provider is asked, to be settled with its answer.
#[derive(Debug)]
#[must_use = "a reservation is settled with the attempt's answer"]
pub struct Reservation {
    keys: Keys,
    /// The window start of the user's count, if it was taken.
    user: Option<i64>,
    /// The window start of the address's count, if it was taken.
    address: Option<i64>,
}

/// What an attempt turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user's own failure (a wrong password or code): it is counted.
    Rejected,
    /// Not the user's doing, or not a failure: it is not counted.
    NotCounted,
    /// A completed login: not counted, and the user's failures start again from zero.
    Succeeded,
}

impl Limiter {
    pub fn new(config: LimitConfig) -> Limiter {
        Limiter {
            config,
            ..Limiter::default()
        }
    }

    fn window(&self) -> i64 {
        i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX / 4)
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits that apply to `keys`: the user's, and the address's when it is known.
    fn limits(&self, keys: &Keys) -> (Option<u32>, Option<u32>) {
        let c = self.config;
        let user = (c.per_user > 0).then_some(c.per_user);
        let address = keys.address.and(Some(c.per_address)).filter(|l| *l > 0);
        (user, address)
    }

    /// Reserves one attempt under every key, waiting (at most `MAX_WAIT`) while attempts in
    /// flight fill a key; or answers the seconds until the login may be tried again, when a
    /// key's failures are at its limit (nothing is reserved then).
    pub async fn reserve(
        &self,
        store: &Store,
        keys: Keys,
    ) -> Result<Result<Reservation, u64>, StoreError> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        let mut r = Reservation {
            keys,
            user: None,
            address: None,
        };
        loop {
            let room = if store.shares_counters() {
                self.reserve_shared(store, &mut r).await?
            } else {
                // Registered before looking, so a settle between the look and the wait is
                // not missed.
                let settled = self.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                let room = self.reserve_in_memory(&mut r);
                if room == Room::Busy {
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        return Ok(Err(1));
                    }
                    continue;
                }
                room
            };
            match room {
                Room::Yes => return Ok(Ok(r)),
                Room::Refused(secs) => return Ok(Err(secs)),
                Room::Busy if tokio::time::Instant::now() + POLL >= deadline => return Ok(Err(1)),
                Room::Busy => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// One look at the counts in memory: both keys are looked at before either is taken.
    fn reserve_in_memory(&self, r: &mut Reservation) -> Room {
        let (user_limit, address_limit) = self.limits(&r.keys);
        let (t, window) = (now(), self.window());
        let mut m = self.memory();
        let mut verdict = Room::Yes;
        if let Some(limit) = user_limit {
            verdict = verdict.and(m.users.room(&r.keys.user, limit, t, window));
        }
        if let (Some(limit), Some(a)) = (address_limit, r.keys.address.as_ref()) {
            verdict = verdict.and(m.addresses.room(a, limit, t, window));
        }
        if verdict != Room::Yes {
            return verdict;
        }
        if user_limit.is_some() {
            if m.users.map.len() >= SWEEP_USERS_AT {
                m.users.map.retain(|_, c| i64::from(c.start) + window > t);
            }
            r.user = m.users.take(&r.keys.user, t, window, usize::MAX);
        }
        if let (Some(_), Some(a)) = (address_limit, r.keys.address.as_ref()) {
            r.address = m.addresses.take(a, t, window, MAX_ADDRESSES);
            let full = r.address.is_none();
            if self.addresses_full.swap(full, Ordering::Relaxed) != full && full {
                tracing::warn!(
                    max = MAX_ADDRESSES,
                    "the per-address limit counts as many addresses as it may; new addresses \
                     go uncounted until windows close"
                );
            }
        }
        Room::Yes
    }

    /// One try against the database: each key in turn takes an attempt only if it has room
    /// (one statement each, so concurrent instances never both take the last one); when the
    /// second has none, the first is given back.
    async fn reserve_shared(&self, store: &Store, r: &mut Reservation) -> Result<Room, StoreError> {
        let (user_limit, address_limit) = self.limits(&r.keys);
        let window = self.config.window;
        if self.reserved.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            store.sweep_failures(window).await?;
        }
        let (t, secs) = (now(), self.window());
        let full = |(start, failures): (i64, i64), limit: u32| match room(
            start,
            failures,
            i64::from(limit),
            limit,
            t,
            secs,
        ) {
            Room::Yes => Room::Busy,
            other => other,
        };
        if let Some(limit) = user_limit {
            match store.take_attempt(&r.keys.user, limit, window).await? {
                Ok(start) => r.user = Some(start),
                Err(row) => return Ok(full(row, limit)),
            }
        }
        if let (Some(limit), Some(name)) = (address_limit, r.keys.address_name()) {
            match store.take_attempt(&name, limit, window).await? {
                Ok(start) => r.address = Some(start),
                Err(row) => {
                    if let Some(start) = r.user.take() {
                        store
                            .settle_attempt(&r.keys.user, start, false, false)
                            .await?;
                    }
                    return Ok(full(row, limit));
                }
            }
        }
        Ok(Room::Yes)
    }

    /// Settles a reservation with what the attempt turned out to be.
    pub async fn settle(
        &self,
        store: &Store,
        r: Reservation,
        verdict: Verdict,
    ) -> Result<(), StoreError> {
        let failed = verdict == Verdict::Rejected;
        let clear = verdict == Verdict::Succeeded;
        if store.shares_counters() {
            if let Some(start) = r.user {
                store
                    .settle_attempt(&r.keys.user, start, failed, clear)
                    .await?;
            }
            if let (Some(start), Some(name)) = (r.address, r.keys.address_name()) {
                store.settle_attempt(&name, start, failed, false).await?;
            }
            return Ok(());
        }
        {
            let mut m = self.memory();
            if let Some(start) = r.user {
                m.users.settle(&r.keys.user, start, failed, clear);
            }
            if let (Some(start), Some(a)) = (r.address, r.keys.address.as_ref()) {
                m.addresses.settle(a, start, failed, false);
            }
        }
        self.settled.notify_waiters();
        Ok(())
    }

    /// How many addresses are counted in memory now.
    pub fn addresses_counted(&self) -> usize {
        self.memory().addresses.map.len()
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

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    async fn attempt(l: &Limiter, s: &Store, k: &Keys, verdict: Verdict) -> Option<u64> {
        match l.reserve(s, k.clone()).await.unwrap() {
            Ok(r) => {
                l.settle(s, r, verdict).await.unwrap();
                None
            }
            Err(retry) => Some(retry),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_is_refused_after_the_limit_and_others_are_not() {
        let (l, s) = limited(LimitConfig {
            per_user: 3,
            per_address: 0,
            window: Duration::from_secs(60),
        })
        .await;
        let alice = Keys::new("alice", "acme", ip("10.0.0.1"));
        for _ in 0..3 {
            assert_eq!(attempt(&l, &s, &alice, Verdict::Rejected).await, None);
        }
        let retry = attempt(&l, &s, &alice, Verdict::Rejected).await.unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let other_provider = Keys::new("alice", "acme2", ip("10.0.0.1"));
        assert_eq!(
            attempt(&l, &s, &other_provider, Verdict::Rejected).await,
            None
        );
        let bob = Keys::new("bob", "acme", ip("10.0.0.1"));
        assert_eq!(attempt(&l, &s, &bob, Verdict::Rejected).await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_in_flight_make_others_wait_and_failures_refuse_them() {
        let (l, s) = limited(LimitConfig {
            per_user: 3,
            per_address: 0,
            window: Duration::from_secs(60),
        })
        .await;
        let l = std::sync::Arc::new(l);
        let alice = Keys::new("alice", "acme", None);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(l.reserve(&s, alice.clone()).await.unwrap().unwrap());
        }
        // A fourth waits for room, and is let in when an attempt turns out not to count.
        let (l2, s2, k2) = (l.clone(), s.clone(), alice.clone());
        let fourth = tokio::spawn(async move { l2.reserve(&s2, k2).await.unwrap() });
        tokio::task::yield_now().await;
        assert!(!fourth.is_finished());
        let first = held.pop().unwrap();
        l.settle(&s, first, Verdict::NotCounted).await.unwrap();
        held.push(fourth.await.unwrap().unwrap());
        // Another waits; the three in flight fail, and it is refused without being let in.
        let (l2, s2, k2) = (l.clone(), s.clone(), alice.clone());
        let fifth = tokio::spawn(async move { l2.reserve(&s2, k2).await.unwrap() });
        for r in held.drain(..) {
            tokio::task::yield_now().await;
            l.settle(&s, r, Verdict::Rejected).await.unwrap();
        }
        let retry = fifth.await.unwrap().unwrap_err();
        assert!((1..=60).contains(&retry), "{retry}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_completed_login_clears_the_failures_but_not_the_attempts_in_flight() {
        let (l, s) = limited(LimitConfig {
            per_user: 2,
            per_address: 0,
            window: Duration::from_secs(60),
        })
        .await;
        let alice = Keys::new("alice", "acme", None);
        assert_eq!(attempt(&l, &s, &alice, Verdict::Rejected).await, None);
        let in_flight = l.reserve(&s, alice.clone()).await.unwrap().unwrap();
        let l = std::sync::Arc::new(l);
        let (l2, s2, k2) = (l.clone(), s.clone(), alice.clone());
        let waiting = tokio::spawn(async move { l2.reserve(&s2, k2).await.unwrap() });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "full: a failure and an attempt in flight"
        );
        l.settle(&s, in_flight, Verdict::Succeeded).await.unwrap();
        let let_in = waiting.await.unwrap().unwrap();
        l.settle(&s, let_in, Verdict::NotCounted).await.unwrap();
        assert_eq!(attempt(&l, &s, &alice, Verdict::Rejected).await, None);
        assert_eq!(attempt(&l, &s, &alice, Verdict::Rejected).await, None);
        assert!(attempt(&l, &s, &alice, Verdict::Rejected).await.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_address_is_refused_across_users_and_a_refusal_takes_nothing() {
        let (l, s) = limited(LimitConfig {
            per_user: 5,
            per_address: 2,
            window: Duration::from_secs(60),
        })
        .await;
        for u in ["a", "b"] {
            let k = Keys::new(u, "p", ip("10.0.0.1"));
            assert_eq!(attempt(&l, &s, &k, Verdict::Rejected).await, None);
        }
        let c = Keys::new("c", "p", ip("10.0.0.1"));
        for _ in 0..10 {
            assert!(attempt(&l, &s, &c, Verdict::Rejected).await.is_some());
        }
        // `c`'s refusals at the address took nothing from `c`'s own count.
        let elsewhere = |i: u8| Keys::new("c", "p", Some(IpAddr::from([10, 0, 1, i])));
        for i in 0..5 {
            assert_eq!(
                attempt(&l, &s, &elsewhere(i), Verdict::Rejected).await,
                None
            );
        }
        assert!(attempt(&l, &s, &elsewhere(9), Verdict::Rejected)
            .await
            .is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ipv6_addresses_count_by_their_64_prefix() {
        let (l, s) = limited(LimitConfig {
            per_user: 0,
            per_address: 2,
            window: Duration::from_secs(60),
        })
        .await;
        for host in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
            let k = Keys::new("a", "p", ip(host));
            assert_eq!(attempt(&l, &s, &k, Verdict::Rejected).await, None);
        }
        let same_block = Keys::new("a", "p", ip("2001:db8:1:2:abcd::1"));
        assert!(attempt(&l, &s, &same_block, Verdict::Rejected)
            .await
            .is_some());
        let next_block = Keys::new("a", "p", ip("2001:db8:1:3::1"));
        assert_eq!(attempt(&l, &s, &next_block, Verdict::Rejected).await, None);
        // An IPv4 address written as IPv6 is the same address.
        let v4 = Keys::new("a", "p", ip("10.0.0.7"));
        let mapped = Keys::new("a", "p", ip("::ffff:10.0.0.7"));
        assert_eq!(attempt(&l, &s, &v4, Verdict::Rejected).await, None);
        assert_eq!(attempt(&l, &s, &mapped, Verdict::Rejected).await, None);
        assert!(attempt(&l, &s, &v4, Verdict::Rejected).await.is_some());
    }

    #[test]
    fn the_address_map_is_bounded_and_makes_room_from_closed_windows() {
        let mut counts = Counts::<u32>::default();
        for k in 0..10 {
            assert_eq!(counts.take(&k, 100, 60, 10), Some(100));
        }
        assert_eq!(counts.take(&10, 120, 60, 10), None);
        assert_eq!(counts.map.len(), 10);
        // Once the first windows have closed, their room is reused.
        assert_eq!(counts.take(&10, 161, 60, 10), Some(161));
        assert_eq!(counts.map.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_window_starts_over() {
        let (l, s) = limited(LimitConfig {
            per_user: 1,
            per_address: 0,
            window: Duration::from_secs(0),
        })
        .await;
        let k = Keys::new("a", "p", None);
        assert_eq!(attempt(&l, &s, &k, Verdict::Rejected).await, None);
        assert_eq!(attempt(&l, &s, &k, Verdict::Rejected).await, None);
    }
}

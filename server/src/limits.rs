//! Limits on what one client may take: token buckets (the per-author message rate, the new
//! ids a client address may bind per minute), the open streams per client address, and which
//! address a request counts against ([`ClientAddr`]).
//!
//! Ids are picked by clients, so every limit keyed on an id can be renewed with a fresh id;
//! the limits keyed on the client's address are what a client cannot renew at will.

use governor::{Quota, clock::Clock, middleware::NoOpMiddleware, state::keyed::DashMapStateStore};
use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

/// Keys are pruned once there are more than this many: a key whose bucket is full again is
/// the same as none, and forgetting it keeps the map as small as the clients that are busy.
const PRUNE_ABOVE: usize = 4_096;

/// The limiter's clock: tokio's, so that the rate follows the runtime's time (and tests on
/// paused time run the rate forward without waiting). Measured from the limiter's creation.
#[derive(Debug, Clone)]
struct RuntimeClock {
    origin: tokio::time::Instant,
}

impl Clock for RuntimeClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A token bucket per key: a burst of `burst` at once, then `per_sec` on average; a refusal
/// says how long until the next token. `governor`'s keyed GCRA limiter (a concurrent map, no
/// lock shared by all posters) on the runtime's clock, with the map pruned as it grows.
#[derive(Debug)]
pub struct RateLimiter<K: Hash + Eq + Clone> {
    inner: governor::RateLimiter<K, DashMapStateStore<K>, RuntimeClock, NoOpMiddleware<Duration>>,
    /// The limiter's clock, to say how long a refused key waits.
    clock: RuntimeClock,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_sec` below one a day is taken as one a day (the configuration refuses less).
    pub fn new(burst: u32, per_sec: f64) -> Self {
        let period = Duration::try_from_secs_f64(1.0 / per_sec)
            .unwrap_or(Duration::MAX)
            .clamp(Duration::from_nanos(1), SLOWEST_PERIOD);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        // `with_period` refuses only a zero period, which the clamp rules out.
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN));
        let clock = RuntimeClock { origin: tokio::time::Instant::now() };
        Self {
            inner: governor::RateLimiter::dashmap_with_clock(quota.allow_burst(burst), clock.clone()),
            clock,
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.inner.len() > PRUNE_ABOVE {
            self.inner.retain_recent();
        }
        self.inner.check_key(key).map_err(|not_until| {
            // Never zero: a refusal always names a wait.
            not_until.wait_time_from(self.clock.now()).max(Duration::from_nanos(1))
        })
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.inner.len()
    }
}

/// The slowest refill a limiter keeps: one token a day, the least the configuration accepts.
const SLOWEST_PERIOD: Duration = Duration::from_secs(86_400);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counters: a panic elsewhere cannot leave them worse than slightly off.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Open event streams per client address, each held by an [`AddressSlot`] for the life of its
/// stream. Cloning is shallow.
#[derive(Debug, Clone)]
pub struct AddressSlots {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressSlots {
    pub fn new(max: usize) -> Self {
        Self { max, open: Arc::default() }
    }

    /// A slot for one more stream from `addr`, or `None` when it holds `max` already.
    pub fn try_take(&self, addr: IpAddr) -> Option<AddressSlot> {
        let mut open = lock(&self.open);
        let count = open.entry(addr).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { slots: self.clone(), addr })
    }

    #[cfg(test)]
    fn open_from(&self, addr: IpAddr) -> usize {
        lock(&self.open).get(&addr).copied().unwrap_or(0)
    }
}

/// One open stream counted against its client's address; dropping it gives the slot back.
#[derive(Debug)]
pub struct AddressSlot {
    slots: AddressSlots,
    addr: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.slots.open);
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// The peer a connection was accepted from, put on every request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The address a request counts against: its peer's, unless the peer is a trusted proxy, in
/// which case the nearest address in `X-Forwarded-For` that is not itself a trusted proxy
/// (proxies append, so the entries further left are whatever the client chose to claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address a request counts against, or `None` for a request that did not come
    /// through the listener (one a test hands to the router).
    pub fn of_request(
        peer: Option<PeerAddr>,
        headers: &http::HeaderMap,
        trusted_proxies: &[IpAddr],
    ) -> Option<Self> {
        let PeerAddr(peer) = peer?;
        let forwarded_for = headers.get("x-forwarded-for").and_then(|value| value.to_str().ok());
        Some(Self::resolve(peer.ip(), forwarded_for, trusted_proxies))
    }

    pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpAddr]) -> Self {
        let trusted = |addr: &IpAddr| trusted_proxies.contains(addr);
        if !trusted(&peer) {
            return Self(peer);
        }
        let claimed = forwarded_for
            .into_iter()
            .flat_map(|list| list.rsplit(','))
            .map(|entry| entry.trim().parse::<IpAddr>())
            // An entry that is not an address ends the chain: nothing left of it is believed.
            .map_while(Result::ok)
            .find(|addr| !trusted(addr));
        Self(claimed.unwrap_or(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::protocol::UserId;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_the_rate_applies_and_recovers() {
        let limiter = RateLimiter::new(3, 2.0);
        let ann = UserId::parse("ann").unwrap();
        for _ in 0..3 {
            assert!(limiter.check(&ann).is_ok());
        }
        let wait = limiter.check(&ann).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.check(&UserId::parse("bob").unwrap()).is_ok(), "others are unaffected");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(limiter.check(&ann).is_ok());
        assert!(limiter.check(&ann).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_whose_bucket_refilled_are_forgotten_once_there_are_many() {
        let limiter = RateLimiter::new(2, 1.0);
        for n in 0..=PRUNE_ABOVE as u32 {
            assert!(limiter.check(&n).is_ok());
        }
        assert!(limiter.check(&0).is_ok(), "a second token from the burst");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(limiter.check(&u32::MAX).is_ok());
        assert!(limiter.keys() <= 1, "refilled keys are pruned: {} left", limiter.keys());
        assert!(limiter.check(&0).is_ok() && limiter.check(&0).is_ok(), "a forgotten key starts full");
        assert!(limiter.check(&0).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_rate_still_names_a_finite_wait() {
        for per_sec in [0.0, f64::MIN_POSITIVE, 1.0 / 86_400.0] {
            let limiter = RateLimiter::new(1, per_sec);
            let ann = UserId::parse("ann").unwrap();
            assert!(limiter.check(&ann).is_ok());
            let wait = limiter.check(&ann).expect_err("over the burst");
            assert!(wait >= Duration::from_secs(1), "{per_sec}: {wait:?}");
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        let resolve = |peer: &str, header: Option<&str>| ClientAddr::resolve(ip(peer), header, &trusted).0;
        assert_eq!(resolve("203.0.113.9", Some("198.51.100.7")), ip("203.0.113.9"), "an untrusted peer");
        assert_eq!(resolve("10.0.0.1", Some("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(resolve("10.0.0.1", Some("1.1.1.1, 198.51.100.7")), ip("198.51.100.7"), "the nearest");
        assert_eq!(resolve("10.0.0.1", Some("198.51.100.7, 10.0.0.1")), ip("198.51.100.7"), "past proxies");
        assert_eq!(resolve("10.0.0.1", Some("garbage, 198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(resolve("10.0.0.1", Some("garbage")), proxy, "nothing believable");
        assert_eq!(resolve("10.0.0.1", None), proxy);
    }

    #[test]
    fn an_address_holds_at_most_its_slots_and_gets_them_back() {
        let slots = AddressSlots::new(2);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = slots.try_take(a).expect("first");
        let second = slots.try_take(a).expect("second");
        assert!(slots.try_take(a).is_none(), "a third from the same address");
        assert!(slots.try_take(b).is_some(), "another address is not affected");
        drop(first);
        let third = slots.try_take(a).expect("a freed slot is taken again");
        drop((second, third));
        assert_eq!(slots.open_from(a), 0);
    }
}

//! The per-author message rate: a token bucket per user. A burst of `burst` messages is
//! allowed at once, then `per_sec` on average; a refusal says how long until the next token.

use app::protocol::UserId;
use std::{collections::HashMap, sync::Mutex, time::Duration};
use tokio::time::Instant;

/// Buckets are pruned once there are more than this many: a full bucket is the same as none.
const PRUNE_ABOVE: usize = 4_096;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

impl RateLimiter {
    pub fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token for `author`, or says how long until one is available.
    pub fn check(&self, author: &UserId) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        }
        let bucket = buckets.entry(author.clone()).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_sec))
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_sec).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! Token-bucket rate limits by key (a source address, a principal). The table is bounded so
//! that a flood of keys cannot grow it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::MAX_ENTRIES;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by key: `rate` per second, up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `rate` per second with bursts of `burst`; `rate <= 0` disables it.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether the limiter is on at all (callers skip building keys when it is not).
    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes a token for `key`; `Err(wait)` when there is none (retry after `wait`).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ENTRIES && !buckets.contains_key(key) {
            // Forget buckets that have refilled: they hold no information.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_ENTRIES {
                return Err(Duration::from_secs(1));
            }
        }
        // Look up by `&str` first: a key is allocated only the first time it is seen.
        if !buckets.contains_key(key) {
            buckets.insert(key.to_owned(), Bucket { tokens: self.burst, last: now });
        }
        let Some(b) = buckets.get_mut(key) else { return Ok(()) };
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - b.tokens) / self.rate).max(0.001)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_refuse() {
        let l = RateLimiter::new(10.0, 3.0);
        assert!((0..3).all(|_| l.check("a").is_ok()));
        assert!(l.check("a").is_err());
        assert!(l.check("b").is_ok(), "keys are independent");
        assert!(RateLimiter::new(0.0, 1.0).check("x").is_ok());
    }
}

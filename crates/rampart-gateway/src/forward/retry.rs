//! The limits on trying again: a cap on attempts, a time per attempt and a deadline for the
//! whole request, a budget shared by all requests, and a jittered back-off. Time is tokio's,
//! so tests run it virtually.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many times, and for how long, one request may be tried.
#[derive(Clone, Copy, Debug)]
pub struct RetryLimits {
    /// Most attempts (the first included).
    pub max_attempts: u32,
    /// Time one attempt may take before its target counts as hung.
    pub try_timeout: Duration,
    /// Time the request may take in all, retries included.
    pub deadline: Duration,
}

/// Retries draw on a budget: at most `ratio` of recent requests plus a small floor per
/// second, over a sliding window, so an outage does not turn into a retry storm.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor_per_sec: f64,
    window: Duration,
    state: Mutex<BudgetWindow>,
}

#[derive(Debug)]
struct BudgetWindow {
    /// (second, requests, retries), oldest first.
    buckets: std::collections::VecDeque<(u64, u64, u64)>,
    epoch: Instant,
}

impl RetryBudget {
    /// `ratio` retries per request plus `floor_per_sec`, over `window`.
    pub fn new(ratio: f64, floor_per_sec: f64, window: Duration) -> Self {
        RetryBudget {
            ratio,
            floor_per_sec,
            window,
            state: Mutex::new(BudgetWindow { buckets: Default::default(), epoch: Instant::now() }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut (u64, u64, u64), u64, u64) -> R) -> R {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = st.epoch.elapsed().as_secs();
        let window = self.window.as_secs().max(1);
        while st.buckets.front().is_some_and(|b| b.0 + window <= now) {
            st.buckets.pop_front();
        }
        if st.buckets.back().is_none_or(|b| b.0 != now) {
            st.buckets.push_back((now, 0, 0));
        }
        let (req, ret) = st.buckets.iter().fold((0, 0), |(a, b), x| (a + x.1, b + x.2));
        match st.buckets.back_mut() {
            Some(last) => f(last, req, ret),
            None => f(&mut (now, 0, 0), req, ret), // unreachable: a bucket was just pushed
        }
    }

    /// Counts a new request.
    pub fn request(&self) {
        self.with(|b, _, _| b.1 += 1);
    }

    /// Takes a retry from the budget if there is one left.
    pub fn try_retry(&self) -> bool {
        let (ratio, floor, window) = (self.ratio, self.floor_per_sec, self.window.as_secs_f64());
        self.with(|b, requests, retries| {
            let allowed = floor * window + ratio * requests as f64;
            if (retries as f64) < allowed {
                b.2 += 1;
                true
            } else {
                false
            }
        })
    }
}

/// Back-off before a retry: a few milliseconds (5 × 2^attempt, up to 80, ±50 %), jittered so
/// retries do not arrive in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(4);
    Duration::from_millis(base / 2 + fastrand::u64(..=base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_ratio_plus_a_floor() {
        let budget = RetryBudget::new(0.2, 1.0, Duration::from_secs(10));
        for _ in 0..100 {
            budget.request();
        }
        let granted = (0..1000).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 30); // 10 s × 1/s + 0.2 × 100
    }

    /// Virtual time: what was spent comes back once it slides out of the window.
    #[tokio::test(start_paused = true)]
    async fn the_budget_refills_as_its_window_slides() {
        let budget = RetryBudget::new(0.0, 0.5, Duration::from_secs(4));
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 2, "0.5/s over 4 s");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!budget.try_retry(), "still within the window");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 2, "spent 4 s ago: back");
    }

    #[test]
    fn the_backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..10 {
            let base = 5u64 << attempt.min(4);
            for _ in 0..50 {
                let d = backoff(attempt).as_millis() as u64;
                assert!((base / 2..=base / 2 + base).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
        assert!(backoff(30) <= Duration::from_millis(120), "capped");
    }
}

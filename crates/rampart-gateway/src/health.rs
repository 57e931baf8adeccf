//! Health of each node, as the gateway sees it: an EWMA of latency and a count of requests in
//! flight for balancing (power of two choices), consecutive failures for passive ejection
//! with a growing back-off, and active probes that eject hung nodes and bring ejected ones
//! back once they pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Consecutive failures (requests or probes) that eject a node.
pub const EJECT_AFTER: u32 = 3;
/// Consecutive passing probes that bring an ejected node back.
pub const RETURN_AFTER: u32 = 2;
/// First ejection back-off; it doubles with each ejection in a row, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest ejection back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At most this share of a service's nodes is ejected at once (never the last one).
pub const MAX_EJECTED_SHARE: f64 = 0.5;

/// What the gateway knows about one node. Shared by every routing table that lists the node.
#[derive(Debug)]
pub struct NodeHealth {
    /// The node's name.
    pub name: String,
    /// Latency EWMA, microseconds.
    ewma_us: AtomicU64,
    /// Requests in flight to it.
    in_flight: AtomicU64,
    failures: AtomicU32,
    passes: AtomicU32,
    ejected: AtomicBool,
    ejections_in_a_row: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    /// Its certificate was refused since it last answered (reported once, not per attempt).
    refused: AtomicBool,
}

impl NodeHealth {
    fn new(name: &str) -> Self {
        NodeHealth {
            name: name.to_owned(),
            ewma_us: AtomicU64::new(1_000),
            in_flight: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            passes: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejections_in_a_row: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            refused: AtomicBool::new(false),
        }
    }

    /// Whether it is out of the pool now.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Lower is better: latency weighted by load.
    pub fn score(&self) -> u64 {
        self.ewma_us.load(Ordering::Relaxed).max(1) * (self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Marks a request as sent; the guard records its outcome.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { node: self.clone(), started: Instant::now(), done: false }
    }

    fn observe_latency(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let old = self.ewma_us.load(Ordering::Relaxed);
        // alpha = 1/4: recent enough to react within a few requests, smooth enough to ignore one.
        self.ewma_us.store((old * 3 + sample) / 4, Ordering::Relaxed);
    }

    /// A success (a request answered, or a probe passed); returns true when this brought an
    /// ejected node back into the pool.
    pub fn succeeded(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.refused.store(false, Ordering::Relaxed);
        if !self.is_ejected() {
            self.ejections_in_a_row.store(0, Ordering::Relaxed);
            return false;
        }
        let passes = self.passes.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff_over =
            self.ejected_until.lock().map(|u| u.is_none_or(|t| Instant::now() >= t)).unwrap_or(true);
        if passes >= RETURN_AFTER && backoff_over && self.ejected.swap(false, Ordering::AcqRel) {
            self.passes.store(0, Ordering::Relaxed);
            tracing::info!("node {} rejoined the pool after passing probes", self.name);
            return true;
        }
        false
    }

    /// A failure; returns true when it crossed the ejection threshold (the caller decides,
    /// since the cap on ejected share depends on the other nodes).
    pub fn failed(&self) -> bool {
        self.passes.store(0, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        n >= EJECT_AFTER && !self.is_ejected()
    }

    /// Its certificate was refused; returns true the first time since it last answered (the
    /// moment to raise the security event).
    pub fn certificate_refused(&self) -> bool {
        !self.refused.swap(true, Ordering::AcqRel)
    }

    fn eject(&self, why: &str) -> bool {
        if self.ejected.swap(true, Ordering::AcqRel) {
            return false;
        }
        let n = self.ejections_in_a_row.fetch_add(1, Ordering::Relaxed);
        let backoff = BASE_BACKOFF.saturating_mul(1 << n.min(5)).min(MAX_BACKOFF);
        if let Ok(mut until) = self.ejected_until.lock() {
            *until = Some(Instant::now() + backoff);
        }
        self.passes.store(0, Ordering::Relaxed);
        tracing::warn!("node {} ejected for at least {backoff:?}: {why}", self.name);
        true
    }
}

/// A request in flight to a node; records latency and outcome.
#[derive(Debug)]
pub struct InFlight {
    node: Arc<NodeHealth>,
    started: Instant,
    done: bool,
}

impl InFlight {
    /// The node answered; returns true when that brought it back into the pool.
    pub fn ok(mut self) -> bool {
        self.done = true;
        self.node.observe_latency(self.started.elapsed());
        self.node.succeeded()
    }

    /// The node failed; returns whether it should now be ejected.
    pub fn failed(mut self) -> bool {
        self.done = true;
        self.node.observe_latency(self.started.elapsed());
        self.node.failed()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.node.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every node's health, by name; entries outlive routing-table rebuilds.
#[derive(Debug, Default)]
pub struct HealthBoard {
    nodes: Mutex<HashMap<String, Arc<NodeHealth>>>,
}

impl HealthBoard {
    /// The health of `name` (created on first sight).
    pub fn get(&self, name: &str) -> Arc<NodeHealth> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.entry(name.to_owned()).or_insert_with(|| Arc::new(NodeHealth::new(name))).clone()
    }

    /// Ejects `node` unless that would take out more than the allowed share of `peers`
    /// (the nodes of one service, `node` among them); whether it was ejected now.
    pub fn maybe_eject(&self, node: &NodeHealth, peers: &[Arc<NodeHealth>], why: &str) -> bool {
        let ejected = peers.iter().filter(|p| p.is_ejected()).count();
        let allowed =
            ((peers.len() as f64 * MAX_EJECTED_SHARE).floor() as usize).min(peers.len().saturating_sub(1));
        if ejected < allowed {
            node.eject(why)
        } else {
            tracing::warn!("node {} keeps failing ({why}) but ejecting it would exceed the cap", node.name);
            false
        }
    }

    /// Forgets nodes that left the registry.
    pub fn retain(&self, live: &[String]) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.retain(|k, _| live.contains(k));
    }
}

/// Power of two choices: two distinct random candidates, the one with the lower score.
/// Ejected nodes are skipped unless every candidate is ejected.
pub fn pick<T>(candidates: &[T], health: impl Fn(&T) -> &NodeHealth) -> Option<&T> {
    let live: Vec<&T> = candidates.iter().filter(|c| !health(c).is_ejected()).collect();
    let pool: Vec<&T> = if live.is_empty() { candidates.iter().collect() } else { live };
    match pool.len() {
        0 => None,
        1 => Some(pool[0]),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (x, y) = (pool[a], pool[b]);
            Some(if health(x).score() <= health(y).score() { x } else { y })
        }
    }
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

/// Back-off before a retry: a few milliseconds, jittered so retries do not arrive in step.
pub fn retry_backoff(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(4);
    Duration::from_millis(base / 2 + fastrand::u64(..=base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_needs_consecutive_failures_and_respects_the_cap() {
        let board = HealthBoard::default();
        let peers: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| board.get(n)).collect();
        assert!(!peers[0].failed());
        let _ = peers[0].succeeded();
        assert!(!peers[0].failed() && !peers[0].failed());
        assert!(peers[0].failed());
        let _ = board.maybe_eject(&peers[0], &peers, "test");
        assert!(peers[0].is_ejected());
        for _ in 0..3 {
            peers[1].failed();
        }
        let _ = board.maybe_eject(&peers[1], &peers, "test");
        assert!(peers[1].is_ejected());
        // Half of four are out: the third stays in.
        for _ in 0..3 {
            peers[2].failed();
        }
        let _ = board.maybe_eject(&peers[2], &peers, "test");
        assert!(!peers[2].is_ejected());
    }

    #[test]
    fn the_last_node_is_never_ejected() {
        let board = HealthBoard::default();
        let only = vec![board.get("solo")];
        for _ in 0..5 {
            only[0].failed();
        }
        let _ = board.maybe_eject(&only[0], &only, "test");
        assert!(!only[0].is_ejected());
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_skips_ejected() {
        let board = HealthBoard::default();
        let nodes: Vec<_> = ["a", "b"].iter().map(|n| board.get(n)).collect();
        let _busy: Vec<_> = (0..10).map(|_| nodes[0].start()).collect();
        for _ in 0..20 {
            assert_eq!(pick(&nodes, |n| n).unwrap().name, "b");
        }
        let _ = nodes[1].eject("test");
        assert_eq!(pick(&nodes, |n| n).unwrap().name, "a");
    }

    #[test]
    fn budget_allows_a_ratio_plus_a_floor() {
        let budget = RetryBudget::new(0.2, 1.0, Duration::from_secs(10));
        for _ in 0..100 {
            budget.request();
        }
        let granted = (0..1000).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 30); // 10 s × 1/s + 0.2 × 100
    }
}

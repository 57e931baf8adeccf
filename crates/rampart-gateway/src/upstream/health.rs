//! Health of each target, as the gateway sees it: an EWMA of latency and a count of requests in
//! flight for balancing ([`super::balance`]), consecutive failures for passive ejection with a
//! growing back-off, and the probes' verdicts ([`super::probe`]) that eject hung targets and
//! bring ejected ones back once they pass. Time is tokio's, so tests run it virtually.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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
/// A target's latency counts half as much for each such while it has not been measured: with
/// two targets, power of two choices compares both every time, and one slow answer would
/// otherwise keep a target out of use for good (never chosen, never measured again).
pub const LATENCY_HALF_LIFE: Duration = Duration::from_secs(1);
/// The latency a target starts with, and starts again with when it returns to the pool.
const FRESH_LATENCY_US: u64 = 1_000;

/// What the gateway knows about one node. Shared by every routing table that lists the node.
#[derive(Debug)]
pub struct NodeHealth {
    /// The node's name.
    pub name: String,
    /// Latency EWMA, microseconds.
    ewma_us: AtomicU64,
    /// When it was last measured: milliseconds since `born`.
    measured_ms: AtomicU64,
    born: Instant,
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
            ewma_us: AtomicU64::new(FRESH_LATENCY_US),
            measured_ms: AtomicU64::new(0),
            born: Instant::now(),
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

    /// Lower is better: latency (fading while unmeasured) weighted by load.
    pub fn score(&self) -> u64 {
        let idle = self.age_ms().saturating_sub(self.measured_ms.load(Ordering::Relaxed));
        let halvings = (idle / LATENCY_HALF_LIFE.as_millis().max(1) as u64).min(63);
        (self.ewma_us.load(Ordering::Relaxed) >> halvings).max(1)
            * (self.in_flight.load(Ordering::Relaxed) + 1)
    }

    fn age_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
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
        self.ewma_us.store(old.saturating_mul(3).saturating_add(sample) / 4, Ordering::Relaxed);
        self.measured_ms.store(self.age_ms(), Ordering::Relaxed);
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
            // What it measured before (the timeouts that ejected it) says nothing of it now.
            self.ewma_us.store(FRESH_LATENCY_US, Ordering::Relaxed);
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
    pub fn forget(&self, gone: &[String]) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for name in gone {
            nodes.remove(name);
        }
    }
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

    /// With two targets, a target measured slow once (or ejected after timeouts) is chosen
    /// again: its latency fades while unmeasured, and a return to the pool starts it afresh.
    #[tokio::test(start_paused = true)]
    async fn a_target_measured_slow_is_not_shut_out_for_good() {
        let board = HealthBoard::default();
        let (slow, quick) = (board.get("slow"), board.get("quick"));
        let pool = [slow.clone(), quick.clone()];
        let measure = |t: &Arc<NodeHealth>, took: Duration| {
            let sent = t.start();
            let at = Instant::now();
            async move {
                tokio::time::advance(took).await;
                assert!(at.elapsed() >= took);
                sent.ok()
            }
        };
        measure(&slow, Duration::from_secs(2)).await;
        measure(&quick, Duration::from_millis(2)).await;
        let picked = |want: &str| super::super::balance::p2c(&pool, |t| t).is_some_and(|t| t.name == want);
        assert!(picked("quick"));
        // `quick` measured all along at 2 ms: `slow`'s 2 s fades below that within seconds.
        for _ in 0..12 {
            tokio::time::advance(LATENCY_HALF_LIFE).await;
            measure(&quick, Duration::from_millis(2)).await;
        }
        assert!(picked("slow"), "slow {} quick {}", slow.score(), quick.score());

        // Ejected after timeouts, back after probes: measured afresh.
        for _ in 0..EJECT_AFTER {
            let sent = slow.start();
            tokio::time::advance(Duration::from_secs(2)).await;
            sent.failed();
        }
        assert!(board.maybe_eject(&slow, &pool, "test"));
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(!slow.succeeded() && slow.succeeded(), "back after two probes");
        measure(&quick, Duration::from_millis(2)).await;
        assert!(slow.score() <= FRESH_LATENCY_US, "{}", slow.score());
    }

    /// Virtual time: an ejected target comes back only after its back-off and
    /// [`RETURN_AFTER`] passing probes, and the back-off doubles with each ejection in a row.
    #[tokio::test(start_paused = true)]
    async fn an_ejected_target_returns_after_its_backoff_which_doubles() {
        let board = HealthBoard::default();
        let peers = vec![board.get("a"), board.get("b")];
        let a = &peers[0];
        let eject = || {
            for _ in 0..EJECT_AFTER {
                a.failed();
            }
            assert!(board.maybe_eject(a, &peers, "test"));
        };
        eject();
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(!a.succeeded(), "one pass is not enough");
        assert!(a.succeeded(), "the second brings it back");
        assert!(!a.is_ejected());
        // Ejected again before it answered a request: twice the back-off.
        eject();
        assert!(!a.succeeded() && !a.succeeded(), "passes within the back-off do not bring it back");
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(!a.succeeded(), "still within the doubled back-off");
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(a.succeeded());
        // A request answered while in the pool ends the series: back to the base back-off.
        assert!(!a.succeeded());
        eject();
        tokio::time::advance(BASE_BACKOFF).await;
        assert!(!a.succeeded() && a.succeeded());
    }
}

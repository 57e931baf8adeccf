//! Nodes leaving the pool: a clean leave (the node deregistered, and drains) is told apart
//! from a lapsed lease at every gateway, not only at the one the node deregistered through.
//! That gateway writes `left/<node>` (the node's services, on a lease of [`DRAIN_GRACE`])
//! before it revokes the node's lease; a gateway that sees the node go finds the mark, records
//! `node_left` instead of `lease_expired`, and keeps the node's grants while it drains.

use std::time::{Duration, Instant};

use rampart_events::EventKind;

use crate::State;

/// How long a deregistered node may still reach its services' state (its drain).
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Where a clean leave is marked for the other gateways.
pub const LEFT_PREFIX: &str = "left/";

impl State {
    /// The services of `node` if it deregistered within [`DRAIN_GRACE`].
    pub fn draining_services(&self, node: &str) -> Option<Vec<String>> {
        let d = self.draining.lock().ok()?;
        d.get(node).filter(|(_, since)| since.elapsed() < DRAIN_GRACE).map(|(s, _)| s.clone())
    }

    /// Notes that `node` leaves and drains, here.
    pub(crate) fn start_draining(&self, node: &str, services: Vec<String>) {
        if let Ok(mut d) = self.draining.lock() {
            let now = Instant::now();
            d.retain(|_, (_, since)| now.duration_since(*since) < DRAIN_GRACE);
            d.insert(node.to_owned(), (services, now));
        }
    }

    /// `node` registered again: it is not leaving any more, here or at the other gateways.
    pub(crate) async fn stop_draining(&self, node: &str) {
        if let Ok(mut d) = self.draining.lock() {
            d.remove(node);
        }
        let _ = self.store.delete(&format!("{LEFT_PREFIX}{node}")).await;
    }

    /// Tells every gateway that `node` is leaving cleanly (best effort: without the mark, the
    /// others record a lapsed lease).
    pub(crate) async fn announce_leaving(&self, node: &str, services: &[String]) {
        let mark = async {
            let lease = self.store.grant_lease(DRAIN_GRACE).await?;
            let value = serde_json::to_vec(services).unwrap_or_default();
            self.store.put(&format!("{LEFT_PREFIX}{node}"), value, Some(lease)).await
        };
        if let Err(e) = mark.await {
            tracing::warn!("marking node {node} as leaving for the other gateways: {e}");
        }
    }

    /// Records why `node` left the routing table.
    pub(crate) async fn node_removed(&self, node: &str) {
        let mut left = self.draining_services(node).is_some();
        if !left && let Ok(Some(kv)) = self.store.get(&format!("{LEFT_PREFIX}{node}")).await {
            self.start_draining(node, serde_json::from_slice(&kv.value).unwrap_or_default());
            left = true;
        }
        if left {
            self.node_event(EventKind::NodeLeft, node, "deregistered (drained)");
        } else {
            self.node_event(EventKind::LeaseExpired, node, "stopped heartbeating; its lease lapsed");
        }
    }
}

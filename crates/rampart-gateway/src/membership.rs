//! Membership: nodes join under a lease (`nodes/<name>`), renew it, and leave. A clean leave
//! (the node deregistered, and drains) is told apart from a lapsed lease at every gateway,
//! not only at the one the node deregistered through.
//! That gateway writes `left/<node>` (the node's services, on a lease of [`DRAIN_GRACE`])
//! before it revokes the node's lease; a gateway that sees the node go finds the mark, records
//! `node_left` instead of `lease_expired`, and keeps the node's grants while it drains.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rampart_events::EventKind;
use rampart_store::{LeaseId, StoreError};

use crate::State;
use crate::upstream::nodes::{NODES_PREFIX, NodeRecord};

/// How long a deregistered node may still reach its services' state (its drain).
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Where a clean leave is marked for the other gateways.
pub const LEFT_PREFIX: &str = "left/";

impl State {
    /// The registration of `node`, if it holds one.
    pub async fn node_record(&self, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        let kv = self.store.get(&format!("{NODES_PREFIX}{node}")).await?;
        Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// Registers `node` at `addr` hosting `services` under a new lease (a lease it held
    /// before is revoked: a restart replaces its registration); the lease.
    pub(crate) async fn join(
        &self,
        node: &str,
        (addr, public): (SocketAddr, Option<SocketAddr>),
        (services, timeouts_ms): (Vec<String>, std::collections::BTreeMap<String, u64>),
    ) -> Result<LeaseId, StoreError> {
        self.stop_draining(node).await; // back (a restart): not leaving any more
        let key = format!("{NODES_PREFIX}{node}");
        let old = self.node_record(node).await.ok().flatten();
        let lease = self.store.grant_lease(Duration::from_millis(self.config.lease_ttl_ms)).await?;
        let record =
            NodeRecord { name: node.to_owned(), addr, services, timeouts_ms, public, lease: lease.0 };
        self.store.put(&key, serde_json::to_vec(&record).unwrap_or_default(), Some(lease)).await?;
        if let Some(old) = old.filter(|o| o.lease != lease.0) {
            let _ = self.store.revoke_lease(LeaseId(old.lease)).await; // holds nothing any more
        }
        tracing::info!("node {node} registered at {addr}");
        Ok(lease)
    }

    /// Renews the lease of `node`: its time to live, or `None` when it has lapsed (the node
    /// must register again).
    pub(crate) async fn renew(&self, node: &str) -> Result<Option<Duration>, StoreError> {
        let Some(rec) = self.node_record(node).await? else { return Ok(None) };
        match self.store.keep_alive(LeaseId(rec.lease)).await {
            Ok(ttl) => Ok(Some(ttl)),
            Err(StoreError::LeaseNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `node` leaves: it drains here, the other gateways are told, its lease is revoked.
    pub(crate) async fn leave(&self, node: &str) {
        if let Ok(Some(rec)) = self.node_record(node).await {
            self.start_draining(node, rec.services.clone());
            self.announce_leaving(node, &rec.services).await;
            let _ = self.store.revoke_lease(LeaseId(rec.lease)).await;
            tracing::info!("node {node} deregistered");
        }
    }

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

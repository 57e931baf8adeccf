//! The routing table: which nodes host which service, rebuilt from the registry's `nodes/`
//! whenever it changes and swapped atomically, so routing never waits on a lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_store::Store;

use crate::health::{self, HealthBoard, NodeHealth};
use serde::{Deserialize, Serialize};

/// Where nodes register.
pub const NODES_PREFIX: &str = "nodes/";

/// A registered node, as stored at `nodes/<name>` (attached to its lease).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name (from its certificate).
    pub name: String,
    /// Its internal listener.
    pub addr: SocketAddr,
    /// The services it hosts.
    pub services: Vec<String>,
    /// Its lease.
    pub lease: i64,
}

/// One place a service can be reached.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The node's name.
    pub node: String,
    /// Its address.
    pub addr: SocketAddr,
    /// What the gateway knows of its health and load.
    pub health: Arc<NodeHealth>,
}

/// Service name → its endpoints.
#[derive(Debug, Default)]
pub struct Routes {
    services: HashMap<String, Vec<Endpoint>>,
    /// Every live node.
    pub nodes: Vec<NodeRecord>,
}

impl Routes {
    /// The table for `nodes`; services of `previous` that no node offers now stay known, with
    /// no endpoint (so callers get 503 "no live replica", not 404 "unknown service").
    fn build(nodes: Vec<NodeRecord>, previous: &Routes, board: &HealthBoard) -> Self {
        let mut services: HashMap<String, Vec<Endpoint>> =
            previous.services.keys().map(|k| (k.clone(), Vec::new())).collect();
        for n in &nodes {
            let health = board.get(&n.name);
            for s in &n.services {
                services.entry(s.clone()).or_default().push(Endpoint {
                    node: n.name.clone(),
                    addr: n.addr,
                    health: health.clone(),
                });
            }
        }
        board.retain(&nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>());
        Routes { services, nodes }
    }

    /// The health of every node that shares a service with `node` (itself included).
    pub fn peers_of(&self, node: &str) -> Vec<Arc<NodeHealth>> {
        let mut out: Vec<Arc<NodeHealth>> = Vec::new();
        for eps in self.services.values().filter(|eps| eps.iter().any(|e| e.node == node)) {
            for e in eps {
                if !out.iter().any(|h| h.name == e.node) {
                    out.push(e.health.clone());
                }
            }
        }
        out
    }

    /// The endpoints of a service.
    pub fn endpoints(&self, service: &str) -> &[Endpoint] {
        self.services.get(service).map_or(&[], Vec::as_slice)
    }

    /// Whether any node has ever offered the service (it may have no live node now).
    pub fn knows(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// An endpoint of a service by power of two choices, avoiding nodes in `tried`.
    pub fn pick(&self, service: &str, tried: &[String]) -> Option<&Endpoint> {
        let eps = self.services.get(service)?;
        let fresh: Vec<Endpoint> = eps.iter().filter(|e| !tried.contains(&e.node)).cloned().collect();
        let chosen = health::pick(&fresh, |e| &e.health)?;
        eps.iter().find(|e| e.node == chosen.node)
    }
}

/// Reads every live node from the registry.
pub async fn load(store: &dyn Store) -> Result<Vec<NodeRecord>, rampart_store::StoreError> {
    let kvs = store.range(NODES_PREFIX).await?;
    Ok(kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// Keeps `table` (and `book`, the addresses the client to nodes accepts each node at) equal to
/// the registry's nodes: rebuilds them on every change under `nodes/`.
/// `on_removed` hears of every node that left the table. While the registry cannot be read
/// (etcd without quorum), the last table stays: routing goes on to the nodes known healthy,
/// and the probes keep ejecting the ones that fail.
pub async fn follow(
    store: Arc<dyn Store>,
    (table, book): (Arc<ArcSwap<Routes>>, rampart_net::tls::AddressBook),
    board: Arc<HealthBoard>,
    on_removed: Arc<dyn Fn(&str) + Send + Sync>,
) {
    loop {
        let mut watch = match store.watch(NODES_PREFIX, None).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("watching nodes: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let rebuild = async || {
            let nodes = match load(store.as_ref()).await {
                Ok(nodes) => nodes,
                Err(e) => {
                    tracing::warn!("reading nodes (keeping the last view): {e}");
                    return false;
                }
            };
            let previous = table.load_full();
            let next = Routes::build(nodes, &previous, &board);
            for gone in previous.nodes.iter().filter(|p| !next.nodes.iter().any(|n| n.name == p.name)) {
                on_removed(&gone.name);
            }
            // The book first: an endpoint picked from the new table is in it.
            book.replace(next.nodes.iter().map(|n| (n.addr.ip(), n.name.clone())));
            table.store(Arc::new(next));
            true
        };
        if !rebuild().await {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        while watch.next().await.is_ok() {
            if !rebuild().await {
                break;
            }
        }
    }
}

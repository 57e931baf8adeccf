//! The routing table: which nodes host which service, rebuilt from the registry's `nodes/`
//! whenever it changes and swapped atomically, so routing never waits on a lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_store::Store;
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
}

/// Service name → its endpoints, plus a round-robin cursor per service.
#[derive(Debug, Default)]
pub struct Routes {
    services: HashMap<String, (Vec<Endpoint>, AtomicUsize)>,
    /// Every live node.
    pub nodes: Vec<NodeRecord>,
}

impl Routes {
    /// The table for `nodes`; services of `previous` that no node offers now stay known, with
    /// no endpoint (so callers get 503 "no live replica", not 404 "unknown service").
    fn build(nodes: Vec<NodeRecord>, previous: &Routes) -> Self {
        let mut services: HashMap<String, (Vec<Endpoint>, AtomicUsize)> =
            previous.services.keys().map(|k| (k.clone(), (Vec::new(), AtomicUsize::new(0)))).collect();
        for n in &nodes {
            for s in &n.services {
                services
                    .entry(s.clone())
                    .or_insert_with(|| (Vec::new(), AtomicUsize::new(0)))
                    .0
                    .push(Endpoint { node: n.name.clone(), addr: n.addr });
            }
        }
        Routes { services, nodes }
    }

    /// Whether any node has ever offered the service (it may have no live node now).
    pub fn knows(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// The next endpoint of a service, round robin; `None` if none is live.
    pub fn pick(&self, service: &str) -> Option<&Endpoint> {
        let (eps, cursor) = self.services.get(service)?;
        if eps.is_empty() {
            return None;
        }
        Some(&eps[cursor.fetch_add(1, Ordering::Relaxed) % eps.len()])
    }
}

/// Reads every live node from the registry.
pub async fn load(store: &dyn Store) -> Vec<NodeRecord> {
    match store.range(NODES_PREFIX).await {
        Ok(kvs) => kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect(),
        Err(e) => {
            tracing::warn!("reading nodes: {e}");
            Vec::new()
        }
    }
}

/// Keeps `table` equal to the registry's nodes: rebuilds it on every change under `nodes/`.
pub async fn follow(store: Arc<dyn Store>, table: Arc<ArcSwap<Routes>>) {
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
            let nodes = load(store.as_ref()).await;
            let next = Routes::build(nodes, &table.load());
            table.store(Arc::new(next));
        };
        rebuild().await;
        while watch.next().await.is_ok() {
            rebuild().await;
        }
    }
}

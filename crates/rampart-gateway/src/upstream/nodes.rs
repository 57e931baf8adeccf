//! The local nodes as an [`Upstreams`] source: the routing table of which nodes host which
//! service, rebuilt from the registry's `nodes/` whenever it changes and swapped atomically,
//! so routing never waits on a lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_net::tls::AddressBook;
use rampart_store::Store;
use serde::{Deserialize, Serialize};

use super::{HealthBoard, NodeHealth, Target, Upstreams};

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
    /// How long some of them may take, in milliseconds (programs' timeouts).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub timeouts_ms: std::collections::BTreeMap<String, u64>,
    /// Its listener for relayed client TLS (passthrough routes), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<SocketAddr>,
    /// Its lease.
    pub lease: i64,
}

/// Service name → its targets, and every live node.
#[derive(Debug, Default)]
struct Table {
    services: HashMap<String, Arc<[Target]>>,
    /// The longest a service's nodes say it may take.
    timeouts: HashMap<String, Duration>,
    nodes: Vec<NodeRecord>,
    /// A node's place in `nodes`, by name.
    by_name: HashMap<String, usize>,
}

impl Table {
    /// The live node named `name`.
    fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// The table for `nodes`. A service of `previous` that no node offers now stays known,
    /// with no target (503: its nodes may come back), unless it was withdrawn: every node that
    /// offered it is still registered and no longer lists it (a program removed from a
    /// services folder). Then it is unknown again (404).
    fn build(nodes: Vec<NodeRecord>, previous: &Table, board: &HealthBoard) -> Self {
        let still: std::collections::HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let withdrawn = |targets: &[Target]| {
            !targets.is_empty() && targets.iter().all(|t| still.contains(t.name.as_str()))
        };
        let mut services: HashMap<String, Vec<Target>> = previous
            .services
            .iter()
            .filter(|(_, targets)| !withdrawn(targets))
            .map(|(k, _)| (k.clone(), Vec::new()))
            .collect();
        for n in &nodes {
            let health = board.get(&n.name);
            for s in &n.services {
                let target = Target { name: n.name.clone(), addr: n.addr, health: health.clone() };
                // Looked up by `&str` first: a key is allocated once per service, not per node.
                match services.get_mut(s.as_str()) {
                    Some(targets) => targets.push(target),
                    None => drop(services.insert(s.clone(), vec![target])),
                }
            }
        }
        board.retain(&still);
        let mut timeouts: HashMap<String, Duration> = HashMap::new();
        for (service, ms) in nodes.iter().flat_map(|n| n.timeouts_ms.iter()) {
            let t = timeouts.entry(service.clone()).or_default();
            *t = (*t).max(Duration::from_millis(*ms));
        }
        let by_name = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Table {
            services: services.into_iter().map(|(k, v)| (k, v.into())).collect(),
            timeouts,
            nodes,
            by_name,
        }
    }
}

/// The nodes registered in this network: the table, the addresses the client to nodes
/// accepts each node at (kept equal to it), and their health.
#[derive(Debug, Default)]
pub struct Nodes {
    table: ArcSwap<Table>,
    addresses: AddressBook,
    board: HealthBoard,
}

impl Nodes {
    /// Nodes whose addresses are kept in `addresses` (the book the client's TLS config checks
    /// each node's identity against: [`rampart_net::tls::bound_client_config`]).
    pub fn new(addresses: AddressBook) -> Self {
        Nodes { addresses, ..Default::default() }
    }

    /// Every live node.
    pub fn list(&self) -> Vec<NodeRecord> {
        self.table.load().nodes.clone()
    }

    /// Every live node's name and address (what the probes dial).
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.table.load().nodes.iter().map(|n| (n.name.clone(), n.addr)).collect()
    }

    /// Whether the live node `name` hosts `service` (looked up in place: asked per request).
    pub(crate) fn hosts(&self, name: &str, service: &str) -> bool {
        self.table.load().node(name).is_some_and(|n| n.services.iter().any(|s| s == service))
    }

    /// The public listeners (passthrough) of the nodes hosting `service`, with their health.
    pub(crate) fn public_of(&self, service: &str) -> Vec<(SocketAddr, Arc<NodeHealth>)> {
        let table = self.table.load();
        table
            .nodes
            .iter()
            .filter(|n| n.services.iter().any(|s| s == service))
            .filter_map(|n| Some((n.public?, self.board.get(&n.name))))
            .collect()
    }

    /// Replaces the table with `nodes`; the nodes that left it.
    pub(crate) fn replace(&self, nodes: Vec<NodeRecord>) -> Vec<String> {
        let previous = self.table.load_full();
        let next = Table::build(nodes, &previous, &self.board);
        let gone =
            previous.nodes.iter().filter(|p| next.node(&p.name).is_none()).map(|n| n.name.clone()).collect();
        // The book first: a target picked from the new table is in it.
        self.addresses.replace(next.nodes.iter().map(|n| (n.addr.ip(), n.name.clone())));
        self.table.store(Arc::new(next));
        gone
    }

    /// Keeps the table equal to the registry's nodes: rebuilds it on every change under
    /// `nodes/`, telling `on_removed` of every node that left it. While the registry cannot be
    /// read (etcd without quorum), the last table stays: routing goes on to the nodes known
    /// healthy, and the probes keep ejecting the ones that fail.
    pub async fn follow(&self, store: Arc<dyn Store>, on_removed: impl Fn(&str)) {
        loop {
            let mut watch = match store.watch(NODES_PREFIX, None).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("watching nodes: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // Read whole once per watch; then each change is applied to what was read (one
            // record parsed, not the whole registry), a burst of changes at once.
            let mut records = match store.range(NODES_PREFIX).await {
                Ok(kvs) => kvs.into_iter().filter_map(|kv| Some((kv.key, parse(&kv.value)?))).collect(),
                Err(e) => {
                    tracing::warn!("reading nodes (keeping the last view): {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let rebuild = |records: &HashMap<String, NodeRecord>| {
                self.replace(records.values().cloned().collect()).iter().for_each(|gone| on_removed(gone));
            };
            rebuild(&records);
            while let Ok(first) = watch.next().await {
                let mut change = Some(first);
                while let Some(ev) = change {
                    apply(&mut records, ev);
                    change = watch.try_next();
                }
                rebuild(&records);
            }
        }
    }
}

impl Upstreams for Nodes {
    fn knows(&self, service: &str) -> bool {
        self.table.load().services.contains_key(service)
    }

    fn targets(&self, service: &str) -> Arc<[Target]> {
        self.table.load().services.get(service).cloned().unwrap_or_else(|| Arc::new([]))
    }

    fn takes(&self, service: &str) -> Option<Duration> {
        self.table.load().timeouts.get(service).copied()
    }

    fn peers_of(&self, node: &str) -> Vec<Arc<NodeHealth>> {
        let table = self.table.load();
        let mut out: Vec<Arc<NodeHealth>> = Vec::new();
        for targets in table.services.values().filter(|ts| ts.iter().any(|t| t.name == node)) {
            for t in targets.iter() {
                if !out.iter().any(|h| h.name == t.name) {
                    out.push(t.health.clone());
                }
            }
        }
        out
    }

    fn board(&self) -> &HealthBoard {
        &self.board
    }
}

/// Reads every live node from the registry.
pub async fn load(store: &dyn Store) -> Result<Vec<NodeRecord>, rampart_store::StoreError> {
    let kvs = store.range(NODES_PREFIX).await?;
    Ok(kvs.iter().filter_map(|kv| parse(&kv.value)).collect())
}

/// A node's record; one that does not parse is no node.
fn parse(value: &[u8]) -> Option<NodeRecord> {
    serde_json::from_slice(value).ok()
}

/// One change under `nodes/` applied to the records read, by key.
fn apply(records: &mut HashMap<String, NodeRecord>, ev: rampart_store::Event) {
    match (ev.kind, parse(&ev.kv.value)) {
        (rampart_store::EventKind::Put, Some(record)) => {
            records.insert(ev.kv.key, record);
        }
        _ => {
            records.remove(&ev.kv.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, port: u16, services: &[&str]) -> NodeRecord {
        NodeRecord {
            timeouts_ms: Default::default(),
            public: None,
            name: name.to_owned(),
            addr: ([127, 0, 0, 1], port).into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            lease: 1,
        }
    }

    #[test]
    fn a_service_whose_nodes_left_stays_known_without_targets() {
        let nodes = Nodes::default();
        assert!(
            nodes.replace(vec![record("a", 1, &["hello", "echo"]), record("b", 2, &["echo"])]).is_empty()
        );
        assert_eq!(nodes.targets("echo").len(), 2);
        let peers: Vec<String> = nodes.peers_of("b").iter().map(|h| h.name.clone()).collect();
        assert_eq!(peers, ["a", "b"], "a shares echo with b");
        assert_eq!(nodes.replace(vec![record("b", 2, &["echo"])]), ["a"]);
        assert!(nodes.knows("hello") && nodes.targets("hello").is_empty());
        assert!(!nodes.knows("data"));
        assert!(nodes.addresses.holds([127, 0, 0, 1].into(), "b"));
        assert!(!nodes.addresses.holds([127, 0, 0, 1].into(), "a"), "the book follows the table");
    }
}

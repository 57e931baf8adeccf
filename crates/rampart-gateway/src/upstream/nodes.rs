//! The local nodes as an [`Upstreams`] source: the routing table ([`super::table`]) kept equal
//! to the registry's `nodes/`, each change applied to the last table and the next one swapped
//! in atomically, so routing never waits on a lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_net::tls::AddressBook;
use rampart_store::Store;
use serde::{Deserialize, Serialize};

use super::table::{Changes, Table};
use super::{HealthBoard, NodeHealth, Target, Upstreams};

/// Where nodes register.
pub const NODES_PREFIX: &str = "nodes/";

/// A registered node, as stored at `nodes/<name>` (attached to its lease).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Every live node, by name.
    pub fn list(&self) -> Vec<NodeRecord> {
        let mut nodes: Vec<NodeRecord> = self.table.load().nodes.values().map(|n| (**n).clone()).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }

    /// Every live node's name and address (what the probes dial).
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.table.load().nodes.values().map(|n| (n.name.clone(), n.addr)).collect()
    }

    /// Whether the live node `name` hosts `service` (looked up in place: asked per request).
    pub(crate) fn hosts(&self, name: &str, service: &str) -> bool {
        self.table.load().node(name).is_some_and(|n| n.services.iter().any(|s| s == service))
    }

    /// The public listeners (passthrough) of the nodes hosting `service`, with their health.
    pub(crate) fn public_of(&self, service: &str) -> Vec<(SocketAddr, Arc<NodeHealth>)> {
        let table = self.table.load();
        let targets = table.services.get(service).map_or(&[][..], |t| &t[..]);
        targets.iter().filter_map(|t| Some((table.node(&t.name)?.public?, t.health.clone()))).collect()
    }

    /// Replaces the table with `nodes`; the nodes that left it.
    pub(crate) fn replace(&self, nodes: Vec<NodeRecord>) -> Vec<String> {
        let changes = self.table.load().changes_to(nodes.into_iter().map(Arc::new));
        self.change(changes)
    }

    /// Applies `changes` to the table; the nodes that left it.
    fn change(&self, changes: Changes) -> Vec<String> {
        if changes.is_empty() {
            return Vec::new();
        }
        let previous = self.table.load_full();
        let names: Vec<String> = changes.keys().cloned().collect();
        let (next, gone) = previous.apply(changes, &self.board);
        // The book first: a target picked from the new table is in it.
        self.addresses.update(previous.unlike(&next, &names), next.unlike(&previous, &names));
        self.table.store(Arc::new(next));
        gone
    }

    /// Keeps the table equal to the registry's nodes: applies every change under `nodes/`,
    /// telling `on_removed` of every node that left it. While the registry cannot be
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
            // record parsed, not the whole registry), and to the table, a burst of changes at once.
            let mut records: HashMap<String, Arc<NodeRecord>> = match store.range(NODES_PREFIX).await {
                Ok(kvs) => {
                    kvs.into_iter().filter_map(|kv| Some((kv.key, Arc::new(parse(&kv.value)?)))).collect()
                }
                Err(e) => {
                    tracing::warn!("reading nodes (keeping the last view): {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let told = |gone: Vec<String>| gone.iter().for_each(|name| on_removed(name));
            told(self.change(self.table.load().changes_to(records.values().cloned())));
            while let Ok(first) = watch.next().await {
                let mut changes = Changes::new();
                let mut change = Some(first);
                while let Some(ev) = change {
                    apply(&mut records, &mut changes, ev);
                    change = watch.try_next();
                }
                told(self.change(changes));
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

/// One change under `nodes/` applied to the records read, by key, and noted in `changes`, by
/// node name.
fn apply(records: &mut HashMap<String, Arc<NodeRecord>>, changes: &mut Changes, ev: rampart_store::Event) {
    let old = match (ev.kind, parse(&ev.kv.value)) {
        (rampart_store::EventKind::Put, Some(record)) => {
            let (name, record) = (record.name.clone(), Arc::new(record));
            let old = records.insert(ev.kv.key, record.clone());
            changes.insert(name.clone(), Some(record));
            old.filter(|old| old.name != name)
        }
        _ => records.remove(&ev.kv.key),
    };
    if let Some(old) = old {
        changes.insert(old.name.clone(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::table::tests::record;

    #[test]
    fn a_service_whose_nodes_left_stays_known_without_targets() {
        let nodes = Nodes::default();
        assert!(
            nodes.replace(vec![record("a", 1, &["hello", "echo"]), record("b", 2, &["echo"])]).is_empty()
        );
        assert_eq!(nodes.targets("echo").len(), 2);
        let mut peers: Vec<String> = nodes.peers_of("b").iter().map(|h| h.name.clone()).collect();
        peers.sort();
        assert_eq!(peers, ["a", "b"], "a shares echo with b");
        assert_eq!(nodes.replace(vec![record("b", 2, &["echo"])]), ["a"]);
        assert!(nodes.knows("hello") && nodes.targets("hello").is_empty());
        assert!(!nodes.knows("data"));
        assert!(nodes.addresses.holds([127, 0, 0, 1].into(), "b"));
        assert!(!nodes.addresses.holds([127, 0, 0, 1].into(), "a"), "the book follows the table");
    }

    #[test]
    fn a_record_moved_to_another_name_at_the_same_key_leaves_its_old_name() {
        let event = |kind, name: &str| rampart_store::Event {
            kind,
            kv: rampart_store::KeyValue {
                key: "nodes/x".into(),
                value: serde_json::to_vec(&record(name, 1, &["echo"])).unwrap_or_default(),
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                lease: None,
            },
        };
        let (mut records, mut changes) = (HashMap::new(), Changes::new());
        apply(&mut records, &mut changes, event(rampart_store::EventKind::Put, "a"));
        apply(&mut records, &mut changes, event(rampart_store::EventKind::Put, "b"));
        assert_eq!(changes.get("a"), Some(&None));
        assert!(matches!(changes.get("b"), Some(Some(r)) if r.name == "b"));
        apply(&mut records, &mut changes, event(rampart_store::EventKind::Delete, "b"));
        assert_eq!(changes.get("b"), Some(&None));
        assert!(records.is_empty());
    }
}

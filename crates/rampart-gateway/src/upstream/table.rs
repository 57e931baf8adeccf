//! The routing table: which nodes host which service. A table is never changed in place (the
//! request path reads it through an `ArcSwap` without a lock); a change in the registry makes
//! the next table from the last one, redoing only the services of the nodes that changed, so
//! a registration costs the same with ten services in the network as with ten thousand.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::nodes::NodeRecord;
use super::{HealthBoard, Target};

/// What changed, by node name: its record now, or `None` when it left.
pub(super) type Changes = HashMap<String, Option<Arc<NodeRecord>>>;

/// Service name → its targets, and every live node. The keys are shared (`Arc<str>`), so the
/// next table is made by copying pointers, not names.
#[derive(Clone, Debug, Default)]
pub(super) struct Table {
    pub(super) services: HashMap<Arc<str>, Arc<[Target]>>,
    /// The longest a service's nodes say it may take.
    pub(super) timeouts: HashMap<Arc<str>, Duration>,
    pub(super) nodes: HashMap<Arc<str>, Arc<NodeRecord>>,
}

impl Table {
    /// The live node named `name`.
    pub(super) fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.get(name).map(Arc::as_ref)
    }

    /// Of the nodes named `names`, those this table holds and `other` holds otherwise or not
    /// at all, as (address, name): what the address book must take out or put in.
    pub(super) fn unlike<'a>(&'a self, other: &Table, names: &[String]) -> Vec<(IpAddr, &'a str)> {
        let differ = |n: &&'a NodeRecord| other.node(&n.name) != Some(*n);
        names
            .iter()
            .filter_map(|name| self.node(name))
            .filter(differ)
            .map(|n| (n.addr.ip(), n.name.as_str()))
            .collect()
    }

    /// The changes that turn this table's nodes into `nodes` (what differs, and who left).
    pub(super) fn changes_to(&self, nodes: impl IntoIterator<Item = Arc<NodeRecord>>) -> Changes {
        let mut changes: Changes = self.nodes.keys().map(|name| (name.to_string(), None)).collect();
        for n in nodes {
            if self.node(&n.name) == Some(&*n) {
                changes.remove(&n.name);
            } else {
                changes.insert(n.name.clone(), Some(n));
            }
        }
        changes
    }

    /// The next table, with `changes` applied, and the nodes that left. A service none of
    /// whose nodes offers it now stays known, with no target (503: its nodes may come back),
    /// unless it was withdrawn: every node that offered it is still registered and no longer
    /// lists it (a program removed from a services folder). Then it is unknown again (404).
    pub(super) fn apply(&self, changes: Changes, board: &HealthBoard) -> (Table, Vec<String>) {
        let mut next = self.clone();
        let mut touched: HashSet<Arc<str>> = HashSet::new();
        let mut gone = Vec::new();
        let mut added: HashMap<Arc<str>, Vec<Target>> = HashMap::new();
        // A service's name as this table holds it (shared), or new.
        let key = |s: &str| -> Arc<str> {
            self.services.get_key_value(s).map_or_else(|| s.into(), |(k, _)| k.clone())
        };
        for (name, record) in &changes {
            if let Some(old) = next.nodes.remove(name.as_str()) {
                touched.extend(old.services.iter().map(|s| key(s)));
                if record.is_none() {
                    gone.push(name.clone());
                }
            }
            let Some(record) = record else { continue };
            let health = board.get(name);
            for s in &record.services {
                let s = key(s);
                let target = Target { name: name.clone(), addr: record.addr, health: health.clone() };
                added.entry(s.clone()).or_default().push(target);
                touched.insert(s);
            }
            next.nodes.insert(name.as_str().into(), record.clone());
        }
        board.forget(&gone);
        for service in touched {
            let before = self.services.get(&service).map_or(&[][..], |t| &t[..]);
            let mut targets: Vec<Target> =
                before.iter().filter(|t| !changes.contains_key(&t.name)).cloned().collect();
            targets.extend(added.remove(&service).unwrap_or_default());
            let withdrawn = targets.is_empty()
                && !before.is_empty()
                && before.iter().all(|t| next.nodes.contains_key(t.name.as_str()));
            let longest = targets
                .iter()
                .filter_map(|t| next.nodes.get(t.name.as_str())?.timeouts_ms.get(&*service))
                .max()
                .map(|ms| Duration::from_millis(*ms));
            match longest {
                Some(t) => drop(next.timeouts.insert(service.clone(), t)),
                None => drop(next.timeouts.remove(&service)),
            }
            if withdrawn {
                next.services.remove(&service);
            } else {
                next.services.insert(service, targets.into());
            }
        }
        (next, gone)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A node on 127.0.0.1:`port` hosting `services`.
    pub(in crate::upstream) fn record(name: &str, port: u16, services: &[&str]) -> NodeRecord {
        NodeRecord {
            timeouts_ms: Default::default(),
            public: None,
            name: name.to_owned(),
            addr: ([127, 0, 0, 1], port).into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            lease: 1,
        }
    }

    /// Each service's target names, sorted, and each timeout: what routing sees.
    type Seen = (Vec<(String, Vec<String>)>, Vec<(String, Duration)>);

    fn seen(t: &Table) -> Seen {
        let mut services: Vec<(String, Vec<String>)> = t
            .services
            .iter()
            .map(|(s, ts)| {
                let mut names: Vec<String> = ts.iter().map(|t| t.name.clone()).collect();
                names.sort();
                (s.to_string(), names)
            })
            .collect();
        services.sort();
        let mut timeouts: Vec<(String, Duration)> =
            t.timeouts.iter().map(|(s, d)| (s.to_string(), *d)).collect();
        timeouts.sort();
        (services, timeouts)
    }

    fn step(t: &Table, nodes: Vec<NodeRecord>, board: &HealthBoard) -> Table {
        t.apply(t.changes_to(nodes.into_iter().map(Arc::new)), board).0
    }

    #[test]
    fn changes_applied_one_after_another_make_the_table_a_whole_build_makes() {
        let board = HealthBoard::default();
        let slow = |mut r: NodeRecord, ms| {
            r.timeouts_ms.insert("batch".into(), ms);
            r
        };
        let states = [
            vec![record("a", 1, &["echo", "hello"]), record("b", 2, &["echo"])],
            vec![
                record("a", 1, &["echo", "hello"]),
                record("b", 2, &["echo"]),
                slow(record("c", 3, &["batch"]), 900),
            ],
            vec![
                record("a", 7, &["echo"]),
                slow(record("c", 3, &["batch", "echo"]), 300),
                slow(record("d", 4, &["batch"]), 600),
            ],
            vec![slow(record("d", 4, &["batch"]), 600)],
        ];
        let mut incremental = Table::default();
        for nodes in states {
            incremental = step(&incremental, nodes.clone(), &board);
            // The same nodes from nothing, with the services known so far kept known.
            let whole = step(&Table { nodes: HashMap::new(), ..incremental.clone() }, nodes, &board);
            assert_eq!(seen(&incremental), seen(&whole));
        }
        let (services, timeouts) = seen(&incremental);
        assert_eq!(timeouts, [("batch".to_owned(), Duration::from_millis(600))]);
        assert!(services.contains(&("echo".to_owned(), vec![])), "echo's nodes left: known, no target");
        assert_eq!(incremental.node("a"), None);
        assert_eq!(incremental.node("d").map(|n| n.addr.port()), Some(4));
    }

    #[test]
    fn a_service_its_nodes_stop_listing_is_withdrawn_and_one_whose_nodes_left_is_not() {
        let board = HealthBoard::default();
        let t = step(
            &Table::default(),
            vec![record("a", 1, &["echo", "hello"]), record("b", 2, &["echo"])],
            &board,
        );
        let t = step(&t, vec![record("a", 1, &["echo"]), record("b", 2, &["echo"])], &board);
        assert!(!t.services.contains_key("hello"), "withdrawn by the node that offered it");
        let (t, gone) = t.apply(t.changes_to([Arc::new(record("b", 2, &["echo"]))]), &board);
        assert_eq!(gone, ["a"]);
        assert_eq!(t.services.get("echo").map(|ts| ts.len()), Some(1));
        let t = step(&t, vec![], &board);
        assert!(t.services.get("echo").is_some_and(|ts| ts.is_empty()), "its nodes may come back");
    }

    #[test]
    fn nothing_changed_is_no_change_and_a_moved_node_keeps_its_health() {
        let board = HealthBoard::default();
        let t = step(&Table::default(), vec![record("a", 1, &["echo"])], &board);
        assert!(t.changes_to([Arc::new(record("a", 1, &["echo"]))]).is_empty());
        let health = board.get("a");
        let t = step(&t, vec![record("a", 9, &["echo"])], &board);
        let target = &t.services["echo"][0];
        assert_eq!(target.addr.port(), 9);
        assert!(Arc::ptr_eq(&target.health, &health), "health outlives a re-registration");
    }
}

//! The routing table at registry scale: S services, each on 10 nodes (S nodes, each hosting
//! 10 services), in the embedded registry; the gateway's table follows it as in a gateway
//! (`Nodes::follow`). Prints, for S = 100, 1,000 and 10,000: the cost of a route lookup, the
//! time from a registration written to the registry to the route in the table, the time the
//! first table took to build, and the memory the table holds (with the binary's allocator).
//!
//!   cargo bench -p rampart-gateway --bench registry_scale
//!   SIZES=100,1000,10000,30000 cargo bench -p rampart-gateway --bench registry_scale
//!
//! A benchmark, not a test: nothing here is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_gateway::upstream::Upstreams;
use rampart_gateway::upstream::nodes::{NODES_PREFIX, NodeRecord, Nodes};
use rampart_store::{EmbeddedStore, Store};

/// Endpoints per service (and services per node).
const REPLICAS: usize = 10;
/// Registrations timed per size.
const PROPAGATIONS: usize = 7;

/// The allocator of the `rampart` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn record(name: String, port: u16, services: Vec<String>) -> NodeRecord {
    NodeRecord {
        name,
        addr: ([127, 0, 0, 1], port).into(),
        services,
        timeouts_ms: Default::default(),
        public: None,
        lease: 0,
    }
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Polls `nodes` until `service` has a target (bounded: 10 s).
async fn until_routed(nodes: &Nodes, service: &str) -> Duration {
    let start = Instant::now();
    while nodes.targets(service).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "{service} never reached the table");
        tokio::task::yield_now().await;
    }
    start.elapsed()
}

struct Row {
    services: usize,
    lookup_ns: f64,
    propagation_ms: f64,
    propagation_max_ms: f64,
    first_build_ms: f64,
    table_mib: f64,
}

async fn measure(services: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("registry.redb")).unwrap());
    // Written concurrently: the embedded store commits queued writes in one transaction.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..services {
        let store = store.clone();
        let hosted = (0..REPLICAS).map(|k| format!("svc-{}", (i + k) % services)).collect();
        let rec = record(format!("node-{i}"), 10_000 + (i % 50_000) as u16, hosted);
        writes.spawn(async move {
            store.put(&format!("{NODES_PREFIX}{}", rec.name), serde_json::to_vec(&rec).unwrap(), None).await
        });
    }
    while let Some(w) = writes.join_next().await {
        w.unwrap().unwrap();
    }
    let before = rss();
    let nodes = Arc::new(Nodes::default());
    let started = Instant::now();
    let follower = tokio::spawn({
        let (nodes, store) = (nodes.clone(), store.clone());
        async move { nodes.follow(store, |_| {}).await }
    });
    until_routed(&nodes, &format!("svc-{}", services - 1)).await;
    let first_build_ms = started.elapsed().as_secs_f64() * 1e3;
    let table_mib = rss().saturating_sub(before) as f64 / (1 << 20) as f64;

    // Lookups of services spread over the table, as requests make them.
    let lookups = 1_000_000;
    let t = Instant::now();
    let mut found = 0usize;
    for i in 0..lookups {
        let s = format!("svc-{}", (i * 7919) % services);
        found += std::hint::black_box(nodes.targets(&s)).len();
    }
    let with_names = t.elapsed().as_secs_f64();
    // The name formatting alone, taken off.
    let t = Instant::now();
    for i in 0..lookups {
        std::hint::black_box(format!("svc-{}", (i * 7919) % services));
    }
    let lookup_ns = (with_names - t.elapsed().as_secs_f64()).max(0.0) * 1e9 / lookups as f64;
    assert_eq!(found, lookups * REPLICAS);

    // A new node's registration, written to the registry, until its service routes.
    let mut took = Vec::new();
    for k in 0..PROPAGATIONS {
        let rec = record(format!("fresh-{k}"), 9_000 + k as u16, vec![format!("fresh-{k}")]);
        let t = Instant::now();
        store
            .put(&format!("{NODES_PREFIX}{}", rec.name), serde_json::to_vec(&rec).unwrap(), None)
            .await
            .unwrap();
        until_routed(&nodes, &rec.name).await;
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    follower.abort();
    let propagation_max_ms = took.iter().copied().fold(0.0, f64::max);
    Row { services, lookup_ns, propagation_ms: median(took), propagation_max_ms, first_build_ms, table_mib }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&s| s >= REPLICAS)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "{:>9} {:>10} {:>12} {:>16} {:>16} {:>14} {:>11}",
        "services", "endpoints", "lookup, ns", "registration→", "  (slowest of", "first table,", "table, MiB"
    );
    println!(
        "{:>9} {:>10} {:>12} {:>16} {:>16} {:>14} {:>11}",
        "",
        "",
        "",
        "route, ms (p50)",
        format!("{PROPAGATIONS}), ms"),
        "ms",
        "(RSS delta)"
    );
    for s in sizes {
        let r = rt.block_on(measure(s));
        println!(
            "{:>9} {:>10} {:>12.1} {:>16.2} {:>16.2} {:>14.1} {:>11.1}",
            r.services,
            r.services * REPLICAS,
            r.lookup_ns,
            r.propagation_ms,
            r.propagation_max_ms,
            r.first_build_ms,
            r.table_mib
        );
    }
}

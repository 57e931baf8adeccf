//! The routing table at registry scale: S services, each on 10 nodes (S nodes, each hosting
//! 10 services). The gateway's table follows the registry as in a gateway (`Nodes::follow`).
//! Prints, for S = 100, 1,000 and 10,000: the cost of a route lookup, the time from a
//! registration written to the registry to the route in the table, the time the first table
//! took to build, and the memory the table holds (with the binary's allocator). First with the
//! embedded registry and one gateway; then, when etcd is installed, with a real etcd member on
//! 127.0.0.1 and two gateways following it (a registration counts when both route it).
//!
//!   cargo bench -p rampart-gateway --bench registry_scale
//!   SIZES=100,1000,10000,30000 REGISTRIES=embedded cargo bench -p rampart-gateway --bench registry_scale
//!
//! A benchmark, not a test: nothing here is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// A single etcd member on free ports of 127.0.0.1, killed when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn etcd_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(std::path::PathBuf::from("/usr/bin/etcd"))
        .chain(std::env::split_paths(&path).map(|d| d.join("etcd")))
        .find(|p| p.is_file())
}

fn start_etcd(binary: &Path) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) =
        (format!("http://127.0.0.1:{}", free_port()), format!("http://127.0.0.1:{}", free_port()));
    let child = Command::new(binary)
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Etcd { child, url: client, _dir: dir }
}

/// A client of the etcd member, as a gateway holds one (polled until it answers: 20 s).
async fn etcd_store(etcd: &Etcd) -> Arc<dyn Store> {
    let start = Instant::now();
    loop {
        let config = rampart_etcd::EtcdConfig::new([etcd.url.clone()], "/bench/");
        match rampart_etcd::EtcdStore::connect(config).await {
            Ok(store) => return Arc::new(store),
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("etcd at {} never answered: {e}", etcd.url),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Registry {
    Embedded,
    Etcd,
}

struct Row {
    services: usize,
    lookup_ns: f64,
    propagation_ms: f64,
    propagation_max_ms: f64,
    first_build_ms: f64,
    table_mib: f64,
}

/// The gateways following `stores` (one each), until `last` routes in all; the first table's
/// time.
async fn follow(
    stores: &[Arc<dyn Store>],
    last: &str,
) -> (Vec<Arc<Nodes>>, Vec<tokio::task::JoinHandle<()>>, f64) {
    let started = Instant::now();
    let mut gateways = Vec::new();
    let mut followers = Vec::new();
    for store in stores {
        let nodes = Arc::new(Nodes::default());
        followers.push(tokio::spawn({
            let (nodes, store) = (nodes.clone(), store.clone());
            async move { nodes.follow(store, |_| {}).await }
        }));
        gateways.push(nodes);
    }
    for nodes in &gateways {
        until_routed(nodes, last).await;
    }
    (gateways, followers, started.elapsed().as_secs_f64() * 1e3)
}

async fn measure(services: usize, registry: Registry, etcd: Option<&Etcd>) -> Row {
    let dir = tempfile::tempdir().unwrap();
    // The writer, and what each gateway reads through (for etcd: a client each).
    let (store, readers): (Arc<dyn Store>, Vec<Arc<dyn Store>>) = match (registry, etcd) {
        (Registry::Etcd, Some(etcd)) => {
            let writer = etcd_store(etcd).await;
            let _ = writer.delete_prefix(NODES_PREFIX).await;
            (writer, vec![etcd_store(etcd).await, etcd_store(etcd).await])
        }
        _ => {
            let store: Arc<dyn Store> =
                Arc::new(EmbeddedStore::open(&dir.path().join("registry.redb")).unwrap());
            (store.clone(), vec![store])
        }
    };
    // Written concurrently (the embedded store commits queued writes in one transaction),
    // at most 256 in flight.
    let mut writes: tokio::task::JoinSet<rampart_store::Result<rampart_store::Revision>> =
        tokio::task::JoinSet::new();
    for i in 0..services {
        if writes.len() >= 256 {
            writes.join_next().await.unwrap().unwrap().unwrap();
        }
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
    let (gateways, followers, first_build_ms) = follow(&readers, &format!("svc-{}", services - 1)).await;
    let table_mib = rss().saturating_sub(before) as f64 / (1 << 20) as f64 / gateways.len() as f64;
    let nodes = &gateways[0];

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

    // A new node's registration, written to the registry, until its service routes in every
    // gateway.
    let mut took = Vec::new();
    for k in 0..PROPAGATIONS {
        let rec = record(format!("fresh-{k}"), 9_000 + k as u16, vec![format!("fresh-{k}")]);
        let t = Instant::now();
        store
            .put(&format!("{NODES_PREFIX}{}", rec.name), serde_json::to_vec(&rec).unwrap(), None)
            .await
            .unwrap();
        for nodes in &gateways {
            until_routed(nodes, &rec.name).await;
        }
        took.push(t.elapsed().as_secs_f64() * 1e3);
    }
    followers.iter().for_each(|f| f.abort());
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
    let wanted = std::env::var("REGISTRIES").unwrap_or_else(|_| "embedded,etcd".into());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let etcd = match (wanted.contains("etcd"), etcd_binary()) {
        (true, Some(binary)) => Some(start_etcd(&binary)),
        (true, None) => {
            println!("etcd is not installed (Debian's etcd-server): its rows are left out");
            None
        }
        (false, _) => None,
    };
    println!(
        "{:>24} {:>9} {:>10} {:>12} {:>16} {:>16} {:>14} {:>11}",
        "registry, gateways",
        "services",
        "endpoints",
        "lookup, ns",
        "registration→",
        "  (slowest of",
        "first table,",
        "table, MiB"
    );
    println!(
        "{:>24} {:>9} {:>10} {:>12} {:>16} {:>16} {:>14} {:>11}",
        "",
        "",
        "",
        "",
        "route, ms (p50)",
        format!("{PROPAGATIONS}), ms"),
        "ms",
        "(RSS delta)"
    );
    let mut runs = Vec::new();
    if wanted.contains("embedded") {
        runs.push((Registry::Embedded, "embedded, 1"));
    }
    if etcd.is_some() {
        runs.push((Registry::Etcd, "etcd, 2"));
    }
    for (registry, label) in runs {
        for &s in &sizes {
            let r = rt.block_on(measure(s, registry, etcd.as_ref()));
            println!(
                "{:>24} {:>9} {:>10} {:>12.1} {:>16.2} {:>16.2} {:>14.1} {:>11.1}",
                label,
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
}

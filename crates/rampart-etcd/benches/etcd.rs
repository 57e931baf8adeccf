//! Put and get latency through a 3-member etcd cluster on loopback, beside the embedded store.
//! Needs `etcd` installed (scripts/test installs it). Prints a table; not a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failure report

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_etcd::{EtcdConfig, EtcdStore};
use rampart_store::{EmbeddedStore, Store};

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, f64) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (p(0.5), p(0.99), samples.len() as f64 / total.as_secs_f64())
}

async fn measure(store: Arc<dyn Store>) -> [(&'static str, Vec<Duration>); 2] {
    let value = vec![7u8; 256];
    let mut puts = Vec::new();
    for i in 0..1_000 {
        let t = Instant::now();
        store.put(&format!("services/data/records/{i:08}"), value.clone(), None).await.unwrap();
        puts.push(t.elapsed());
    }
    let mut gets = Vec::new();
    for i in 0..2_000 {
        let t = Instant::now();
        store.get(&format!("services/data/records/{:08}", i % 1_000)).await.unwrap().unwrap();
        gets.push(t.elapsed());
    }
    [("put", puts), ("get", gets)]
}

/// Registrations per second, as the gateway makes them (a lease, then the node's record on
/// it), from 32 registering at once, for 2,000 registrations.
async fn registrations(store: Arc<dyn Store>) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..(2_000 / 32) {
                let lease = store.grant_lease(Duration::from_secs(30)).await.unwrap();
                store.put(&format!("nodes/n{t}-{i}"), vec![7u8; 128], Some(lease)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    f64::from(2_000 / 32 * 32) / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedStore::open(&dir.path().join("r.redb")).unwrap());
    let cluster = cluster::Cluster::start(3, None).await;
    let etcd =
        Arc::new(EtcdStore::connect(EtcdConfig::new(cluster.endpoints(), "/rampart/bench/")).await.unwrap());
    println!("{:<40}{:>12}{:>12}{:>12}", "store (256 B values, one at a time)", "p50", "p99", "ops/s");
    for (name, store) in [("embedded", embedded as Arc<dyn Store>), ("etcd, 3 members on loopback", etcd)] {
        for (op, samples) in measure(store.clone()).await {
            let (p50, p99, rate) = percentiles(samples);
            println!("{:<40}{:>12.1?}{:>12.1?}{rate:>12.0}", format!("{name}: {op}"), p50, p99);
        }
        let rate = registrations(store).await;
        println!("{:<40}{:>12}{:>12}{rate:>12.0}", format!("{name}: registrations, 32 at once"), "", "");
    }
}

//! Embedded store latency: put (fsync'd before it returns) and get. Prints a table; not a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failure report

use std::time::{Duration, Instant};

use rampart_store::{EmbeddedStore, Store};

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration, f64) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (p(0.5), p(0.99), samples.len() as f64 / total.as_secs_f64())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("r.redb")).unwrap();
    let value = vec![7u8; 256];
    let mut puts = Vec::new();
    for i in 0..2_000 {
        let t = Instant::now();
        store.put(&format!("services/data/records/{i:08}"), value.clone(), None).await.unwrap();
        puts.push(t.elapsed());
    }
    let mut gets = Vec::new();
    for i in 0..20_000 {
        let t = Instant::now();
        store.get(&format!("services/data/records/{:08}", i % 2_000)).await.unwrap().unwrap();
        gets.push(t.elapsed());
    }
    println!("{:<34}{:>12}{:>12}{:>12}", "embedded store (256 B values)", "p50", "p99", "ops/s");
    for (name, samples) in [("put, fsync'd before return", puts), ("get", gets)] {
        let (p50, p99, rate) = percentiles(samples);
        println!("{name:<34}{:>12.1?}{:>12.1?}{rate:>12.0}", p50, p99);
    }
}

//! Failover on a real 3-member cluster: a member killed under the store loses no call and no
//! watch event; a cluster without quorum answers `Unavailable` promptly and writes resume once
//! it has quorum again, on the same store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod cluster;

use std::time::{Duration, Instant};

use rampart_etcd::{EtcdConfig, EtcdStore};
use rampart_store::{EventKind, Expect, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_loses_no_call_and_no_event() {
    let mut cluster = cluster::Cluster::start(3, None).await;
    let store = EtcdStore::connect(EtcdConfig::new(cluster.endpoints(), "/rampart/failover/")).await.unwrap();
    let lease = store.grant_lease(Duration::from_secs(3)).await.unwrap();
    store.put("k/counter", b"0".to_vec(), None).await.unwrap();
    let mut watch = store.watch("k/", None).await.unwrap();
    let mut expected = Vec::new();
    let mut killed = None;
    for i in 0..200u32 {
        if i == 20 {
            let url = store.current_endpoint().await.expect("connected");
            let victim = cluster.index_of(&url);
            cluster.kill(victim); // SIGKILL, under the store's connection and its watch
            killed = Some((victim, Instant::now()));
        }
        let key = format!("k/{i}");
        let value = i.to_string().into_bytes();
        store.put(&key, value.clone(), Some(lease)).await.unwrap_or_else(|e| panic!("put {i}: {e}"));
        expected.push((key.clone(), value.clone()));
        let got = store.get(&key).await.unwrap_or_else(|e| panic!("get {i}: {e}")).unwrap();
        assert_eq!(got.value, value);
        let counter =
            store.get("k/counter").await.unwrap_or_else(|e| panic!("get counter {i}: {e}")).unwrap();
        let next = (i + 1).to_string().into_bytes();
        let cas = store
            .compare_and_set("k/counter", Expect::ModRevision(counter.mod_revision), Some(next.clone()), None)
            .await
            .unwrap_or_else(|e| panic!("compare-and-set {i}: {e}"));
        assert!(cas.succeeded, "compare-and-set {i} failed with no other writer: {cas:?}");
        expected.push(("k/counter".to_owned(), next));
        if i % 10 == 0 {
            store.keep_alive(lease).await.unwrap_or_else(|e| panic!("keep-alive {i}: {e}"));
        }
    }
    let (victim, at) = killed.unwrap();
    eprintln!("member {victim} killed; 180 rounds after it took {:?}", at.elapsed());
    assert_ne!(store.current_endpoint().await, Some(cluster.members[victim].client_url.clone()));
    // The watch opened before the kill sees every event once, in order; a marker written last
    // comes right after them, so nothing was repeated.
    store.put("k/end", vec![], None).await.unwrap();
    expected.push(("k/end".to_owned(), vec![]));
    let mut last = 0;
    for (n, (key, value)) in expected.iter().enumerate() {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap_or_else(|_| panic!("event {n} ({key}) not seen in time"))
            .unwrap();
        assert_eq!((ev.kind, &ev.kv.key, &ev.kv.value), (EventKind::Put, key, value), "event {n}");
        assert!(ev.kv.mod_revision > last, "event {n} out of order");
        last = ev.kv.mod_revision;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_loss_is_unavailable_then_writes_resume() {
    let mut cluster = cluster::Cluster::start(3, None).await;
    let store = EtcdStore::connect(EtcdConfig::new(cluster.endpoints(), "/rampart/quorum/")).await.unwrap();
    store.put("k", b"before".to_vec(), None).await.unwrap();
    cluster.kill(0);
    cluster.kill(1);
    let start = Instant::now();
    let put = store.put("k", b"during".to_vec(), None).await;
    let took = start.elapsed();
    assert!(matches!(put, Err(StoreError::Unavailable(_))), "put without quorum: {put:?}");
    assert!(took < Duration::from_secs(5), "put without quorum took {took:?}");
    // Reads need quorum too (linearizable): they fail the same way, in bounded time.
    let start = Instant::now();
    let _ = store.get("k").await;
    assert!(start.elapsed() < Duration::from_secs(5), "a read without quorum hung");
    cluster.restart(0);
    cluster.restart(1);
    cluster.wait_ready().await;
    let start = Instant::now();
    loop {
        match store.put("k", b"after".to_vec(), None).await {
            Ok(_) => break,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(15), "writes did not resume: {e}"),
        }
    }
    assert_eq!(store.get("k").await.unwrap().unwrap().value, b"after");
}

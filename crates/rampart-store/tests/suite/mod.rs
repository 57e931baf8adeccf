//! The behaviour every `Store` backend must have. Each function takes a fresh, empty store;
//! `tests/embedded.rs` runs them on redb, and the etcd backend's tests run the same functions.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_store::{AclStore, EventKind, Expect, Grants, LeaseAccess, LeaseId, Store, StoreError};

/// Polls `check` until it holds or `limit` passes (no fixed sleeps standing in for readiness).
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

pub async fn basic_operations(store: Arc<dyn Store>) {
    assert_eq!(store.get("a/1").await.unwrap(), None);
    let r1 = store.put("a/1", b"one".to_vec(), None).await.unwrap();
    let r2 = store.put("a/2", b"two".to_vec(), None).await.unwrap();
    let r3 = store.put("a/1", b"uno".to_vec(), None).await.unwrap();
    store.put("b/1", b"other".to_vec(), None).await.unwrap();
    assert!(r1 < r2 && r2 < r3);
    let a1 = store.get("a/1").await.unwrap().unwrap();
    assert_eq!(
        (a1.value.as_slice(), a1.create_revision, a1.mod_revision, a1.version),
        (&b"uno"[..], r1, r3, 2)
    );
    let keys: Vec<String> = store.range("a/").await.unwrap().into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert!(store.delete("a/2").await.unwrap());
    assert!(!store.delete("a/2").await.unwrap());
    store.put("a/3", vec![], None).await.unwrap();
    assert_eq!(store.delete_prefix("a/").await.unwrap(), 2);
    assert!(store.range("a/").await.unwrap().is_empty());
    assert_eq!(store.range("b/").await.unwrap().len(), 1);
    assert!(matches!(store.put("", vec![], None).await, Err(StoreError::InvalidKey(_))));
    let big = vec![0u8; (1 << 20) + 1];
    assert!(matches!(store.put("big", big, None).await, Err(StoreError::ValueTooLarge(_))));
}

/// A range larger than one answer of a backend (etcd's are paged, and a gRPC message holds
/// 4 MiB: here a page of 100 keys holds 5 MiB): every key, once, in order, and none past the
/// prefix.
pub async fn a_large_range_is_whole_and_in_order(store: Arc<dyn Store>) {
    let mut wanted = Vec::new();
    for i in 0..250 {
        let key = format!("big/{i:04}");
        let value = if i % 20 == 0 { vec![b'x'; 1 << 20] } else { i.to_string().into_bytes() };
        store.put(&key, value.clone(), None).await.unwrap();
        wanted.push((key, value));
    }
    store.put("big0", b"just past the prefix".to_vec(), None).await.unwrap();
    store.put("bif/last", b"just before it".to_vec(), None).await.unwrap();
    let got: Vec<(String, Vec<u8>)> =
        store.range("big/").await.unwrap().into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(got.len(), wanted.len());
    assert!(got == wanted, "the range is every key under the prefix, in order, with its value");
}

pub async fn compare_and_set_under_contention(store: Arc<dyn Store>) {
    store.put("counter", b"0".to_vec(), None).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut retries = 0u32;
            for _ in 0..25 {
                loop {
                    let kv = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    let out = store.compare_and_set(
                        "counter",
                        Expect::ModRevision(kv.mod_revision),
                        Some(next),
                        None,
                    );
                    if out.await.unwrap().succeeded {
                        break;
                    }
                    retries += 1;
                }
            }
            retries
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = store.get("counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b"200", "lost updates under contention");
    // Create-if-absent and delete-if-unchanged.
    assert!(
        store.compare_and_set("once", Expect::Absent, Some(b"x".to_vec()), None).await.unwrap().succeeded
    );
    let again = store.compare_and_set("once", Expect::Absent, Some(b"y".to_vec()), None).await.unwrap();
    assert!(!again.succeeded);
    assert_eq!(again.current.unwrap().value, b"x");
    let stale = store.compare_and_set("once", Expect::Value(b"nope".to_vec()), None, None).await.unwrap();
    assert!(!stale.succeeded);
    assert!(store.compare_and_set("once", Expect::Value(b"x".to_vec()), None, None).await.unwrap().succeeded);
    assert_eq!(store.get("once").await.unwrap(), None);
}

pub async fn leases_expire_with_their_keys(store: Arc<dyn Store>) {
    let short = store.grant_lease(Duration::from_millis(300)).await.unwrap();
    let kept = store.grant_lease(Duration::from_millis(300)).await.unwrap();
    store.put("nodes/a", b"a".to_vec(), Some(short)).await.unwrap();
    store.put("nodes/b", b"b".to_vec(), Some(kept)).await.unwrap();
    store.put("nodes/c", b"c".to_vec(), None).await.unwrap();
    let mut watch = store.watch("nodes/", None).await.unwrap();
    // Keep `kept` alive well past its TTL while `short` lapses.
    let start = Instant::now();
    while store.get("nodes/a").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(5), "leased key outlived its lease");
        store.keep_alive(kept).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.get("nodes/b").await.unwrap().is_some(), "kept-alive key vanished");
    assert!(store.get("nodes/c").await.unwrap().is_some());
    let ev = watch.next().await.unwrap();
    assert_eq!((ev.kind, ev.kv.key.as_str()), (EventKind::Delete, "nodes/a"));
    assert!(matches!(store.keep_alive(short).await, Err(StoreError::LeaseNotFound(_))));
    assert!(matches!(store.put("nodes/a", vec![], Some(short)).await, Err(StoreError::LeaseNotFound(_))));
    store.revoke_lease(kept).await.unwrap();
    assert_eq!(store.get("nodes/b").await.unwrap(), None);
    assert!(matches!(
        store.put("x", vec![], Some(LeaseId(999_999))).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub async fn watch_sees_every_change_in_order(store: Arc<dyn Store>) {
    let start_rev = store.revision().await.unwrap();
    let mut watch = store.watch("w/", None).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..300u32 {
        let key = format!("w/{}", i % 7);
        if i % 5 == 4 {
            if store.delete(&key).await.unwrap() {
                expected.push((EventKind::Delete, key));
            }
        } else {
            store.put(&key, i.to_be_bytes().to_vec(), None).await.unwrap();
            expected.push((EventKind::Put, key));
        }
        store.put("elsewhere", vec![], None).await.unwrap(); // outside the prefix: unseen
    }
    let mut last = start_rev;
    for (kind, key) in &expected {
        let ev =
            tokio::time::timeout(Duration::from_secs(5), watch.next()).await.expect("event in time").unwrap();
        assert_eq!((&ev.kind, &ev.kv.key), (kind, key));
        assert!(ev.kv.mod_revision > last, "out of order");
        last = ev.kv.mod_revision;
    }
    // Resuming from a revision replays from exactly there.
    let mut resumed = store.watch("w/", Some(start_rev + 1)).await.unwrap();
    for (kind, key) in &expected {
        let ev = tokio::time::timeout(Duration::from_secs(5), resumed.next())
            .await
            .expect("event in time")
            .unwrap();
        assert_eq!((&ev.kind, &ev.kv.key), (kind, key));
    }
}

pub async fn acl_limits_a_principal_to_its_grants(store: Arc<dyn Store>) {
    let admin = AclStore::new(store.clone(), Grants::all());
    let lease = admin.grant_lease(Duration::from_secs(30)).await.unwrap();
    let other = admin.grant_lease(Duration::from_secs(30)).await.unwrap();
    let node = AclStore::new(
        store.clone(),
        Grants {
            read: vec!["nodes/".into()],
            write: vec!["services/data/".into(), "nodes/web-1".into()],
            leases: LeaseAccess::Own(vec![lease]),
        },
    );
    node.put("nodes/web-1", b"up".to_vec(), Some(lease)).await.unwrap();
    node.put("services/data/records/1", b"{}".to_vec(), None).await.unwrap();
    node.keep_alive(lease).await.unwrap();
    assert_eq!(node.range("nodes/").await.unwrap().len(), 1);
    let denied = [
        node.put("nodes/web-2", vec![], None).await.err(),
        node.put("services/other/x", vec![], None).await.err(),
        node.put("nodes/web-1", vec![], Some(other)).await.err(),
        node.get("auth/users/alice").await.err(),
        node.range("").await.err(),
        node.keep_alive(other).await.err(),
        node.revoke_lease(other).await.err(),
        node.delete_prefix("services/").await.err(),
    ];
    for (i, e) in denied.into_iter().enumerate() {
        assert!(matches!(e, Some(StoreError::Forbidden { .. })), "case {i}: {e:?}");
    }
    let nobody = AclStore::new(store.clone(), Grants::default());
    assert!(matches!(nobody.get("nodes/web-1").await, Err(StoreError::Forbidden { .. })));
    assert!(matches!(nobody.grant_lease(Duration::from_secs(1)).await, Err(StoreError::Forbidden { .. })));
}

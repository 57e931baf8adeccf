//! The shared store suite on the embedded (redb) backend, plus what only it has: a file, and
//! durability across a process killed with SIGKILL right after an acknowledged write.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod suite;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_store::{EmbeddedStore, Store, StoreError};

fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("registry.redb")).unwrap();
    (dir, Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_operations() {
    let (_d, s) = fresh();
    suite::basic_operations(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_range_is_whole_and_in_order() {
    let (_d, s) = fresh();
    suite::a_large_range_is_whole_and_in_order(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_under_contention() {
    let (_d, s) = fresh();
    suite::compare_and_set_under_contention(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_with_their_keys() {
    let (_d, s) = fresh();
    suite::leases_expire_with_their_keys(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_change_in_order() {
    let (_d, s) = fresh();
    suite::watch_sees_every_change_in_order(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_limits_a_principal_to_its_grants() {
    let (_d, s) = fresh();
    suite::acl_limits_a_principal_to_its_grants(s).await;
}

#[tokio::test]
async fn a_second_process_is_refused_while_one_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let _held = EmbeddedStore::open(&path).unwrap();
    assert!(matches!(EmbeddedStore::open(&path), Err(StoreError::InUse(_))));
}

#[tokio::test]
async fn data_and_leases_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let (rev, lease) = {
        let s = EmbeddedStore::open(&path).unwrap();
        let lease = s.grant_lease(Duration::from_secs(30)).await.unwrap();
        s.put("nodes/a", b"a".to_vec(), Some(lease)).await.unwrap();
        (s.put("k", b"v".to_vec(), None).await.unwrap(), lease)
    };
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(s.revision().await.unwrap(), rev);
    assert_eq!(s.get("k").await.unwrap().unwrap().value, b"v");
    s.keep_alive(lease).await.unwrap();
    assert_ne!(s.grant_lease(Duration::from_secs(1)).await.unwrap(), lease, "lease ids must not repeat");
    s.revoke_lease(lease).await.unwrap();
    assert_eq!(s.get("nodes/a").await.unwrap(), None);
}

/// Child half of the SIGKILL test: writes keys forever, printing each one once acknowledged.
#[tokio::test]
async fn durability_child() {
    let Ok(path) = std::env::var("RAMPART_STORE_CHILD_DB") else { return };
    let store = EmbeddedStore::open(std::path::Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    let start = Instant::now();
    for i in 0u64..100_000 {
        store.put(&format!("k/{i:08}"), i.to_be_bytes().to_vec(), None).await.unwrap();
        writeln!(out, "acked {i}").unwrap();
        out.flush().unwrap();
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "durability_child", "--nocapture", "--test-threads=1"])
        .env("RAMPART_STORE_CHILD_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut last = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("acked ") {
            last = Some(i.parse::<u64>().unwrap());
            if last == Some(200) {
                child.kill().unwrap(); // SIGKILL, right after an acknowledgement
                break;
            }
        }
    }
    child.wait().unwrap();
    let last = last.expect("the child acknowledged writes");
    let store = EmbeddedStore::open(&path).unwrap();
    let stored = store.range("k/").await.unwrap();
    assert!(stored.len() as u64 > last, "acknowledged {} writes, found {}", last + 1, stored.len());
    for i in 0..=last {
        assert!(store.get(&format!("k/{i:08}")).await.unwrap().is_some(), "acknowledged write {i} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_follows_its_prefix_and_reads_through_on_a_miss() {
    let (_d, s) = fresh();
    s.put("auth/users/a", b"1".to_vec(), None).await.unwrap();
    s.put("other/x", b"x".to_vec(), None).await.unwrap();
    let mirror = rampart_store::Mirror::new(s.clone(), "auth/");
    assert!(suite::eventually(Duration::from_secs(5), async || mirror.loaded()).await);
    let loaded = mirror.generation().expect("a loaded copy has a generation");
    // Written after the copy: found at once (read through), then by the watch.
    s.put("auth/tokens/t", b"2".to_vec(), None).await.unwrap();
    assert_eq!(mirror.get("auth/tokens/t").await.unwrap().unwrap().value, b"2");
    s.put("auth/users/a", b"3".to_vec(), None).await.unwrap();
    s.delete("auth/tokens/t").await.unwrap();
    let caught_up = suite::eventually(Duration::from_secs(5), async || {
        let a = mirror.get("auth/users/a").await.unwrap().map(|kv| kv.value);
        let keys: Vec<String> = mirror.range("auth/").await.unwrap().into_iter().map(|kv| kv.key).collect();
        a.as_deref() == Some(&b"3"[..]) && keys == ["auth/users/a"]
    })
    .await;
    assert!(caught_up, "the mirror did not follow the changes");
    assert!(mirror.generation().unwrap() >= loaded + 3, "each change applied makes a new generation");
    assert_eq!(mirror.get("other/x").await.unwrap().unwrap().value, b"x", "outside the prefix: read through");
}

/// Writers that arrive together share a commit (group commit), yet each write keeps its own
/// revision, each is seen once and in order by a watch, and all are there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_keep_their_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).unwrap());
    let start = store.revision().await.unwrap();
    let mut watch = store.watch("w/", None).await.unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                let key = format!("w/{t}/{i}");
                let rev = if i % 2 == 0 {
                    store.put(&key, vec![1], None).await.unwrap()
                } else {
                    let o = store
                        .compare_and_set(&key, rampart_store::Expect::Absent, Some(vec![2]), Some(lease))
                        .await
                        .unwrap();
                    assert!(o.succeeded);
                    // A second writer of the same key in the same batch must see the first.
                    let again = store
                        .compare_and_set(&key, rampart_store::Expect::Absent, Some(vec![3]), None)
                        .await
                        .unwrap();
                    assert!(!again.succeeded && again.current.unwrap().value == vec![2]);
                    o.revision
                };
                revs.push(rev);
            }
            revs
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.extend(t.await.unwrap());
    }
    revs.sort_unstable();
    let n = revs.len();
    revs.dedup();
    assert_eq!(revs.len(), n, "two writes shared a revision");
    // The lease grant took one revision-less write; the 640 writes took 640 revisions.
    assert_eq!(*revs.last().unwrap(), start + n as u64, "revisions are not contiguous");
    let mut seen = Vec::new();
    while seen.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.unwrap().unwrap();
        seen.push(ev.kv.mod_revision);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the watch saw writes out of order");
    drop((watch, store));
    let reopened = EmbeddedStore::open(&path).unwrap();
    assert_eq!(reopened.range("w/").await.unwrap().len(), n);
    assert_eq!(reopened.revision().await.unwrap(), start + n as u64);
}

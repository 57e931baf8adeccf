//! etcd's own protection of the registry: client-certificate TLS, and a user whose role grants
//! only the store's prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod cluster;
#[path = "../../rampart-store/tests/suite/mod.rs"]
mod suite;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Permission;
use rampart_etcd::{EtcdConfig, EtcdStore};
use rampart_store::{EventKind, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_tls() {
    let tls = cluster::TlsFiles::generate();
    let cluster = cluster::Cluster::start(1, Some(&tls)).await;
    assert!(cluster.endpoints()[0].starts_with("https://"));
    let mut config = EtcdConfig::new(cluster.endpoints(), "/rampart/tls/");
    config.ca = Some(tls.path("ca.pem"));
    config.cert = Some(tls.path("client.pem"));
    config.key = Some(tls.path("client.key"));
    let store = EtcdStore::connect(config.clone()).await.unwrap();
    let mut watch = store.watch("nodes/", None).await.unwrap();
    store.put("nodes/a", b"up".to_vec(), None).await.unwrap();
    assert_eq!(store.get("nodes/a").await.unwrap().unwrap().value, b"up");
    assert_eq!(watch.next().await.unwrap().kind, EventKind::Put);

    // Without a client certificate the members refuse the connection.
    let mut anonymous = config.clone();
    (anonymous.cert, anonymous.key) = (None, None);
    anonymous.request_timeout = Duration::from_millis(500);
    let refused = EtcdStore::connect(anonymous).await;
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
    // Nor is a member trusted without the CA that signed it.
    let mut unverified = config;
    unverified.ca = None;
    unverified.request_timeout = Duration::from_millis(500);
    assert!(EtcdStore::connect(unverified).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_confined_to_its_prefix() {
    let cluster = cluster::Cluster::start(1, None).await;
    let mut root = cluster.client().await;
    root.user_add("root", "root-password", None).await.unwrap();
    root.user_grant_role("root", "root").await.unwrap();
    root.role_add("rampart-a").await.unwrap();
    root.role_grant_permission("rampart-a", Permission::read_write("/rampart/a/").with_prefix())
        .await
        .unwrap();
    root.user_add("gateway-a", "gateway-password", None).await.unwrap();
    root.user_grant_role("gateway-a", "rampart-a").await.unwrap();
    root.auth_enable().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("etcd.password");
    std::fs::write(&password_file, "gateway-password\n").unwrap();
    // A password others may read is refused before etcd is asked.
    let mut config = EtcdConfig::new(cluster.endpoints(), "/rampart/a/");
    config.user = Some("gateway-a".into());
    config.password_file = Some(password_file.clone());
    let err = EtcdStore::connect(config.clone()).await.err().unwrap().to_string();
    assert!(err.contains("password_file") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store: Arc<dyn Store> = Arc::new(EtcdStore::connect(config.clone()).await.unwrap());
    suite::basic_operations(store.clone()).await;
    suite::leases_expire_with_their_keys(store.clone()).await;

    // Outside its prefix the same user is refused by etcd itself.
    let mut outside = config.clone();
    outside.prefix = "/rampart/b/".into();
    let refused = EtcdStore::connect(outside).await;
    assert!(matches!(refused, Err(StoreError::Forbidden { .. })), "{refused:?}");
    // A wrong password connects nowhere.
    let mut wrong = config;
    wrong.password_file = None;
    wrong.password = Some("guess".into());
    wrong.request_timeout = Duration::from_millis(500);
    assert!(EtcdStore::connect(wrong).await.is_err());
    // The keys really are under the prefix in etcd.
    let mut root = etcd_client::Client::connect(
        cluster.endpoints(),
        Some(etcd_client::ConnectOptions::new().with_user("root", "root-password")),
    )
    .await
    .unwrap();
    let b1 = root.get("/rampart/a/b/1", None).await.unwrap();
    assert_eq!(b1.kvs()[0].value(), b"other");
}

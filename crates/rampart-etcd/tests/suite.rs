//! The shared store suite (the one the embedded backend passes) on a real 3-member etcd
//! cluster, each part under its own prefix so the parts never see each other's keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod cluster;
#[path = "../../rampart-store/tests/suite/mod.rs"]
mod suite;

use std::sync::Arc;

use rampart_etcd::{EtcdConfig, EtcdStore};
use rampart_store::Store;

async fn store(cluster: &cluster::Cluster, part: &str) -> Arc<dyn Store> {
    let config = EtcdConfig::new(cluster.endpoints(), format!("/rampart/suite/{part}/"));
    Arc::new(EtcdStore::connect(config).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_suite_on_a_three_member_cluster() {
    let cluster = cluster::Cluster::start(3, None).await;
    tokio::join!(
        suite::basic_operations(store(&cluster, "basic").await),
        suite::compare_and_set_under_contention(store(&cluster, "cas").await),
        suite::leases_expire_with_their_keys(store(&cluster, "leases").await),
        suite::watch_sees_every_change_in_order(store(&cluster, "watch").await),
        suite::acl_limits_a_principal_to_its_grants(store(&cluster, "acl").await),
        suite::a_large_range_is_whole_and_in_order(store(&cluster, "range").await),
    );
}

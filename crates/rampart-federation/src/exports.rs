//! Which of this network's services each peer may call: `exports/<peer>/<service>` in the
//! registry. Nothing is exported by default. An export names a service; the gateway offers it
//! to the peer only while a local node hosts it, so a service imported from another peer is
//! never passed on, and loops cannot form by construction.

use rampart_auth::ServiceName;
use rampart_pki::TrustDomain;
use rampart_store::Store;

use crate::peers::{PEERS_PREFIX, PeerError};

/// Where exports are kept.
pub const EXPORTS_PREFIX: &str = "exports/";

fn prefix(peer: &TrustDomain) -> String {
    format!("{EXPORTS_PREFIX}{peer}/")
}

/// Lets `peer` (a known peer) call `service`. Exporting it again changes nothing.
pub async fn export(store: &dyn Store, peer: &TrustDomain, service: &ServiceName) -> Result<(), PeerError> {
    if store.get(&format!("{PEERS_PREFIX}{peer}")).await?.is_none() {
        return Err(PeerError::NoSuchPeer(peer.to_string()));
    }
    store.put(&format!("{}{}", prefix(peer), service.as_str()), b"{}".to_vec(), None).await?;
    Ok(())
}

/// Stops letting `peer` call `service`; `false` when it was not exported.
pub async fn unexport(
    store: &dyn Store,
    peer: &TrustDomain,
    service: &ServiceName,
) -> Result<bool, PeerError> {
    Ok(store.delete(&format!("{}{}", prefix(peer), service.as_str())).await?)
}

/// The services exported to `peer`, sorted.
pub async fn to(store: &dyn Store, peer: &TrustDomain) -> Result<Vec<String>, PeerError> {
    let p = prefix(peer);
    let mut names: Vec<String> = store
        .range(&p)
        .await?
        .into_iter()
        .filter_map(|kv| kv.key.strip_prefix(&p).map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Forgets every export to `peer` (when it is removed).
pub async fn forget(store: &dyn Store, peer: &TrustDomain) -> Result<(), PeerError> {
    store.delete_prefix(&prefix(peer)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn only_a_known_peer_gets_exports_and_each_peer_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = rampart_store::EmbeddedStore::open(&dir.path().join("r.redb")).unwrap();
        let (west, north) = (TrustDomain::new("west").unwrap(), TrustDomain::new("north").unwrap());
        let hello = ServiceName::parse("hello").unwrap();
        assert!(matches!(export(&store, &west, &hello).await, Err(PeerError::NoSuchPeer(_))));
        for peer in [&west, &north] {
            store.put(&format!("{PEERS_PREFIX}{peer}"), b"{}".to_vec(), None).await.unwrap();
        }
        export(&store, &west, &hello).await.unwrap();
        export(&store, &west, &hello).await.unwrap();
        export(&store, &west, &ServiceName::parse("echo").unwrap()).await.unwrap();
        assert_eq!(to(&store, &west).await.unwrap(), ["echo", "hello"]);
        assert!(to(&store, &north).await.unwrap().is_empty());
        assert!(unexport(&store, &west, &hello).await.unwrap());
        assert!(!unexport(&store, &west, &hello).await.unwrap());
        forget(&store, &west).await.unwrap();
        assert!(to(&store, &west).await.unwrap().is_empty());
    }
}

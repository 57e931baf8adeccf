//! The peer networks this network trusts, in the registry under `peers/<domain>` (so every
//! gateway of a shared registry knows them): each one's trust domain, CA bundle (as PEM, with
//! its fingerprint) and gateway URLs. Trust is one-way: adding a peer lets it be called; the
//! peer adds this network for the other direction.

use rampart_pki::TrustDomain;
use rampart_pki::bundle::{Bundle, BundleError};
use rampart_store::{Expect, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Where peers are kept.
pub const PEERS_PREFIX: &str = "peers/";
/// Most gateway URLs of one peer.
const MAX_URLS: usize = 16;

/// Why a peer was refused or could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer is this network.
    #[error("{0:?} is this network's own trust domain")]
    OwnDomain(String),
    /// A URL that is not `https://HOST:PORT`.
    #[error("{0:?}: a peer's gateway is reached at https://HOST:PORT")]
    BadUrl(String),
    /// No URL, or too many.
    #[error("a peer needs 1 to {MAX_URLS} gateway URLs")]
    UrlCount,
    /// The bundle does not parse.
    #[error("the peer's CA bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The bundle is not the one the operator was told of.
    #[error("the bundle's fingerprint is {found}, not {expected}: refusing to trust it")]
    FingerprintMismatch {
        /// What the operator gave.
        expected: String,
        /// What the bundle has.
        found: String,
    },
    /// The peer is known already.
    #[error("peer {0:?} is known already (remove it first to change it)")]
    Exists(String),
    /// No such peer.
    #[error("no peer {0:?}")]
    NoSuchPeer(String),
    /// The registry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A damaged record.
    #[error("{key}: damaged peer record: {reason}")]
    Corrupt {
        /// The record.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// A peer network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its trust domain: its identities are `spiffe://<domain>/…`.
    pub domain: TrustDomain,
    /// Its gateways, tried in turn.
    pub urls: Vec<String>,
    /// Its CA bundle, PEM.
    pub bundle: String,
    /// The bundle's fingerprint (`sha256:…`).
    pub fingerprint: String,
    /// When it was added, seconds since the Unix epoch.
    pub added: u64,
}

impl Peer {
    /// A peer `domain` at `urls` trusted through `bundle`, checked: not `own` domain, URLs
    /// `https://`, the bundle CA certificates, and of `fingerprint` when one is given.
    pub fn new(
        own: &TrustDomain,
        domain: TrustDomain,
        urls: Vec<String>,
        bundle: &[u8],
        fingerprint: Option<&str>,
        now: u64,
    ) -> Result<Self, PeerError> {
        if domain == *own {
            return Err(PeerError::OwnDomain(domain.to_string()));
        }
        if urls.is_empty() || urls.len() > MAX_URLS {
            return Err(PeerError::UrlCount);
        }
        for u in &urls {
            let ok = u
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', ' ']));
            if !ok {
                return Err(PeerError::BadUrl(u.clone()));
            }
        }
        let parsed = Bundle::parse(bundle)?;
        let found = parsed.fingerprint();
        if let Some(expected) = fingerprint {
            let expected = rampart_pki::bundle::Fingerprint::parse(expected)?;
            if expected != found {
                return Err(PeerError::FingerprintMismatch {
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok(Peer { domain, urls, bundle: parsed.to_pem(), fingerprint: found.to_string(), added: now })
    }
}

fn key(domain: &TrustDomain) -> String {
    format!("{PEERS_PREFIX}{domain}")
}

/// Records a new peer; refuses one known already.
pub async fn add(store: &dyn Store, peer: &Peer) -> Result<(), PeerError> {
    let bytes = serde_json::to_vec(peer)
        .map_err(|e| PeerError::Corrupt { key: key(&peer.domain), reason: e.to_string() })?;
    let out = store.compare_and_set(&key(&peer.domain), Expect::Absent, Some(bytes), None).await?;
    if out.succeeded { Ok(()) } else { Err(PeerError::Exists(peer.domain.to_string())) }
}

/// Every peer, by domain.
pub async fn list(store: &dyn Store) -> Result<Vec<Peer>, PeerError> {
    store
        .range(PEERS_PREFIX)
        .await?
        .into_iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value)
                .map_err(|e| PeerError::Corrupt { key: kv.key, reason: e.to_string() })
        })
        .collect()
}

/// Replaces the bundle of peer `domain` with `bundle` (a rotation the peer announced, fetched
/// over the channel its current bundle verifies). `false` when the record already holds it, or
/// changed meanwhile (another gateway of this network wrote first: its word stands).
pub async fn replace_bundle(
    store: &dyn Store,
    domain: &TrustDomain,
    bundle: &Bundle,
) -> Result<bool, PeerError> {
    let k = key(domain);
    let Some(kv) = store.get(&k).await? else { return Err(PeerError::NoSuchPeer(domain.to_string())) };
    let mut peer: Peer = serde_json::from_slice(&kv.value)
        .map_err(|e| PeerError::Corrupt { key: k.clone(), reason: e.to_string() })?;
    let fingerprint = bundle.fingerprint().to_string();
    if peer.fingerprint == fingerprint {
        return Ok(false);
    }
    (peer.bundle, peer.fingerprint) = (bundle.to_pem(), fingerprint);
    let bytes = serde_json::to_vec(&peer)
        .map_err(|e| PeerError::Corrupt { key: k.clone(), reason: e.to_string() })?;
    let out = store.compare_and_set(&k, Expect::ModRevision(kv.mod_revision), Some(bytes), None).await?;
    Ok(out.succeeded)
}

/// Forgets a peer.
pub async fn remove(store: &dyn Store, domain: &TrustDomain) -> Result<(), PeerError> {
    if store.delete(&key(domain)).await? { Ok(()) } else { Err(PeerError::NoSuchPeer(domain.to_string())) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bundle() -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let pki = rampart_pki::Pki::new(dir.path());
        let west = TrustDomain::new("west").unwrap();
        pki.create_domain(&west, &rampart_pki::CaOptions::default(), false).unwrap();
        let b = rampart_pki::bundle::of_domain(&pki, &west).unwrap();
        (b.to_pem(), b.fingerprint().to_string())
    }

    #[tokio::test]
    async fn a_peer_is_checked_kept_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = rampart_store::EmbeddedStore::open(&dir.path().join("r.redb")).unwrap();
        let (east, west) = (TrustDomain::new("east").unwrap(), TrustDomain::new("west").unwrap());
        let (pem, fp) = bundle();
        let urls = vec!["https://127.0.0.1:9443".to_owned()];
        let new = |domain: &TrustDomain, urls: Vec<String>, fp: Option<&str>| {
            Peer::new(&east, domain.clone(), urls, pem.as_bytes(), fp, 1)
        };
        assert!(matches!(new(&east, urls.clone(), None), Err(PeerError::OwnDomain(_))));
        assert!(matches!(new(&west, vec!["http://x:1".into()], None), Err(PeerError::BadUrl(_))));
        assert!(matches!(new(&west, vec![], None), Err(PeerError::UrlCount)));
        let other = "sha256:".to_owned() + &"0".repeat(64);
        assert!(matches!(new(&west, urls.clone(), Some(&other)), Err(PeerError::FingerprintMismatch { .. })));
        let peer = new(&west, urls.clone(), Some(&fp)).unwrap();
        assert_eq!(peer.fingerprint, fp);
        add(&store, &peer).await.unwrap();
        assert!(matches!(add(&store, &peer).await, Err(PeerError::Exists(_))));
        assert_eq!(list(&store).await.unwrap(), vec![peer.clone()]);
        // A rotation: the record takes the new bundle once.
        let (rotated, _) = bundle();
        let rotated = Bundle::parse(rotated.as_bytes()).unwrap();
        assert!(replace_bundle(&store, &west, &rotated).await.unwrap());
        assert!(!replace_bundle(&store, &west, &rotated).await.unwrap());
        assert_eq!(list(&store).await.unwrap()[0].fingerprint, rotated.fingerprint().to_string());
        remove(&store, &west).await.unwrap();
        assert!(matches!(remove(&store, &west).await, Err(PeerError::NoSuchPeer(_))));
        assert!(matches!(replace_bundle(&store, &west, &rotated).await, Err(PeerError::NoSuchPeer(_))));
        assert!(list(&store).await.unwrap().is_empty());
    }
}

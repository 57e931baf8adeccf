#![allow(clippy::unwrap_used)]

use std::path::Path;

use rampart_net::tls::LiveIdentity;
use rampart_pki::{EntityName, Pki, Role, TrustDomain};
use rampart_store::{EmbeddedStore, Store};

use super::*;

const WEST: &str = "west@127.0.0.1:9";

/// East's federation in `dir`, with west as its one peer (at a port nothing answers on).
async fn east_with_west(dir: &Path) -> (Pki, Arc<TlsMaterial>, Federation, Arc<dyn Store>) {
    let pki = Pki::new(dir.join("pki"));
    let (east, west) = (TrustDomain::new("east").unwrap(), TrustDomain::new("west").unwrap());
    for domain in [&east, &west] {
        pki.create_domain(domain, &Default::default(), false).unwrap();
    }
    let issued =
        pki.ensure_issued(&east, Role::Gateway, &EntityName::new("gateway").unwrap()).unwrap().unwrap();
    let ca = pki.open(&east).unwrap().ca_path();
    let material =
        Arc::new(TlsMaterial::load(east.clone(), &ca, &issued.cert_path, &issued.key_path, None).unwrap());
    let federation =
        Federation::new(east.clone(), material.clone(), TrustDomains::default(), &Default::default())
            .unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("registry.redb")).unwrap());
    let bundle = rampart_pki::bundle::of_domain(&pki, &west).unwrap().to_pem();
    let peer =
        Peer::new(&east, west, vec!["https://127.0.0.1:9".into()], bundle.as_bytes(), None, 0).unwrap();
    peers::add(store.as_ref(), &peer).await.unwrap();
    federation.reload(store.as_ref()).await.unwrap();
    (pki, material, federation, store)
}

/// A request signed by the link of before a renewal is sent by that link's client, not by
/// the link the reload made meanwhile: its assertion matches its connection's certificate.
#[tokio::test]
async fn a_request_goes_out_on_the_link_that_signed_it_across_a_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, material, federation, store) = east_with_west(dir.path()).await;
    let before = federation.link_of(WEST).unwrap();
    let signed = || {
        let mut req = Request::new(rampart_net::full(bytes::Bytes::new()));
        *req.uri_mut() = "https://127.0.0.1:9/echo/".parse().unwrap();
        req
    };
    let mut in_flight = signed();
    in_flight.extensions_mut().insert(outbound::SignedBy(before.clone()));

    // The gateway's certificate renewed, and the links made again with it.
    let name = EntityName::new("gateway").unwrap();
    let renewed = pki.open(&material.domain).unwrap().renew(&name, None, None).unwrap();
    let fresh = LiveIdentity::load(&renewed.cert_path, &renewed.key_path).unwrap();
    material.identity.replace(fresh.certified().cert.clone(), fresh.key()).unwrap();
    assert!(federation.identity_changed());
    federation.reload(store.as_ref()).await.unwrap();
    let after = federation.link_of(WEST).unwrap();
    assert!(!Arc::ptr_eq(&before, &after), "the renewal made a new link");

    assert!(Arc::ptr_eq(&federation.link_for(&in_flight).unwrap(), &before), "sent by its signer's link");
    assert!(Arc::ptr_eq(&federation.link_for(&signed()).unwrap(), &after), "unsigned: by the URI's peer");
    let mut elsewhere = signed();
    *elsewhere.uri_mut() = "https://127.0.0.1:10/echo/".parse().unwrap();
    assert!(federation.link_for(&elsewhere).is_none(), "no peer's gateway");
}

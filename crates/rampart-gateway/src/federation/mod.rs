//! Peer networks, as this gateway sees them: whom it trusts (each peer's bundle in the front
//! door's [`TrustDomains`]), what it exports to each, what each exports to it (its catalog,
//! [`catalog`]), and how a request reaches one (this module is an [`Upstreams`] source whose
//! targets are the peers' gateway URLs, and the [`Transport`] to them: one pooled mTLS client
//! per peer, verifying it against that peer's bundle alone).
//!
//! - [`catalog`]: serving ours to a peer, and asking each peer for its own (the heartbeat);
//! - [`inbound`]: a request a peer's gateway forwards here: its assertion, our exports, loops;
//! - [`outbound`]: the request this gateway forwards to a peer, with its assertion.
//!
//! Peers and exports are followed in the registry (`peers/`, `exports/`): a change takes effect
//! on running gateways without a restart.

pub mod catalog;
pub mod inbound;
pub mod outbound;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::Request;
use rampart_events::EventKind;
use rampart_federation::assertion::{Signer, Verifier};
use rampart_federation::{Peer, exports, peers};
use rampart_net::client::HttpsClient;
use rampart_net::trust::TrustDomains;
use rampart_net::{Body, TlsMaterial};
use rampart_pki::TrustDomain;
use rampart_pki::bundle::Bundle;
use rampart_store::Store;

use crate::upstream::{HealthBoard, NodeHealth, SendError, Sent, Target, Transport, Upstreams};

/// Most unexpired assertion ids remembered (the replay guard of peers' requests).
const ASSERTION_GUARD: usize = 200_000;

/// One peer network: its record, the client that reaches it, one target per gateway URL, and
/// what its catalog said last.
pub(crate) struct Link {
    pub(crate) peer: Peer,
    /// What this link presents and signs with: one snapshot of the gateway's certificate, so
    /// that an assertion always matches the certificate of the connection it travels on.
    identity: Arc<rustls::sign::CertifiedKey>,
    signer: Signer,
    client: HttpsClient,
    targets: Arc<[Target]>,
    pub(crate) catalog: Mutex<CatalogState>,
}

/// What a peer's catalog said last, and when.
#[derive(Clone, Debug, Default)]
pub(crate) struct CatalogState {
    /// The services it exports to us.
    pub(crate) services: BTreeSet<String>,
    /// When it last answered.
    pub(crate) answered: Option<Instant>,
    /// Whether it is up (answered within the staleness limit).
    pub(crate) up: bool,
    /// The fingerprint of the bundle it serves, as its catalog said.
    pub(crate) bundle: Option<String>,
}

/// The federation of this gateway.
pub struct Federation {
    local: TrustDomain,
    material: Arc<TlsMaterial>,
    connect_timeout: Duration,
    /// Peers' bundles, one root store per domain: what the front door verifies peer gateways by.
    trust: TrustDomains,
    links: ArcSwap<HashMap<TrustDomain, Arc<Link>>>,
    exports: ArcSwap<HashMap<TrustDomain, BTreeSet<String>>>,
    pub(crate) verifier: Verifier,
    board: HealthBoard,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<String> = self.links.load().keys().map(ToString::to_string).collect();
        f.debug_struct("Federation")
            .field("local", &self.local)
            .field("peers", &peers)
            .finish_non_exhaustive()
    }
}

/// Why federation could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The gateway's certificate carries no identity.
    #[error("the gateway's certificate carries no spiffe:// identity")]
    NoIdentity,
    /// Its key cannot sign assertions.
    #[error(transparent)]
    Key(#[from] rampart_federation::assertion::SignError),
}

impl Federation {
    /// Federation for the gateway of `local` holding `material` (its certificate signs
    /// assertions and is presented to peers); `trust` is the front door's per-domain trust,
    /// which this keeps equal to the peers' bundles.
    pub fn new(
        local: TrustDomain,
        material: Arc<TlsMaterial>,
        trust: TrustDomains,
        config: &crate::GatewayConfig,
    ) -> Result<Self, FederationError> {
        // Checked now, so that a gateway that could not sign says so at start.
        signer_of(&material.identity)?;
        Ok(Federation {
            verifier: Verifier::new(local.clone(), config.max_chain, ASSERTION_GUARD),
            local,
            material,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            trust,
            links: Default::default(),
            exports: Default::default(),
            board: HealthBoard::default(),
        })
    }

    /// The peer networks now.
    pub(crate) fn links(&self) -> Arc<HashMap<TrustDomain, Arc<Link>>> {
        self.links.load_full()
    }

    /// The services exported to `peer`.
    pub(crate) fn exported_to(&self, peer: &TrustDomain) -> BTreeSet<String> {
        self.exports.load().get(peer).cloned().unwrap_or_default()
    }

    /// Whether `service` is exported to `peer` (per request: no copy of the set).
    pub(crate) fn exports_to(&self, peer: &TrustDomain, service: &str) -> bool {
        self.exports.load().get(peer).is_some_and(|s| s.contains(service))
    }

    /// Whether some peer's catalog offers `service`.
    pub(crate) fn imports(&self, service: &str) -> bool {
        self.links.load().values().any(|l| lock(&l.catalog).services.contains(service))
    }

    /// Reads peers and exports from the registry and applies them: new peers get a client and
    /// their bundle is trusted, changed ones are rebuilt, removed ones forgotten.
    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<(), rampart_federation::PeerError> {
        let listed = peers::list(store).await?;
        let mut exported = HashMap::new();
        let old = self.links.load_full();
        let mut links = HashMap::new();
        for peer in listed {
            exported
                .insert(peer.domain.clone(), exports::to(store, &peer.domain).await?.into_iter().collect());
            let current = self.material.identity.certified();
            if let Some(link) =
                old.get(&peer.domain).filter(|l| l.peer == peer && Arc::ptr_eq(&l.identity, &current))
            {
                links.insert(peer.domain.clone(), link.clone());
                continue;
            }
            // A changed record (new URLs, a rotated bundle) keeps what the catalog said: the peer
            // stays up while the new link is made, and its next answer refreshes it.
            let said = old.get(&peer.domain).map(|l| lock(&l.catalog).clone());
            match self.link(peer, said.unwrap_or_default()) {
                Ok(link) => drop(links.insert(link.peer.domain.clone(), Arc::new(link))),
                Err(e) => tracing::warn!("peer not usable: {e}"),
            }
        }
        for gone in old.keys().filter(|d| !links.contains_key(*d)) {
            self.trust.remove(gone);
        }
        self.exports.store(Arc::new(exported));
        self.links.store(Arc::new(links));
        Ok(())
    }

    /// A link to `peer`: its bundle trusted (for its gateways calling us) and a client to it.
    fn link(&self, peer: Peer, catalog: CatalogState) -> Result<Link, String> {
        let bundle = Bundle::parse(peer.bundle.as_bytes()).map_err(|e| format!("{}: {e}", peer.domain))?;
        self.trust.set(&peer.domain, &bundle).map_err(|e| format!("{}: {e}", peer.domain))?;
        let identity = self.material.identity.snapshot();
        let signer = signer_of(&identity).map_err(|e| format!("{}: {e}", peer.domain))?;
        let tls = rampart_net::tls::peer_client_config(&identity, &peer.domain, &bundle)
            .map_err(|e| format!("{}: {e}", peer.domain))?;
        let client = rampart_net::client::https_client(tls, self.connect_timeout);
        let targets: Arc<[Target]> = peer
            .urls
            .iter()
            .map(|url| {
                let authority = url.trim_start_matches("https://");
                let name = format!("{}@{authority}", peer.domain);
                Target {
                    addr: authority.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                    health: self.board.get(&name),
                    name,
                }
            })
            .collect();
        Ok(Link {
            peer,
            identity: identity.certified(),
            signer,
            client,
            targets,
            catalog: Mutex::new(catalog),
        })
    }

    /// The link whose gateway `target` is (`<domain>@<host:port>`).
    pub(crate) fn link_of(&self, target: &str) -> Option<Arc<Link>> {
        let domain = target.split('@').next()?;
        self.links.load().values().find(|l| l.peer.domain.as_str() == domain).cloned()
    }

    /// The URL authority of a peer target (`west@host:port` → `host:port`).
    pub(crate) fn authority(target: &Target) -> &str {
        target.name.split_once('@').map_or("", |(_, a)| a)
    }

    /// Whether the gateway's certificate changed since the links were made (they are then
    /// made again, presenting and signing with the new one).
    fn identity_changed(&self) -> bool {
        let current = self.material.identity.certified();
        self.links.load().values().any(|l| !Arc::ptr_eq(&l.identity, &current))
    }
}

impl Link {
    /// Signs this link's assertions (with the key its connections present).
    pub(crate) fn signer(&self) -> &Signer {
        &self.signer
    }
}

/// The signer of assertions made with `identity`'s certificate and key.
fn signer_of(identity: &rampart_net::tls::LiveIdentity) -> Result<Signer, FederationError> {
    let id = rampart_pki::presented::presented(identity.leaf().as_ref())
        .ok()
        .and_then(|p| p.identity)
        .ok_or(FederationError::NoIdentity)?;
    let pkcs8 = match identity.key() {
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => Vec::new(),
    };
    Ok(Signer::new(id, &pkcs8)?)
}

/// The lock, even if a holder panicked (the state it guards stays consistent per field).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Upstreams for Federation {
    fn knows(&self, service: &str) -> bool {
        self.imports(service)
    }

    /// The gateways of the peers that are up and export `service` to us.
    fn targets(&self, service: &str) -> Arc<[Target]> {
        let links = self.links.load();
        let mut out = Vec::new();
        for link in links.values() {
            let c = lock(&link.catalog);
            if c.up && c.services.contains(service) {
                out.extend(link.targets.iter().cloned());
            }
        }
        out.into()
    }

    fn peers_of(&self, target: &str) -> Vec<Arc<NodeHealth>> {
        self.link_of(target).map(|l| l.targets.iter().map(|t| t.health.clone()).collect()).unwrap_or_default()
    }

    fn board(&self) -> &HealthBoard {
        &self.board
    }

    fn describe(&self, target: &Target) -> String {
        format!(
            "the gateway {} of peer network {}",
            Federation::authority(target),
            target.name.split('@').next().unwrap_or("")
        )
    }

    /// A peer network none of whose gateways could be reached is unavailable for now: 503 with
    /// `Retry-After`, as when it is known to be down.
    fn unreachable(&self, target: &Target) -> http::Response<Body> {
        crate::reply::unavailable(&format!("{} could not be reached", self.describe(target)))
    }
}

/// Requests to peers go through the client of the link that sent them (`link_for`).
impl Transport for Federation {
    fn send(&self, req: Request<Body>) -> Sent {
        match self.link_for(&req) {
            Some(link) => Transport::send(&link.client, req),
            None => {
                let authority = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                Box::pin(async move {
                    Err(SendError {
                        maybe_sent: false,
                        refused_certificate: None,
                        detail: format!("{authority} is no peer's gateway any more"),
                    })
                })
            }
        }
    }
}

impl Federation {
    /// The link whose key signed `req`'s assertion (a reload between signing and sending must
    /// not put one key's assertion on another key's connection), else the one of the peer
    /// whose gateway the URI names.
    fn link_for(&self, req: &Request<Body>) -> Option<Arc<Link>> {
        if let Some(signed) = req.extensions().get::<outbound::SignedBy>() {
            return Some(signed.0.clone());
        }
        let authority = req.uri().authority()?.as_str();
        self.links
            .load()
            .values()
            .find(|l| l.targets.iter().any(|t| Federation::authority(t) == authority))
            .cloned()
    }
}

/// What happens to peers' gateways, as events of their own (a peer's gateway is no node).
pub(crate) struct PeerGateways<'a>(pub(crate) &'a crate::State);

impl crate::upstream::TargetEvents for PeerGateways<'_> {
    fn rejoined(&self, target: &str, why: &str) {
        self.event(EventKind::PeerGatewayRejoined, target, why);
    }

    fn ejected(&self, target: &str, why: &str) {
        self.0.metrics.ejections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.event(EventKind::PeerGatewayEjected, target, why);
    }

    fn certificate_refused(&self, target: &str, why: &str) {
        self.event(EventKind::PeerCertificateRefused, target, why);
    }
}

impl PeerGateways<'_> {
    /// `target` is `<domain>@<host:port>`.
    fn event(&self, kind: EventKind, target: &str, why: &str) {
        let domain = target.split('@').next().unwrap_or(target);
        catalog::peer_event(self.0, kind, domain, &format!("{target}: {why}"));
    }
}

/// Keeps `federation` equal to the peers and exports in the registry.
pub(crate) async fn follow(federation: Arc<Federation>, store: Arc<dyn Store>) {
    loop {
        let watches =
            (store.watch(peers::PEERS_PREFIX, None).await, store.watch(exports::EXPORTS_PREFIX, None).await);
        if let Err(e) = federation.reload(store.as_ref()).await {
            tracing::warn!("reading peers: {e}");
        }
        let (Ok(mut peers_watch), Ok(mut exports_watch)) = watches else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        loop {
            let changed = tokio::select! {
                r = peers_watch.next() => r.is_ok(),
                r = exports_watch.next() => r.is_ok(),
                // A renewed certificate: the links are made again with it.
                () = identity_renewed(&federation) => true,
            };
            if !changed {
                break;
            }
            if let Err(e) = federation.reload(store.as_ref()).await {
                tracing::warn!("reading peers: {e}");
            }
        }
    }
}

/// Resolves once the gateway's certificate is not the one the links were made with.
async fn identity_renewed(federation: &Federation) {
    while !federation.identity_changed() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

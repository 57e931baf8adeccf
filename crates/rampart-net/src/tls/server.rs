//! Server configs: who may connect, their certificate verified against our CA and CRL (the
//! CRL swapped while serving), their role checked; at the front door, peer networks'
//! gateways against their own bundles.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_pki::{Role, SpiffeId, TrustDomain};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::{
    ClientAuth, TlsMaterial, check_id, check_identity, handshake_signature, identity_of, other_domain,
    provider,
};
use crate::error::{NetError, Result};
use crate::trust::TrustDomains;

/// ALPN protocols offered by every rampart server: HTTP/2 first.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// A server config. With `roles`, a client certificate must also carry one of these roles in
/// our trust domain, or the handshake fails.
pub fn server_config(m: &TlsMaterial, auth: ClientAuth, roles: Option<&[Role]>) -> Result<ServerConfig> {
    Ok(server_config_with_crl_updates(m, auth, roles)?.0)
}

/// [`server_config`], plus a handle that swaps in a new CRL while the server runs (so a
/// revocation takes effect without a restart; see [`follow_crl`]). No handle with
/// [`ClientAuth::Off`].
pub fn server_config_with_crl_updates(
    m: &TlsMaterial,
    auth: ClientAuth,
    roles: Option<&[Role]>,
) -> Result<(ServerConfig, Option<CrlUpdater>)> {
    server_config_of(m, auth, roles, None, Arc::new(m.identity.clone()))
}

/// The front door's config: [`server_config_with_crl_updates`] that also accepts the gateways
/// of peer networks, each certificate verified against the bundle of the domain it names
/// ([`TrustDomains`], changing while the server runs) and only with role `gateway`. Whatever
/// `auth` says, a peer gateway must present its certificate (with `Off`, none is asked).
pub fn front_door_config(
    m: &TlsMaterial,
    auth: ClientAuth,
    peers: &TrustDomains,
) -> Result<(ServerConfig, Option<CrlUpdater>)> {
    server_config_of(m, auth, None, Some(peers), Arc::new(m.identity.clone()))
}

/// [`front_door_config`] presenting the certificates of `certs` (by SNI) instead of `m`'s own:
/// a listener of the gateway with certificates of its own.
pub fn front_door_config_with(
    m: &TlsMaterial,
    auth: ClientAuth,
    peers: &TrustDomains,
    certs: super::ByServerName,
) -> Result<(ServerConfig, Option<CrlUpdater>)> {
    server_config_of(m, auth, None, Some(peers), Arc::new(certs))
}

fn server_config_of(
    m: &TlsMaterial,
    auth: ClientAuth,
    roles: Option<&[Role]>,
    peers: Option<&TrustDomains>,
    certs: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<(ServerConfig, Option<CrlUpdater>)> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let (builder, updater) = match auth {
        ClientAuth::Off => (builder.with_no_client_auth(), None),
        ClientAuth::Optional | ClientAuth::Required => {
            let optional = auth == ClientAuth::Optional;
            let first = build_client_verifier(&m.roots, optional, m.crls.clone())?;
            let hints = first.root_hint_subjects().to_vec();
            let inner = Arc::new(ArcSwap::from_pointee(first));
            let updater = CrlUpdater { roots: m.roots.clone(), optional, current: inner.clone() };
            let checked = RoleCheckedClient {
                inner,
                hints,
                domain: m.domain.clone(),
                roles: roles.map(<[Role]>::to_vec),
                peers: peers.map(|p| (p.clone(), p.client_verifier())),
            };
            (builder.with_client_cert_verifier(Arc::new(checked)), Some(updater))
        }
    };
    // The live identity: a renewed certificate is presented from the next handshake on.
    let mut config = builder.with_cert_resolver(certs);
    config.alpn_protocols = alpn();
    Ok((config, updater))
}

/// Swaps the CRL a running server checks client certificates against.
#[derive(Clone)]
pub struct CrlUpdater {
    roots: Arc<RootCertStore>,
    optional: bool,
    current: Arc<ArcSwap<Arc<dyn ClientCertVerifier>>>,
}

impl fmt::Debug for CrlUpdater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlUpdater").field("optional", &self.optional).finish_non_exhaustive()
    }
}

fn build_client_verifier(
    roots: &Arc<RootCertStore>,
    optional: bool,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut v = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider()).with_crls(crls);
    if optional {
        v = v.allow_unauthenticated();
    }
    v.build().map_err(|e| NetError::Tls(e.to_string()))
}

/// A check of client certificates whose handshake was done elsewhere (by a node, on a
/// passthrough route): each must chain to the trust domain's CA, be valid now and not be
/// revoked. Its CRL is followed like a listener's ([`follow_crl`]).
pub fn relayed_certificates(m: &TlsMaterial) -> Result<CrlUpdater> {
    let first = build_client_verifier(&m.roots, false, m.crls.clone())?;
    Ok(CrlUpdater {
        roots: m.roots.clone(),
        optional: false,
        current: Arc::new(ArcSwap::from_pointee(first)),
    })
}

impl CrlUpdater {
    /// Whether `cert` chains to the roots, is valid now and is not revoked (the signature of a
    /// handshake aside: whoever relays it vouches for that).
    pub fn check(&self, cert: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
        self.current.load().verify_client_cert(cert, &[], UnixTime::now()).map(|_| ())
    }

    /// Checks client certificates against `crls` from the next handshake on.
    pub fn update(&self, crls: Vec<CertificateRevocationListDer<'static>>) -> Result<()> {
        self.current.store(Arc::new(build_client_verifier(&self.roots, self.optional, crls)?));
        Ok(())
    }
}

/// Reloads `crl` into `updater` whenever the file changes (checked every `every`), until the
/// task is dropped (every CRL in the file: one per CA). A file that does not parse is logged
/// and the previous CRLs kept.
pub async fn follow_crl(crl: std::path::PathBuf, updater: CrlUpdater, every: std::time::Duration) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = modified(&crl);
    loop {
        tokio::time::sleep(every).await;
        let now = modified(&crl);
        if now == seen {
            continue;
        }
        seen = now;
        match super::crls_from(&crl) {
            Ok(crls) => match updater.update(crls) {
                Ok(()) => tracing::info!("reloaded the CRL {}", crl.display()),
                Err(e) => tracing::warn!("CRL {} refused, keeping the previous one: {e}", crl.display()),
            },
            Err(_) => tracing::warn!("CRL {} does not parse, keeping the previous one", crl.display()),
        }
    }
}

#[derive(Debug)]
struct RoleCheckedClient {
    inner: Arc<ArcSwap<Arc<dyn ClientCertVerifier>>>,
    /// The CA names clients are told about (the roots never change, only the CRL does).
    hints: Vec<DistinguishedName>,
    domain: TrustDomain,
    roles: Option<Vec<Role>>,
    /// Peer networks whose gateways may connect, and the verifier that checks each against
    /// its own domain's bundle.
    peers: Option<(TrustDomains, Arc<dyn ClientCertVerifier>)>,
}

impl RoleCheckedClient {
    /// The peer verifier, when `cert` names a peer network's identity.
    fn peer_of(&self, cert: &CertificateDer<'_>) -> Option<(SpiffeId, &Arc<dyn ClientCertVerifier>)> {
        let (domains, verifier) = self.peers.as_ref()?;
        let id = identity_of(cert).ok()?;
        (id.domain != self.domain && domains.knows(&id.domain)).then_some((id, verifier))
    }
}

impl ClientCertVerifier for RoleCheckedClient {
    fn offer_client_auth(&self) -> bool {
        self.inner.load().offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.load().client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        if let Some((id, peer)) = self.peer_of(end_entity) {
            // A peer network's gateway, against that network's bundle alone.
            let ok = peer.verify_client_cert(end_entity, intermediates, now)?;
            check_id(&id, &id.domain, &[Role::Gateway])?;
            return Ok(ok);
        }
        let ok = self
            .inner
            .load()
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| other_domain(end_entity, &self.domain, e))?;
        let all = Role::ALL;
        check_identity(end_entity, &self.domain, self.roles.as_deref().unwrap_or(&all))?;
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls12_signature(message, cert, dss).map_err(handshake_signature)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls13_signature(message, cert, dss).map_err(handshake_signature)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.load().supported_verify_schemes()
    }
}

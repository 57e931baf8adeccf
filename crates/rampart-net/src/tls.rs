//! TLS configurations for every rampart hop, built one way only: with ring as the crypto
//! provider, the trust domain's CA as the only root, its CRL loaded, and the peer's role checked
//! during the handshake (a user certificate can never pass as a node or a gateway).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_pki::{Role, SpiffeId, TrustDomain};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::error::{NetError, Result};
use crate::trust::TrustDomains;

/// The one crypto provider rampart uses, installed explicitly in every config.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a listener asks clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Never: clients authenticate by token or not at all.
    Off,
    /// Ask; a client may still connect without one (then it needs a token).
    #[default]
    Optional,
    /// A valid certificate of this trust domain is required to connect.
    Required,
}

impl FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(ClientAuth::Off),
            "optional" => Ok(ClientAuth::Optional),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!("{s:?} is not a client certificate mode (expected off, optional or required)")),
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::Off => "off",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        })
    }
}

/// What a TLS endpoint of a trust domain holds: its certificate and key, the domain's CA
/// and CRL.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The trust domain.
    pub domain: TrustDomain,
    /// Our certificate chain (just the leaf: the CA is the trust anchor).
    pub chain: Vec<CertificateDer<'static>>,
    /// Our private key.
    pub key: PrivateKeyDer<'static>,
    /// The domain's CA.
    pub roots: Arc<RootCertStore>,
    /// The domain's CRL, if there is one.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TlsMaterial {
    /// Loads PEM files. The key's contents never appear in an error.
    pub fn load(domain: TrustDomain, ca: &Path, cert: &Path, key: &Path, crl: Option<&Path>) -> Result<Self> {
        let bad = |path: &Path, what: &str| NetError::Tls(format!("{}: not a PEM {what}", path.display()));
        let mut roots = RootCertStore::empty();
        let ca_der = CertificateDer::from_pem_file(ca).map_err(|_| bad(ca, "certificate"))?;
        roots.add(ca_der).map_err(|e| NetError::Tls(format!("{}: {e}", ca.display())))?;
        let chain = vec![CertificateDer::from_pem_file(cert).map_err(|_| bad(cert, "certificate"))?];
        let key = PrivateKeyDer::from_pem_file(key).map_err(|_| bad(key, "private key"))?;
        let crls = match crl {
            Some(p) if p.exists() => {
                vec![CertificateRevocationListDer::from_pem_file(p).map_err(|_| bad(p, "CRL"))?]
            }
            _ => Vec::new(),
        };
        Ok(TlsMaterial { domain, chain, key, roots: Arc::new(roots), crls })
    }

    /// A client config presenting this certificate to servers of `server_roles` in our domain.
    pub fn client_config(&self, server_roles: &[Role]) -> Result<ClientConfig> {
        let identity = Some((self.chain.clone(), self.key.clone_key()));
        client_config(&self.domain, self.roots.clone(), self.crls.clone(), identity, server_roles)
    }

    /// Only the CA and CRL (a client with no certificate of its own, such as `rampart call
    /// --token`): `chain` is empty.
    #[allow(clippy::type_complexity)]
    pub fn load_roots(
        ca: &Path,
        crl: Option<&Path>,
    ) -> Result<(Arc<RootCertStore>, Vec<CertificateRevocationListDer<'static>>)> {
        let mut roots = RootCertStore::empty();
        let ca_der = CertificateDer::from_pem_file(ca)
            .map_err(|_| NetError::Tls(format!("{}: not a PEM certificate", ca.display())))?;
        roots.add(ca_der).map_err(|e| NetError::Tls(format!("{}: {e}", ca.display())))?;
        let crls = match crl {
            Some(p) if p.exists() => vec![
                CertificateRevocationListDer::from_pem_file(p)
                    .map_err(|_| NetError::Tls(format!("{}: not a PEM CRL", p.display())))?,
            ],
            _ => Vec::new(),
        };
        Ok((Arc::new(roots), crls))
    }
}

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
    server_config_of(m, auth, roles, None)
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
    server_config_of(m, auth, None, Some(peers))
}

fn server_config_of(
    m: &TlsMaterial,
    auth: ClientAuth,
    roles: Option<&[Role]>,
    peers: Option<&TrustDomains>,
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
    let mut config = builder
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
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

impl CrlUpdater {
    /// Checks client certificates against `crls` from the next handshake on.
    pub fn update(&self, crls: Vec<CertificateRevocationListDer<'static>>) -> Result<()> {
        self.current.store(Arc::new(build_client_verifier(&self.roots, self.optional, crls)?));
        Ok(())
    }
}

/// Reloads `crl` into `updater` whenever the file changes (checked every `every`), until the
/// task is dropped. A CRL that does not parse is logged and the previous one kept.
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
        match CertificateRevocationListDer::from_pem_file(&crl) {
            Ok(der) => match updater.update(vec![der]) {
                Ok(()) => tracing::info!("reloaded the CRL {}", crl.display()),
                Err(e) => tracing::warn!("CRL {} refused, keeping the previous one: {e}", crl.display()),
            },
            Err(_) => tracing::warn!("CRL {} does not parse, keeping the previous one", crl.display()),
        }
    }
}

/// A client config presenting our certificate (if any) and accepting only servers of our
/// trust domain whose certificate carries `server_role`.
pub fn client_config(
    domain: &TrustDomain,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    server_role: &[Role],
) -> Result<ClientConfig> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .with_crls(crls)
        .build()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let verifier = Arc::new(RoleCheckedServer {
        inner,
        domain: domain.clone(),
        roles: server_role.to_vec(),
        bound: None,
    });
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous() // only to install the role-checking wrapper around webpki's verifier
        .with_custom_certificate_verifier(verifier);
    // No ALPN here: the HTTP connector offers h2 and http/1.1 itself.
    match identity {
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain, key).map_err(|e| NetError::Tls(e.to_string()))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A client config for calling a peer network's gateways: our gateway certificate presented,
/// theirs verified against `bundle` (that network's CAs alone), with the names it serves and
/// the identity `spiffe://<peer>/gateway/…`.
pub fn peer_client_config(
    material: &TlsMaterial,
    peer: &TrustDomain,
    bundle: &rampart_pki::bundle::Bundle,
) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for der in bundle.certs() {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| NetError::Tls(e.to_string()))?;
    }
    let identity = Some((material.chain.clone(), material.key.clone_key()));
    client_config(peer, Arc::new(roots), Vec::new(), identity, &[Role::Gateway])
}

/// Which node names are registered at which address, as the registry says: the gateway keeps
/// it equal to its routing table, and its client to nodes accepts a node's certificate only when
/// that node is registered at the address it dialled.
///
/// This replaces the IP-address check of the certificate: a node's address is wherever it runs
/// (a pod's address changes on every restart), while its identity is what its certificate was
/// issued for, so the binding that matters is identity ↔ registered address. An address holds a
/// set of names because several nodes may share a host (on different ports).
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<ArcSwap<HashMap<IpAddr, Vec<String>>>>);

impl AddressBook {
    /// Replaces every entry with `entries` (address, node name).
    pub fn replace(&self, entries: impl IntoIterator<Item = (IpAddr, String)>) {
        let mut map: HashMap<IpAddr, Vec<String>> = HashMap::new();
        for (ip, name) in entries {
            map.entry(ip).or_default().push(name);
        }
        self.0.store(Arc::new(map));
    }

    /// Whether `name` is registered at `ip`.
    pub fn holds(&self, ip: IpAddr, name: &str) -> bool {
        self.0.load().get(&ip).is_some_and(|names| names.iter().any(|n| n == name))
    }
}

/// A client config presenting our certificate to servers of `role` in our domain whose identity
/// `book` lists at the address dialled (the gateway's client to nodes: see [`AddressBook`]).
/// The chain, validity and revocation are checked as everywhere; the IP and DNS names in the
/// certificate are not.
pub fn bound_client_config(material: &TlsMaterial, role: Role, book: AddressBook) -> Result<ClientConfig> {
    let inner = WebPkiServerVerifier::builder_with_provider(material.roots.clone(), provider())
        .with_crls(material.crls.clone())
        .build()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let verifier = Arc::new(RoleCheckedServer {
        inner,
        domain: material.domain.clone(),
        roles: vec![role],
        bound: Some(book),
    });
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous() // only to install the registry-binding wrapper around webpki's verifier
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))
}

/// Checks that an already chain-verified certificate carries an identity of `domain` with one
/// of `roles`.
fn check_identity(
    cert: &CertificateDer<'_>,
    domain: &TrustDomain,
    roles: &[Role],
) -> std::result::Result<(), rustls::Error> {
    check_id(&identity_of(cert).map_err(refuse)?, domain, roles)
}

/// Checks that an identity is of `domain` with one of `roles`.
fn check_id(id: &SpiffeId, domain: &TrustDomain, roles: &[Role]) -> std::result::Result<(), rustls::Error> {
    if id.domain != *domain {
        return Err(refuse(IdentityError::OtherDomain {
            presented: id.to_string(),
            expected: domain.as_str().to_owned(),
        }));
    }
    if !roles.contains(&id.role) {
        let want: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(refuse(IdentityError::WrongRole {
            presented: id.to_string(),
            role: id.role.as_str().to_owned(),
            allowed: want.join("/"),
        }));
    }
    Ok(())
}

/// The one `spiffe://` identity of a certificate (remembered: the principal of the same
/// handshake asks again).
fn identity_of(cert: &CertificateDer<'_>) -> std::result::Result<SpiffeId, IdentityError> {
    let presented = rampart_pki::presented::presented(cert.as_ref()).map_err(IdentityError::NoIdentity)?;
    presented.identity.ok_or_else(|| {
        IdentityError::NoIdentity(format!(
            "{} URI SANs where exactly one spiffe:// identity is required",
            presented.uris
        ))
    })
}

/// When a chain did not verify, whether the certificate names another trust domain: then it
/// is not an unknown CA but a certificate of the wrong environment, and said so.
fn other_domain(cert: &CertificateDer<'_>, domain: &TrustDomain, error: rustls::Error) -> rustls::Error {
    let unknown = matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)
    );
    match identity_of(cert) {
        Ok(id) if unknown && id.domain != *domain => refuse(IdentityError::OtherDomain {
            presented: id.to_string(),
            expected: domain.as_str().to_owned(),
        }),
        _ => error,
    }
}

/// A client whose handshake signature does not verify under its certificate's key: a key too
/// weak to be accepted, or a certificate presented without its key. Either way the identity
/// is unusable (and not an unknown CA, as the bare error would read).
fn handshake_signature(e: rustls::Error) -> rustls::Error {
    refuse(IdentityError::NoIdentity(format!("the handshake signature was refused ({e})")))
}

fn refuse(e: IdentityError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Why a certificate's identity was refused (its chain aside).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No single `spiffe://` identity (none, several, or a certificate that does not parse).
    #[error("no usable identity: {0}")]
    NoIdentity(String),
    /// An identity of another trust domain.
    #[error("{presented} is of another trust domain, not {expected:?}")]
    OtherDomain {
        /// The identity presented.
        presented: String,
        /// Our trust domain.
        expected: String,
    },
    /// A role that may not connect here.
    #[error("{presented} has role {role}; only {allowed} may connect here")]
    WrongRole {
        /// The identity presented.
        presented: String,
        /// Its role.
        role: String,
        /// The roles allowed.
        allowed: String,
    },
    /// A server whose identity the registry does not list at the address dialled.
    #[error("{presented} is not the node registered at {address}")]
    NotRegisteredHere {
        /// The identity presented.
        presented: String,
        /// The address dialled.
        address: String,
    },
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

#[derive(Debug)]
struct RoleCheckedServer {
    inner: Arc<WebPkiServerVerifier>,
    domain: TrustDomain,
    roles: Vec<Role>,
    /// When set, the server is accepted by the identity this book lists at the address dialled
    /// instead of by the names in its certificate (see [`AddressBook`]).
    bound: Option<AddressBook>,
}

impl RoleCheckedServer {
    /// The chain, validity and revocation by webpki, against a name the certificate itself
    /// carries (so that only the name check is left out, whatever order webpki checks in),
    /// then the identity the registry lists at the address dialled.
    fn verify_bound(
        &self,
        book: &AddressBook,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<(), rustls::Error> {
        let info = rampart_pki::inspect::cert_from_der(end_entity.as_ref())
            .map_err(|e| refuse(IdentityError::NoIdentity(e)))?;
        let own_name = match (info.ips.first(), info.dns.first()) {
            (Some(ip), _) => ServerName::IpAddress((*ip).into()),
            (None, Some(dns)) => ServerName::try_from(dns.clone())
                .map_err(|_| refuse(IdentityError::NoIdentity(format!("a bad DNS name {dns:?}"))))?,
            (None, None) => {
                let why = "a server certificate without a DNS name or address";
                return Err(refuse(IdentityError::NoIdentity(why.into())));
            }
        };
        self.inner
            .verify_server_cert(end_entity, intermediates, &own_name, ocsp_response, now)
            .map_err(|e| other_domain(end_entity, &self.domain, e))?;
        // Parsed once: the names above, the identity here.
        let id = info.identity.ok_or_else(|| {
            refuse(IdentityError::NoIdentity(format!(
                "{} URI SANs where exactly one spiffe:// identity is required",
                info.uris.len()
            )))
        })?;
        check_id(&id, &self.domain, &self.roles)?;
        let registered = match server_name {
            ServerName::IpAddress(ip) => book.holds(IpAddr::from(*ip), id.name.as_str()),
            _ => false,
        };
        if !registered {
            return Err(refuse(IdentityError::NotRegisteredHere {
                presented: id.to_string(),
                address: server_name.to_str().into_owned(),
            }));
        }
        Ok(())
    }
}

impl ServerCertVerifier for RoleCheckedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(book) = &self.bound {
            self.verify_bound(book, end_entity, intermediates, server_name, ocsp_response, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        let ok = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| other_domain(end_entity, &self.domain, e))?;
        check_identity(end_entity, &self.domain, &self.roles)?;
        Ok(ok)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client config that accepts any server certificate, for one purpose only: fetching a
/// document that is checked by its fingerprint once fetched (a peer's CA bundle, pinned by the
/// fingerprint its operator gave). Nothing else may be sent or believed over it.
pub fn unverified_client_config() -> Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous() // the fetched bundle is pinned by its fingerprint, not by this channel
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth())
}

/// Accepts any server certificate (the handshake's signatures are still checked).
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

//! Client configs: our certificate presented, the server's verified — a node's by the identity
//! the registry lists at the address dialled, a peer gateway's against that peer's bundle, and
//! (for one fetch pinned by fingerprint) nobody's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_pki::{Role, TrustDomain};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{
    IdentityError, LiveIdentity, TlsMaterial, check_id, check_identity, other_domain, provider, refuse,
};
use crate::error::{NetError, Result};

/// A client config presenting our certificate (if any) and accepting only servers of our
/// trust domain whose certificate carries `server_role`.
pub fn client_config(
    domain: &TrustDomain,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    identity: Option<LiveIdentity>,
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
    Ok(match identity {
        Some(identity) => builder.with_client_cert_resolver(Arc::new(identity)),
        None => builder.with_no_client_auth(),
    })
}

/// A client config for calling a peer network's gateways: our gateway certificate presented,
/// theirs verified against `bundle` (that network's CAs alone), with the names it serves and
/// the identity `spiffe://<peer>/gateway/…`.
pub fn peer_client_config(
    identity: &LiveIdentity,
    peer: &TrustDomain,
    bundle: &rampart_pki::bundle::Bundle,
) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for der in bundle.certs() {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| NetError::Tls(e.to_string()))?;
    }
    client_config(peer, Arc::new(roots), Vec::new(), Some(identity.clone()), &[Role::Gateway])
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
pub struct AddressBook(Arc<ArcSwap<HashMap<IpAddr, Names>>>);

/// The node names registered at one address.
type Names = Arc<[Arc<str>]>;

impl AddressBook {
    /// Replaces every entry with `entries` (address, node name).
    pub fn replace(&self, entries: impl IntoIterator<Item = (IpAddr, String)>) {
        let mut map: HashMap<IpAddr, Vec<Arc<str>>> = HashMap::new();
        for (ip, name) in entries {
            map.entry(ip).or_default().push(name.into());
        }
        self.0.store(Arc::new(map.into_iter().map(|(ip, names)| (ip, names.into())).collect()));
    }

    /// Takes the entries `left` out and puts `joined` in; the other addresses' entries are
    /// shared with the book before, so a registration costs the same in a book of ten nodes as
    /// in one of ten thousand.
    pub fn update<'a>(
        &self,
        left: impl IntoIterator<Item = (IpAddr, &'a str)>,
        joined: impl IntoIterator<Item = (IpAddr, &'a str)>,
    ) {
        let mut changed: HashMap<IpAddr, (Vec<&str>, Vec<&str>)> = HashMap::new();
        left.into_iter().for_each(|(ip, name)| changed.entry(ip).or_default().0.push(name));
        joined.into_iter().for_each(|(ip, name)| changed.entry(ip).or_default().1.push(name));
        if changed.is_empty() {
            return;
        }
        let mut map = HashMap::clone(&self.0.load());
        for (ip, (left, joined)) in changed {
            let kept =
                map.get(&ip).map_or(&[][..], |names| &names[..]).iter().filter(|n| !left.contains(&&***n));
            let names: Vec<Arc<str>> = kept.cloned().chain(joined.into_iter().map(Arc::from)).collect();
            if names.is_empty() {
                map.remove(&ip);
            } else {
                map.insert(ip, names.into());
            }
        }
        self.0.store(Arc::new(map));
    }

    /// Whether `name` is registered at `ip`.
    pub fn holds(&self, ip: IpAddr, name: &str) -> bool {
        self.0.load().get(&ip).is_some_and(|names| names.iter().any(|n| &**n == name))
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
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?
        .dangerous() // only to install the registry-binding wrapper around webpki's verifier
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(material.identity.clone())))
}

/// Checks that an already chain-verified certificate carries an identity of `domain` with one

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
        super::verify_tls12(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        super::verify_tls13(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_moves_only_the_names_it_is_given() {
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let book = AddressBook::default();
        book.replace([(a, "n1".to_owned()), (a, "n2".to_owned()), (b, "n3".to_owned())]);
        book.update([(a, "n2")], [(b, "n2")]);
        assert!(book.holds(a, "n1") && !book.holds(a, "n2"));
        assert!(book.holds(b, "n2") && book.holds(b, "n3"));
        book.update([(a, "n1")], []);
        assert!(!book.holds(a, "n1"));
        assert!(!book.0.load().contains_key(&a), "an address left empty is dropped");
        book.update([(b, "n9")], []);
        assert!(book.holds(b, "n2") && book.holds(b, "n3"), "a name never there takes nothing out");
    }
}

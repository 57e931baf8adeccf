//! TLS configurations for every rampart hop, built one way only: with ring as the crypto
//! provider, the trust domain's CA as the only root, its CRL loaded, and the peer's role checked
//! during the handshake (a user certificate can never pass as a node or a gateway).
//!
//! - here: the provider, the material a TLS endpoint holds, and the identity checks both sides
//!   share ([`IdentityError`]);
//! - `server`: server configs, which verify clients (their CRL swapped while serving);
//! - `client`: client configs, which verify servers (bound to the registry for nodes, to a
//!   peer's bundle for peer gateways).

mod client;
mod server;

pub use client::{
    AddressBook, bound_client_config, client_config, peer_client_config, unverified_client_config,
};
pub use server::{CrlUpdater, follow_crl, front_door_config, server_config, server_config_with_crl_updates};

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rampart_pki::{Role, SpiffeId, TrustDomain};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme,
};

use crate::error::{NetError, Result};

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

/// A TLS 1.2 handshake signature checked with the provider's algorithms (for verifiers that
/// have no webpki verifier to ask).
pub(crate) fn verify_tls12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
}

/// A TLS 1.3 handshake signature checked with the provider's algorithms.
pub(crate) fn verify_tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
}

/// The signature schemes the provider verifies.
pub(crate) fn verify_schemes() -> Vec<SignatureScheme> {
    provider().signature_verification_algorithms.supported_schemes()
}

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

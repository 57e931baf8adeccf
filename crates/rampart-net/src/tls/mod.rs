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
mod live;
mod server;
mod sni;

pub use client::{
    AddressBook, bound_client_config, client_config, peer_client_config, unverified_client_config,
};
pub use live::LiveIdentity;
pub use server::{
    CrlUpdater, follow_crl, front_door_config, front_door_config_with, relayed_certificates, server_config,
    server_config_with_crl_updates,
};
pub use sni::ByServerName;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rampart_pki::{Role, SpiffeId, TrustDomain};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
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

/// What a TLS endpoint of a trust domain holds: its certificate and key, the domain's CAs
/// and CRLs (one of each, or two of each while the CA rotates).
#[derive(Debug)]
pub struct TlsMaterial {
    /// The trust domain.
    pub domain: TrustDomain,
    /// Our certificate (just the leaf: the CA is the trust anchor) and key, replaced while
    /// serving when renewed.
    pub identity: LiveIdentity,
    /// The domain's CAs.
    pub roots: Arc<RootCertStore>,
    /// The domain's CRLs, if there are.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TlsMaterial {
    /// Loads PEM files. The key's contents never appear in an error.
    pub fn load(domain: TrustDomain, ca: &Path, cert: &Path, key: &Path, crl: Option<&Path>) -> Result<Self> {
        let (roots, crls) = TlsMaterial::load_roots(ca, crl)?;
        let identity = LiveIdentity::load(cert, key)?;
        Ok(TlsMaterial { domain, identity, roots, crls })
    }

    /// A client config presenting this certificate to servers of `server_roles` in our domain.
    pub fn client_config(&self, server_roles: &[Role]) -> Result<ClientConfig> {
        client_config(
            &self.domain,
            self.roots.clone(),
            self.crls.clone(),
            Some(self.identity.clone()),
            server_roles,
        )
    }

    /// Only the CA and CRL (a client with no certificate of its own, such as `rampart call
    /// --token`): `chain` is empty.
    #[allow(clippy::type_complexity)]
    pub fn load_roots(
        ca: &Path,
        crl: Option<&Path>,
    ) -> Result<(Arc<RootCertStore>, Vec<CertificateRevocationListDer<'static>>)> {
        let crls = match crl {
            Some(p) if p.exists() => crls_from(p)?,
            _ => Vec::new(),
        };
        Ok((Arc::new(roots_from(ca)?), crls))
    }
}

/// Every CA certificate in a PEM file, as roots: a CA being rotated has the new one beside the
/// old, and certificates of both verify. At least one.
pub fn roots_from(ca: &Path) -> Result<RootCertStore> {
    let bad = || NetError::Tls(format!("{}: not a PEM certificate", ca.display()));
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).map_err(|_| bad())? {
        roots.add(der.map_err(|_| bad())?).map_err(|e| NetError::Tls(format!("{}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(bad());
    }
    Ok(roots)
}

/// Every CRL in a PEM file (one per CA of the domain). At least one.
pub fn crls_from(crl: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bad = || NetError::Tls(format!("{}: not a PEM CRL", crl.display()));
    let crls = CertificateRevocationListDer::pem_file_iter(crl)
        .map_err(|_| bad())?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| bad())?;
    if crls.is_empty() {
        return Err(bad());
    }
    Ok(crls)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A CA, a client certificate it issues, and its CRL revoking `revoked` serial numbers.
    struct Ca {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        pem: String,
    }

    impl Ca {
        fn new(name: &str) -> Self {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
            let key = rcgen::KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            Ca { pem, issuer: rcgen::Issuer::new(params, key) }
        }

        fn issue(&self, serial: u64) -> CertificateDer<'static> {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.serial_number = Some(serial.into());
            params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://local/user/u".try_into().unwrap())];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            params.signed_by(&rcgen::KeyPair::generate().unwrap(), &self.issuer).unwrap().der().clone()
        }

        fn crl(&self, revoked: &[u64]) -> String {
            let now = rcgen::date_time_ymd(2026, 1, 1);
            let params = rcgen::CertificateRevocationListParams {
                this_update: now,
                next_update: rcgen::date_time_ymd(2100, 1, 1),
                crl_number: 1u64.into(),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .iter()
                    .map(|s| rcgen::RevokedCertParams {
                        serial_number: (*s).into(),
                        revocation_time: now,
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            params.signed_by(&self.issuer).unwrap().pem().unwrap()
        }
    }

    /// While a CA rotates, its file holds the new CA beside the old, and the CRL file a CRL of
    /// each: certificates of both verify, and each CA's revocations hold.
    #[test]
    fn every_ca_and_crl_of_the_files_is_trusted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Ca::new("old"), Ca::new("new"));
        let (ca, crl) = (dir.path().join("ca.pem"), dir.path().join("crl.pem"));
        std::fs::write(&ca, format!("{}{}", new.pem, old.pem)).unwrap();
        std::fs::write(&crl, format!("{}{}", new.crl(&[7]), old.crl(&[3]))).unwrap();
        let (roots, crls) = TlsMaterial::load_roots(&ca, Some(&crl)).unwrap();
        assert_eq!((roots.len(), crls.len()), (2, 2));
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
            .with_crls(crls)
            .build()
            .unwrap();
        let now = rustls::pki_types::UnixTime::now();
        assert!(verifier.verify_client_cert(&old.issue(1), &[], now).is_ok());
        assert!(verifier.verify_client_cert(&new.issue(2), &[], now).is_ok());
        assert!(verifier.verify_client_cert(&old.issue(3), &[], now).is_err(), "revoked by the old CA");
        assert!(verifier.verify_client_cert(&new.issue(7), &[], now).is_err(), "revoked by the new CA");
        // Nothing in the file: refused, not an empty trust.
        std::fs::write(&ca, "").unwrap();
        assert!(roots_from(&ca).is_err());
        std::fs::write(&crl, "not a crl").unwrap();
        assert!(crls_from(&crl).is_err());
    }
}

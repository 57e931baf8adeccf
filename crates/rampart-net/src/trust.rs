//! Trust kept per trust domain, for peer networks: a certificate naming `spiffe://D/…` is
//! verified against D's CA bundle and no other. Never one merged root store: with one, a
//! peer's CA could mint certificates of our domain or of a third network, and they would
//! verify. The bundles can change while a server runs (a peer added, a peer's CA rotating).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_pki::TrustDomain;
use rampart_pki::bundle::Bundle;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::tls::provider;
use crate::{NetError, Result};

/// One verifier per trust domain, swapped as bundles change.
#[derive(Clone, Default)]
pub struct TrustDomains {
    by_domain: Arc<ArcSwap<HashMap<TrustDomain, Arc<dyn ClientCertVerifier>>>>,
}

impl fmt::Debug for TrustDomains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domains: Vec<String> = self.by_domain.load().keys().map(ToString::to_string).collect();
        f.debug_struct("TrustDomains").field("domains", &domains).finish()
    }
}

impl TrustDomains {
    /// Trusts `bundle` for certificates of `domain` (replacing what `domain` had).
    pub fn set(&self, domain: &TrustDomain, bundle: &Bundle) -> Result<()> {
        let mut roots = RootCertStore::empty();
        for der in bundle.certs() {
            roots.add(CertificateDer::from(der.clone())).map_err(|e| NetError::Tls(e.to_string()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| NetError::Tls(e.to_string()))?;
        self.by_domain.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(domain.clone(), verifier.clone());
            m
        });
        Ok(())
    }

    /// Stops trusting `domain`.
    pub fn remove(&self, domain: &TrustDomain) {
        self.by_domain.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(domain);
            m
        });
    }

    /// Whether `domain`'s bundle is held.
    pub fn knows(&self, domain: &TrustDomain) -> bool {
        self.by_domain.load().contains_key(domain)
    }

    /// A verifier of client certificates that sends each to its own domain's roots.
    pub fn client_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(PerDomain { domains: self.clone() })
    }
}

/// Verifies a client certificate against the bundle of the domain it names.
#[derive(Debug)]
struct PerDomain {
    domains: TrustDomains,
}

impl PerDomain {
    /// The verifier of the domain `cert` names, or the refusal.
    fn verifier_for(
        &self,
        cert: &CertificateDer<'_>,
    ) -> std::result::Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let refused = |why: String| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                crate::tls::IdentityError::NoIdentity(why),
            ))))
        };
        let presented = rampart_pki::presented::presented(cert.as_ref()).map_err(refused)?;
        let id = presented.identity.ok_or_else(|| refused("no spiffe:// identity".into()))?;
        // A domain we hold no bundle for is an unknown CA, whatever signed it.
        self.domains
            .by_domain
            .load()
            .get(&id.domain)
            .cloned()
            .ok_or(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
    }
}

impl ClientCertVerifier for PerDomain {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.verifier_for(end_entity)?.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crate::tls::verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crate::tls::verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::tls::verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A CA of `domain` and a certificate it issues to `spiffe://<names>/node/n1`.
    struct Ca {
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
        pem: String,
    }

    impl Ca {
        fn new(name: &str) -> Self {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} CA"));
            params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Ca { pem: cert.pem(), issuer: rcgen::Issuer::new(params, key) }
        }

        fn issue(&self, spiffe: &str) -> CertificateDer<'static> {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            params.signed_by(&rcgen::KeyPair::generate().unwrap(), &self.issuer).unwrap().der().clone()
        }

        fn bundle(&self) -> Bundle {
            Bundle::parse(self.pem.as_bytes()).unwrap()
        }
    }

    #[test]
    fn a_certificate_verifies_only_against_the_bundle_of_the_domain_it_names() {
        let (east, west) = (Ca::new("east"), Ca::new("west"));
        let trust = TrustDomains::default();
        trust.set(&TrustDomain::new("east").unwrap(), &east.bundle()).unwrap();
        trust.set(&TrustDomain::new("west").unwrap(), &west.bundle()).unwrap();
        let v = trust.client_verifier();
        let now = UnixTime::now();
        assert!(v.verify_client_cert(&east.issue("spiffe://east/node/n1"), &[], now).is_ok());
        assert!(v.verify_client_cert(&west.issue("spiffe://west/node/n1"), &[], now).is_ok());
        // West's CA minting an east identity: verified against east's bundle, refused.
        assert!(v.verify_client_cert(&west.issue("spiffe://east/node/n1"), &[], now).is_err());
        // A domain with no bundle: unknown, whoever signed it.
        let third = v.verify_client_cert(&east.issue("spiffe://third/node/n1"), &[], now).unwrap_err();
        assert_eq!(third, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        // Removed, and rotated: east's bundle replaced by a new CA's.
        trust.remove(&TrustDomain::new("west").unwrap());
        assert!(v.verify_client_cert(&west.issue("spiffe://west/node/n1"), &[], now).is_err());
        let next = Ca::new("east-2");
        trust.set(&TrustDomain::new("east").unwrap(), &next.bundle()).unwrap();
        assert!(v.verify_client_cert(&next.issue("spiffe://east/node/n1"), &[], now).is_ok());
        assert!(v.verify_client_cert(&east.issue("spiffe://east/node/n1"), &[], now).is_err());
    }
}

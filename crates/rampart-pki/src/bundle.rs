//! A trust domain's CA bundle: the CA certificates that verify its identities (one, or two
//! while the CA rotates), as a peer network installs it. Its fingerprint — `sha256:` and the
//! hex SHA-256 of the certificates' DER, concatenated in order — is what an operator compares
//! or pins, so it does not depend on how the PEM is wrapped.

use std::fmt;

use crate::identity::TrustDomain;
use crate::inspect::cert_from_der;

/// Most certificates a bundle may hold.
const MAX_CERTS: usize = 8;
/// A bundle's largest size: it comes from a peer (readers of a bundle stop here).
pub const MAX_BYTES: usize = 64 << 10;

/// Why a bundle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not PEM certificates, or more or larger than a bundle may be.
    #[error("not a CA bundle: {0}")]
    Malformed(String),
    /// A certificate that is not a CA.
    #[error("certificate {index} of the bundle is not a CA certificate")]
    NotACa {
        /// Its place in the bundle, from 1.
        index: usize,
    },
}

/// A parsed bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    certs: Vec<Vec<u8>>,
}

impl Bundle {
    /// The bundle in `pem`: one to eight CA certificates.
    pub fn parse(pem: &[u8]) -> Result<Self, BundleError> {
        if pem.len() > MAX_BYTES {
            return Err(BundleError::Malformed(format!("over {} KiB", MAX_BYTES >> 10)));
        }
        let mut certs = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| BundleError::Malformed(format!("bad PEM: {e}")))?;
            if block.label != "CERTIFICATE" {
                return Err(BundleError::Malformed(format!("a {:?} block", block.label)));
            }
            let info = cert_from_der(&block.contents).map_err(BundleError::Malformed)?;
            if !info.is_ca {
                return Err(BundleError::NotACa { index: certs.len() + 1 });
            }
            certs.push(block.contents);
            if certs.len() > MAX_CERTS {
                return Err(BundleError::Malformed(format!("more than {MAX_CERTS} certificates")));
            }
        }
        if certs.is_empty() {
            return Err(BundleError::Malformed("no certificate".into()));
        }
        Ok(Bundle { certs })
    }

    /// The certificates, DER, in order.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// `sha256:<hex>` of the certificates' DER, concatenated in order.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for der in &self.certs {
            ctx.update(der);
        }
        Fingerprint(hex::encode(ctx.finish()))
    }

    /// The bundle as PEM (LF line endings, as the CA's own file).
    pub fn to_pem(&self) -> String {
        let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        self.certs
            .iter()
            .map(|der| pem::encode_config(&pem::Pem::new("CERTIFICATE", der.clone()), lf))
            .collect()
    }
}

/// A bundle's fingerprint, shown and parsed as `sha256:<64 hex digits>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// `sha256:<hex>` (the prefix optional, hex in either case), or why it is not one.
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text).to_ascii_lowercase();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Fingerprint(hex))
        } else {
            Err(BundleError::Malformed(format!("{text:?} is not sha256:<64 hex digits>")))
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// The bundle of `domain` in a PKI: its CA certificate file as it stands.
pub fn of_domain(pki: &crate::Pki, domain: &TrustDomain) -> crate::Result<Bundle> {
    let path = pki.domain_dir(domain).join("ca.pem");
    if !pki.has_domain(domain) {
        return Err(crate::PkiError::NoSuchDomain { domain: domain.to_string(), path });
    }
    let pem = std::fs::read(&path).map_err(|source| crate::PkiError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    Bundle::parse(&pem).map_err(|e| crate::PkiError::Malformed { path, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem()
    }

    #[test]
    fn a_bundle_is_ca_certificates_and_its_fingerprint_ignores_the_wrapping() {
        let (a, b) = (ca_pem(), ca_pem());
        let one = Bundle::parse(a.as_bytes()).unwrap();
        let two = Bundle::parse(format!("{a}\n{b}").as_bytes()).unwrap();
        assert_eq!(two.certs().len(), 2);
        assert_ne!(one.fingerprint(), two.fingerprint());
        let rewrapped = Bundle::parse(one.to_pem().replace('\n', "\r\n").as_bytes()).unwrap();
        assert_eq!(rewrapped.fingerprint(), one.fingerprint());
        let shown = one.fingerprint().to_string();
        assert!(shown.starts_with("sha256:") && shown.len() == 71, "{shown}");
        assert_eq!(
            Fingerprint::parse(&shown.to_uppercase().replace("SHA256:", "sha256:")).unwrap(),
            one.fingerprint()
        );
        assert!(Fingerprint::parse("sha256:abc").is_err());
    }

    #[test]
    fn anything_else_is_refused() {
        let leaf = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        assert_eq!(Bundle::parse(leaf.as_bytes()), Err(BundleError::NotACa { index: 1 }));
        assert!(Bundle::parse(b"").is_err());
        assert!(Bundle::parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        let many: String = (0..9).map(|_| ca_pem()).collect();
        assert!(Bundle::parse(many.as_bytes()).is_err());
        assert!(Bundle::parse(&vec![b'a'; MAX_BYTES + 1]).is_err());
    }
}

//! Reading certificates and CRLs back: what `rampart pki inspect` shows, and what renewal and
//! revocation checks need. Parsing is by `x509-parser`, which never panics on hostile input.

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::error::{PkiError, Result};
use crate::identity::{Role, SpiffeId};
use rampart_files as files;

/// What a certificate says about itself, in plain values.
#[derive(Clone, Debug, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// DNS names in the subject alternative names.
    pub dns: Vec<String>,
    /// IP addresses in the subject alternative names.
    pub ips: Vec<IpAddr>,
    /// URIs in the subject alternative names.
    pub uris: Vec<String>,
    /// The rampart identity, when the certificate carries exactly one valid one.
    pub identity: Option<SpiffeId>,
    /// The role of that identity.
    pub role: Option<Role>,
    /// Key algorithm and size, e.g. `ECDSA P-256`.
    pub key_type: String,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// Key usages, by their RFC 5280 names.
    pub key_usage: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, …).
    pub extended_key_usage: Vec<String>,
    /// SHA-256 over the DER, colon-separated uppercase hex (as `openssl x509 -fingerprint`).
    pub sha256_fingerprint: String,
    /// The certificate itself, DER.
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// A certificate as PEM.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// Reads the first certificate of a PEM (or DER) file.
pub fn read_cert_file(path: &Path) -> Result<CertInfo> {
    let bytes = files::read(path)?;
    cert_from_bytes(&bytes).map_err(|reason| PkiError::Malformed { path: path.to_owned(), reason })
}

/// Parses the first certificate of PEM or DER bytes.
pub fn cert_from_bytes(bytes: &[u8]) -> std::result::Result<CertInfo, String> {
    let der = pem_or_der(bytes, "CERTIFICATE")?;
    cert_from_der(&der)
}

/// Parses a DER certificate.
pub fn cert_from_der(der: &[u8]) -> std::result::Result<CertInfo, String> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let mut info = CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex::encode(trim_serial(cert.raw_serial())),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        dns: Vec::new(),
        ips: Vec::new(),
        uris: Vec::new(),
        identity: None,
        role: None,
        key_type: key_type_of(&cert),
        is_ca: cert.is_ca(),
        key_usage: Vec::new(),
        extended_key_usage: Vec::new(),
        sha256_fingerprint: fingerprint(der),
        der: der.to_vec(),
    };
    let bad_ext = |e: x509_parser::error::X509Error| format!("malformed extension: {e}");
    if let Some(san) = cert.subject_alternative_name().map_err(bad_ext)? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => info.dns.push((*d).to_owned()),
                GeneralName::URI(u) => info.uris.push((*u).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        info.ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    if let [only] = info.uris.as_slice() {
        info.identity = SpiffeId::parse(only).ok();
        info.role = info.identity.as_ref().map(|id| id.role);
    }
    if let Some(ku) = cert.key_usage().map_err(bad_ext)? {
        let ku = ku.value;
        let names = [
            (ku.digital_signature(), "digitalSignature"),
            (ku.non_repudiation(), "nonRepudiation"),
            (ku.key_encipherment(), "keyEncipherment"),
            (ku.data_encipherment(), "dataEncipherment"),
            (ku.key_agreement(), "keyAgreement"),
            (ku.key_cert_sign(), "keyCertSign"),
            (ku.crl_sign(), "cRLSign"),
        ];
        info.key_usage = names.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned()).collect();
    }
    if let Some(eku) = cert.extended_key_usage().map_err(bad_ext)? {
        let eku = eku.value;
        let names = [
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.code_signing, "codeSigning"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "OCSPSigning"),
        ];
        info.extended_key_usage = names.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned()).collect();
    }
    Ok(info)
}

/// Whether `cert_der` carries a valid signature by the certificate `ca_der`.
pub fn is_signed_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) =
        (X509Certificate::from_der(cert_der), X509Certificate::from_der(ca_der))
    else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The subject key identifier of a certificate, if it has one.
pub fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    cert.extensions().iter().find_map(|ext| match ext.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
        _ => None,
    })
}

/// What a CRL says, in plain values.
#[derive(Clone, Debug, Serialize)]
pub struct CrlInfo {
    /// Issuer distinguished name.
    pub issuer: String,
    /// The CRL's sequence number.
    pub number: Option<String>,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    /// When the next one is due; past this, strict verifiers refuse it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_update: Option<OffsetDateTime>,
    /// Serials (lowercase hex) of the revoked certificates.
    pub revoked_serials: Vec<String>,
}

/// Parses a CRL (PEM or DER) and checks that the CA certificate `ca_der` signed it.
pub fn crl_from_bytes(bytes: &[u8], ca_der: &[u8]) -> std::result::Result<CrlInfo, String> {
    let der = pem_or_der(bytes, "X509 CRL")?;
    let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| format!("not a CRL: {e}"))?;
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| format!("bad CA certificate: {e}"))?;
    crl.verify_signature(ca.public_key()).map_err(|_| "CRL is not signed by this domain's CA".to_owned())?;
    Ok(CrlInfo {
        issuer: crl.issuer().to_string(),
        number: crl.crl_number().map(|n| n.to_string()),
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        revoked_serials: crl
            .iter_revoked_certificates()
            .map(|r| hex::encode(trim_serial(r.raw_serial())))
            .collect(),
    })
}

/// Accepts PEM with the given label, or raw DER.
fn pem_or_der(bytes: &[u8], label: &str) -> std::result::Result<Vec<u8>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
        let pem = pem.map_err(|e| format!("not valid PEM: {e}"))?;
        if pem.label == label {
            return Ok(pem.contents);
        }
    }
    Err(format!("no PEM block labelled {label:?} found"))
}

/// Serials are DER integers: drop the sign-padding zero so they print as rcgen wrote them.
pub(crate) fn trim_serial(raw: &[u8]) -> &[u8] {
    match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    }
}

/// SHA-256 over DER, formatted like `openssl x509 -fingerprint -sha256`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn key_type_of(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".into(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".into(),
            Some(c) => format!("ECDSA (curve {c})"),
            None => "ECDSA (unknown curve)".into(),
        };
    }
    if *alg == OID_SIG_ED25519 {
        return "Ed25519".into();
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
            _ => "RSA".into(),
        };
    }
    format!("unknown ({alg})")
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

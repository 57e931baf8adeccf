//! Keys that never leave their owner: the holder makes its key and a certificate signing
//! request (CSR) on its own machine (`rampart pki request`); the CA signs the CSR
//! (`rampart pki sign`). Of the CSR, only the public key and its signature (the proof that the
//! requester holds the key) are used: the identity, role, names and lifetime are the admin's,
//! whatever the CSR claims.

use rcgen::{CertificateParams, DistinguishedName, DnType, PublicKeyData};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::authority::{Authority, IssueRequest, Issued};
use crate::error::{PkiError, Result};
use crate::identity::{EntityName, SpiffeId};
use crate::index::Index;
use crate::keys::KeyType;
use crate::profile::LeafSpec;
use rampart_files::DirLock;

/// The largest CSR read: a real one is under 2 KB (an RSA-3072 one with many names, 4 KB).
pub const MAX_CSR_BYTES: usize = 64 << 10;

/// A key and the request to certify it, as made on the holder's machine.
pub struct Request {
    /// The private key, PEM (PKCS#8): it stays with the holder.
    pub key_pem: Zeroizing<String>,
    /// The request, PEM: it goes to the admin.
    pub csr_pem: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("csr_pem", &self.csr_pem).finish_non_exhaustive()
    }
}

/// Makes a key of `key_type` and a CSR for `name` (a hint for the admin: the CA never takes
/// the name from it).
pub fn request(name: &EntityName, key_type: KeyType) -> Result<Request> {
    let key = key_type.generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(Request { key_pem: crate::keys::private_key_pem(&key)?, csr_pem: csr.pem()? })
}

/// A CSR whose signature was checked: the key it proves.
#[derive(Debug)]
pub struct CheckedCsr {
    public_key: rcgen::PublicKey,
    key_type: KeyType,
}

impl CheckedCsr {
    /// Reads a CSR (PEM) and checks its signature.
    pub fn parse(pem: &[u8]) -> Result<Self> {
        if pem.len() > MAX_CSR_BYTES {
            return Err(PkiError::BadCsr(format!(
                "{} bytes, more than any CSR ({MAX_CSR_BYTES})",
                pem.len()
            )));
        }
        let text = std::str::from_utf8(pem).map_err(|_| PkiError::BadCsr("not PEM text".into()))?;
        let csr = rcgen::CertificateSigningRequestParams::from_pem(text).map_err(|e| {
            PkiError::BadCsr(match e {
                rcgen::Error::InvalidCertificationRequestSignature => {
                    "its signature does not verify: it was not made with the key it carries".into()
                }
                rcgen::Error::CouldNotParseCertificationRequest => "not a PEM certificate request".into(),
                other => other.to_string(),
            })
        })?;
        let key_type = key_type_of(&csr.public_key)?;
        Ok(CheckedCsr { public_key: csr.public_key, key_type })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }
}

/// The key type of a CSR's key; RSA by its modulus (the DER of a 2048-bit key is 270 bytes,
/// of a 3072-bit one 398).
fn key_type_of(key: &rcgen::PublicKey) -> Result<KeyType> {
    let alg = key.algorithm();
    Ok(if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        KeyType::P256
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        KeyType::P384
    } else if alg == &rcgen::PKCS_ED25519 {
        KeyType::Ed25519
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        match key.der_bytes().len() {
            n if n < 260 => return Err(PkiError::BadCsr("an RSA key under 2048 bits".into())),
            n if n < 390 => KeyType::Rsa2048,
            _ => KeyType::Rsa3072,
        }
    } else {
        return Err(PkiError::BadCsr("a key type rampart does not sign (p256, p384, ed25519, rsa)".into()));
    })
}

impl Authority {
    /// Certifies the key `csr` proves as `req` says (its `key_type` is ignored: the key is the
    /// CSR's). The key stays with its holder: none is written here, and one an earlier
    /// certificate of the name left is removed. `renew`: the name may hold a valid certificate,
    /// which this one succeeds (for a renewal, same role only); otherwise that is refused.
    pub fn sign(&self, csr: &CheckedCsr, req: &IssueRequest, renew: bool) -> Result<Issued> {
        let _lock = DirLock::acquire(self.dir())?;
        let mut index = Index::load(&self.index_path())?;
        let now = OffsetDateTime::now_utc();
        if let Some(cur) = index.current_mut(&req.name)
            && cur.is_live(now)
        {
            if !renew {
                return Err(PkiError::AlreadyIssued {
                    domain: self.domain().to_string(),
                    name: req.name.to_string(),
                    serial: cur.serial.clone(),
                });
            }
            if cur.role != req.role {
                return Err(PkiError::BadCsr(format!(
                    "{} holds a {} certificate: a renewal keeps the role (not {})",
                    req.name, cur.role, req.role
                )));
            }
        }
        let spec = LeafSpec {
            id: SpiffeId::new(self.domain().clone(), req.role, req.name.clone()),
            dns: req.dns.clone(),
            ips: req.ips.clone(),
            lifetime: req.lifetime,
        };
        let params = self.leaf_params(&spec, now)?;
        self.record_locked(&mut index, &spec, (&csr.public_key, csr.key_type, None), params)
    }
}

//! Key types offered for CAs and certificates, and their generation.

use std::fmt;
use std::str::FromStr;

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{PkiError, Result};

/// The kind of key pair behind a certificate. ECDSA P-256 is the default: small, fast to
/// handshake, and understood by every TLS stack rampart talks to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256.
    #[default]
    P256,
    /// ECDSA on NIST P-384 with SHA-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA, 2048-bit modulus, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
    /// RSA, 3072-bit modulus, PKCS#1 v1.5 signatures with SHA-256.
    Rsa3072,
}

impl KeyType {
    /// Every key type, in the order `--help` lists them.
    pub const ALL: [KeyType; 5] =
        [KeyType::P256, KeyType::P384, KeyType::Ed25519, KeyType::Rsa2048, KeyType::Rsa3072];

    /// The name used on the command line and in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
        }
    }

    /// Generates a fresh key pair of this type from the operating system's RNG.
    pub fn generate(self) -> Result<KeyPair> {
        let failed = |reason: String| PkiError::KeyGeneration { key_type: self.as_str(), reason };
        match self {
            KeyType::P256 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string()))
            }
            KeyType::P384 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| failed(e.to_string()))
            }
            KeyType::Ed25519 => {
                KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| failed(e.to_string()))
            }
            KeyType::Rsa2048 => generate_rsa(2048).map_err(failed),
            KeyType::Rsa3072 => generate_rsa(3072).map_err(failed),
        }
    }
}

/// ring (our crypto provider) can sign with RSA keys but not make them, so RSA keys come from
/// the pure-Rust `rsa` crate and are handed to rcgen as PKCS#8.
fn generate_rsa(bits: usize) -> std::result::Result<KeyPair, String> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|e| e.to_string())?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).map_err(|e| e.to_string())
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| PkiError::UnknownKeyType(s.to_owned()))
    }
}

/// The private key as PEM PKCS#8, readable by OpenSSL, Python's `cryptography`, rustls and ring.
///
/// ring writes Ed25519 keys as PKCS#8 v2 (with the public key attached), which OpenSSL 3.0 and
/// `cryptography` refuse to load; such keys are rewritten here as the plain RFC 8410 (v1) form,
/// which every reader, ring included, accepts. No crate at hand does this one conversion.
pub fn private_key_pem(key: &KeyPair) -> Result<Zeroizing<String>> {
    let der = Zeroizing::new(key.serialize_der());
    if key.algorithm() != &rcgen::PKCS_ED25519 {
        return Ok(Zeroizing::new(key.serialize_pem()));
    }
    // v2: 30 51 | 02 01 01 | 30 05 06 03 2b 65 70 | 04 22 04 20 <seed:32> | a1 23 …
    const V2_PREFIX: [u8; 16] =
        [0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    const V1_PREFIX: [u8; 16] =
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let seed = der.strip_prefix(&V2_PREFIX).and_then(|rest| rest.get(..32)).ok_or_else(|| {
        PkiError::KeyGeneration { key_type: "ed25519", reason: "unexpected PKCS#8 layout".into() }
    })?;
    let mut v1 = Zeroizing::new(Vec::with_capacity(48));
    v1.extend_from_slice(&V1_PREFIX);
    v1.extend_from_slice(seed);
    let pem = pem::Pem::new("PRIVATE KEY", v1.to_vec());
    let text = Zeroizing::new(pem::encode(&pem));
    zeroize::Zeroize::zeroize(&mut pem.into_contents());
    Ok(text)
}

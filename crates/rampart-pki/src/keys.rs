//! Key types offered for CAs and certificates, and their generation.

use std::fmt;
use std::str::FromStr;

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

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
    pub const ALL: [KeyType; 5] = [
        KeyType::P256,
        KeyType::P384,
        KeyType::Ed25519,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
    ];

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
        let failed = |reason: String| PkiError::KeyGeneration {
            key_type: self.as_str(),
            reason,
        };
        match self {
            KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| failed(e.to_string())),
            KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
                .map_err(|e| failed(e.to_string())),
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
    let key =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|e| e.to_string())?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| e.to_string())
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

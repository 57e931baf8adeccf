//! One Fernet key: 32 random bytes (16 for HMAC-SHA256 signing, 16 for AES-128-CBC), written
//! as urlsafe base64 exactly as Python's `Fernet.generate_key()` writes it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// A payload key. Its bytes are wiped from memory when it is dropped and never printed.
#[derive(Clone)]
pub struct PayloadKey {
    bytes: Zeroizing<[u8; 32]>,
    fernet: fernet::Fernet,
}

impl PayloadKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|e| CryptoError::Random(e.to_string()))?;
        Self::from_bytes(bytes)
    }

    /// Parses the urlsafe-base64 form (with or without `=` padding). `None` unless it decodes
    /// to exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let text = text.trim();
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?,
        );
        let bytes: [u8; 32] = decoded.as_slice().try_into().ok()?;
        Self::from_bytes(Zeroizing::new(bytes)).ok()
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Result<Self> {
        let text = Zeroizing::new(URL_SAFE.encode(bytes.as_ref()));
        let fernet = fernet::Fernet::new(&text).ok_or(CryptoError::Random("key rejected".into()))?;
        Ok(PayloadKey { bytes, fernet })
    }

    /// The key as urlsafe base64 with padding (44 characters), for the keyring file and for
    /// outside clients. Handle with care: this is the secret.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE.encode(self.bytes.as_ref()))
    }

    /// A short, non-secret name for the key: the first 8 bytes of SHA-256 over a label and the
    /// key, in hex. It identifies a key in listings without revealing anything usable.
    pub fn fingerprint(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"rampart payload key fingerprint\0");
        ctx.update(self.bytes.as_ref());
        let digest = ctx.finish();
        digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn fernet(&self) -> &fernet::Fernet {
        &self.fernet
    }

    /// Whether `signed` (a token's bytes before its HMAC) carries `mac` under this key's
    /// signing half, in constant time: tells a token this key made (whose decryption then
    /// failed) from one it did not.
    pub(crate) fn signs(&self, signed: &[u8], mac: &[u8]) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes[..16]);
        ring::hmac::verify(&key, signed, mac).is_ok()
    }
}

impl fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadKey({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_rejects() {
        let k = PayloadKey::generate().unwrap();
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        let back = PayloadKey::from_base64(&text).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        assert!(PayloadKey::from_base64(text.trim_end_matches('=')).is_some());
        assert!(PayloadKey::from_base64("").is_none());
        assert!(PayloadKey::from_base64("not base64 at all!").is_none());
        assert!(PayloadKey::from_base64(&text[..40]).is_none());
        assert!(!format!("{k:?}").contains(text.as_str()));
    }
}

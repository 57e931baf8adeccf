//! Payload envelopes at the node (DESIGN.md "Payload encryption"): a request whose
//! `Content-Type` is `application/fernet` carries one Fernet token; it is opened with the
//! keyring (TTL, replay guard) and the answer is sealed the same way. A request with
//! `Accept: application/fernet` (a GET has no body) gets a sealed answer.

use std::sync::Mutex;

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};
use rampart_crypto::{CryptoError, Keyring, ReplayGuard, now_secs};

/// The media type of an envelope.
pub const FERNET: &str = "application/fernet";

/// The node's keyring with its token rules.
#[derive(Debug)]
pub struct Envelopes {
    keyring: Keyring,
    ttl_secs: u64,
    guard: Mutex<ReplayGuard>,
}

impl Envelopes {
    /// Envelopes opened with `keyring`, refused when older than `ttl_secs` or seen before.
    pub fn new(keyring: Keyring, ttl_secs: u64) -> Self {
        Envelopes {
            keyring,
            ttl_secs,
            guard: Mutex::new(ReplayGuard::new(rampart_crypto::replay::DEFAULT_CAPACITY)),
        }
    }

    /// Opens a request body that is an envelope.
    pub fn open(&self, body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let token = std::str::from_utf8(body).map_err(|_| CryptoError::Malformed("not text"))?;
        let now = now_secs();
        let opened = self.keyring.decrypt_at(token, Some(self.ttl_secs), now)?;
        self.guard.lock().unwrap_or_else(|p| p.into_inner()).check_and_record(
            token.trim(),
            opened.timestamp,
            self.ttl_secs,
            now,
        )?;
        Ok(opened.plaintext)
    }

    /// Seals an answer.
    pub fn seal(&self, body: &[u8]) -> Result<String, CryptoError> {
        self.keyring.encrypt(body)
    }
}

/// Whether the request body is an envelope.
pub fn is_sealed(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FERNET))
}

/// Whether the caller wants a sealed answer.
pub fn wants_sealed(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(FERNET)))
}

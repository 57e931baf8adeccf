//! Payload envelopes at the node (DESIGN.md "Payload encryption"): a request whose
//! `Content-Type` is `application/fernet` carries one Fernet token; it is opened with the
//! keyring (TTL), claimed network-wide through the gateway (the replay guard every replica
//! shares), and the answer is sealed the same way. A request with `Accept: application/fernet`
//! (a GET has no body) gets a sealed answer.
//!
//! The claim carries the request's idempotency scope (principal, service, `Idempotency-Key`):
//! the same envelope re-sent under the same key is a retry and runs again (the service itself
//! makes a keyed write happen once); without a key, or under another, it is a replay.

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};
use rampart_crypto::{CryptoError, Keyring, now_secs};

use crate::registration::{Claim, ClaimError, Membership};

/// The media type of an envelope.
pub const FERNET: &str = rampart_net::contract::media::FERNET;

/// The node's keyring with its token rules.
#[derive(Debug)]
pub struct Envelopes {
    keyring: Keyring,
    ttl_secs: u64,
}

/// Why an envelope was not opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The token itself is refused (malformed, bad signature, expired…).
    #[error(transparent)]
    Token(#[from] CryptoError),
    /// Already accepted once within its TTL, without this request's idempotency key.
    #[error(
        "token replayed: already accepted once within its TTL (re-send it with the same Idempotency-Key, or seal it anew)"
    )]
    Replayed,
    /// The network-wide replay guard could not be asked (the registry is out of reach).
    #[error("the replay guard could not be reached: {0}")]
    Unavailable(String),
    /// The network-wide replay guard is full.
    #[error("the replay guard is full of unexpired envelopes; try again shortly")]
    Full,
}

impl Envelopes {
    /// Envelopes opened with `keyring`, refused when older than `ttl_secs` or seen before.
    pub fn new(keyring: Keyring, ttl_secs: u64) -> Self {
        Envelopes { keyring, ttl_secs }
    }

    /// Opens a request body that is an envelope and claims it through `guard`, under `scope`
    /// (the request's idempotency scope, if it has a key).
    pub async fn open(
        &self,
        body: &[u8],
        guard: &Membership,
        scope: Option<&str>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let token = std::str::from_utf8(body).map_err(|_| CryptoError::Malformed("not text"))?.trim();
        let now = now_secs();
        let opened = self.keyring.decrypt_at(token, Some(self.ttl_secs), now)?;
        let id = rampart_crypto::token_id(token).ok_or(CryptoError::Malformed("too short"))?;
        let expires = opened.timestamp.saturating_add(self.ttl_secs);
        match guard.claim(id, expires, scope).await {
            Ok(Claim::Fresh | Claim::Retry) => Ok(opened.plaintext),
            Ok(Claim::Replayed) => Err(EnvelopeError::Replayed),
            Ok(Claim::Expired) => Err(CryptoError::Expired {
                age_secs: now.saturating_sub(opened.timestamp),
                ttl_secs: self.ttl_secs,
            }
            .into()),
            Err(ClaimError::Full) => Err(EnvelopeError::Full),
            Err(ClaimError::Unavailable(why)) => Err(EnvelopeError::Unavailable(why)),
        }
    }

    /// Seals an answer.
    pub fn seal(&self, body: &[u8]) -> Result<String, CryptoError> {
        self.keyring.encrypt(body)
    }
}

/// The idempotency scope of a request: who, which service, which key (hashed, hexadecimal).
pub fn scope(principal: &str, service: &str, key: &str) -> String {
    let scope = format!("{principal}\0{service}\0{key}");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, scope.as_bytes()))
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

//! What can be read from a Fernet token before any key is tried: the version byte and the
//! creation time, both in the clear. Checking them first gives precise reasons (malformed,
//! expired, from the future) and keeps the `fernet` crate's own time arithmetic away from
//! hostile timestamps.
//!
//! Layout (base64url of): `0x80 | timestamp: u64 BE | IV: 16 | ciphertext: 16·n | HMAC: 32`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{CryptoError, Result};

/// Fernet's allowance for clocks that disagree: a token may be up to 60 s "from the future".
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// The shortest valid token: 1 + 8 + 16 + 16 + 32 bytes = 73, or 100 base64 characters.
const MIN_TOKEN_CHARS: usize = 100;

/// The clear-text header of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    /// Seconds since the Unix epoch when the token was made.
    pub timestamp: u64,
}

impl TokenHeader {
    /// Reads the header and checks the token's shape (padding, length). The alphabet of the
    /// rest is left to the decoder, which checks it anyway: see [`TokenHeader::check_alphabet`].
    pub fn parse(token: &str) -> Result<Self> {
        let body = token.trim_end_matches('=');
        if token.len() - body.len() > 2 {
            return Err(CryptoError::Malformed("too much base64 padding"));
        }
        if body.len() < MIN_TOKEN_CHARS - 2 {
            return Err(CryptoError::Malformed("too short"));
        }
        // Decoded length = 73 + 16·n exactly: version, time, IV, whole AES blocks, HMAC.
        let decoded_len = body.len() * 3 / 4;
        if body.len() % 4 == 1 || decoded_len < 73 || !(decoded_len - 57).is_multiple_of(16) {
            return Err(CryptoError::Malformed("length is not that of a Fernet token"));
        }
        // The first 12 characters encode exactly the first 9 bytes: version and timestamp.
        let first = body.as_bytes().get(..12).ok_or(CryptoError::Malformed("too short"))?;
        let head = URL_SAFE_NO_PAD.decode(first).map_err(|_| CryptoError::Malformed("bad base64"))?;
        if head[0] != 0x80 {
            return Err(CryptoError::Malformed("unknown version byte (expected 0x80)"));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[1..9]);
        Ok(TokenHeader { timestamp: u64::from_be_bytes(ts) })
    }

    /// Whether the whole token is urlsafe base64: run only to explain a token that failed to
    /// open (malformed rather than tampered), so the success path scans it once, not twice.
    pub fn check_alphabet(token: &str) -> Result<()> {
        let body = token.trim_end_matches('=');
        if body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            Ok(())
        } else {
            Err(CryptoError::Malformed("characters outside the urlsafe base64 alphabet"))
        }
    }

    /// Checks the timestamp against `now` and an optional TTL, as Python's `Fernet` does:
    /// expired when `timestamp + ttl < now`, refused when more than 60 s in the future.
    pub fn check_time(&self, now: u64, ttl_secs: Option<u64>) -> Result<()> {
        if self.timestamp > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(CryptoError::FromTheFuture { ahead_secs: self.timestamp - now });
        }
        if let Some(ttl) = ttl_secs
            && self.timestamp.saturating_add(ttl) < now
        {
            return Err(CryptoError::Expired { age_secs: now - self.timestamp, ttl_secs: ttl });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_rules_match_python() {
        let h = TokenHeader { timestamp: 1_000 };
        assert!(h.check_time(1_000, Some(0)).is_ok());
        assert!(h.check_time(1_060, Some(60)).is_ok());
        assert!(matches!(
            h.check_time(1_061, Some(60)),
            Err(CryptoError::Expired { age_secs: 61, ttl_secs: 60 })
        ));
        assert!(h.check_time(940, None).is_ok());
        assert!(matches!(h.check_time(939, None), Err(CryptoError::FromTheFuture { ahead_secs: 61 })));
        let far = TokenHeader { timestamp: u64::MAX };
        assert!(far.check_time(1_000, Some(u64::MAX)).is_err());
        assert!(TokenHeader { timestamp: 0 }.check_time(u64::MAX, Some(u64::MAX)).is_ok());
    }

    #[test]
    fn shapes_are_checked() {
        assert!(matches!(TokenHeader::parse(""), Err(CryptoError::Malformed(_))));
        assert!(matches!(TokenHeader::parse("gAAAAA"), Err(CryptoError::Malformed(_))));
        assert!(matches!(TokenHeader::parse(&"A".repeat(100)), Err(CryptoError::Malformed(_))));
        assert!(matches!(TokenHeader::parse(&"é".repeat(100)), Err(CryptoError::Malformed(_))));
        assert!(TokenHeader::check_alphabet("gAAA-_==").is_ok());
        assert!(TokenHeader::check_alphabet("gA+/").is_err());
    }
}

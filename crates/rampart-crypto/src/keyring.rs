//! A keyring: encrypt with the newest key, decrypt with any (Python's `MultiFernet`), check the
//! token's age, and re-encrypt old tokens under the newest key (rotation).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::error::{CryptoError, Result};
use crate::key::PayloadKey;
use crate::token::TokenHeader;

/// The largest message a token may carry (64 MiB). Fernet is not a streaming format: the whole
/// message and its token live in memory, so the size must be bounded.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Keys in the order of the keyring file: oldest first, newest last.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<PayloadKey>,
}

/// A token that opened: the plaintext and what was learnt on the way.
#[derive(Debug)]
pub struct Opened {
    /// The message.
    pub plaintext: Vec<u8>,
    /// When the token was made (seconds since the Unix epoch).
    pub timestamp: u64,
    /// Position in the keyring of the key that opened it (0 = oldest).
    pub key_index: usize,
}

impl Keyring {
    /// A keyring of `keys`, oldest first; `None` when empty.
    pub fn new(keys: Vec<PayloadKey>) -> Option<Self> {
        if keys.is_empty() { None } else { Some(Keyring { keys }) }
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> &[PayloadKey] {
        &self.keys
    }

    /// The key new tokens are made with.
    pub fn newest(&self) -> &PayloadKey {
        // `new` refuses an empty keyring and nothing removes the last key.
        &self.keys[self.keys.len() - 1]
    }

    /// Adds a fresh key as the newest, then keeps only the newest `keep` keys (all if `None`).
    pub fn rotate(&mut self, keep: Option<usize>) -> Result<&PayloadKey> {
        self.keys.push(PayloadKey::generate()?);
        if let Some(keep) = keep {
            let keep = keep.max(1);
            if self.keys.len() > keep {
                self.keys.drain(..self.keys.len() - keep);
            }
        }
        Ok(self.newest())
    }

    /// Encrypts `message` under the newest key, stamped with the current time.
    pub fn encrypt(&self, message: &[u8]) -> Result<String> {
        check_size(message.len())?;
        Ok(self.newest().fernet().encrypt_at_time(message, now_secs()))
    }

    /// Opens a token with any key of the keyring, newest first, refusing it when older than
    /// `ttl_secs` (if given) or more than 60 s in the future.
    pub fn decrypt(&self, token: &str, ttl_secs: Option<u64>) -> Result<Opened> {
        self.decrypt_at(token, ttl_secs, now_secs())
    }

    /// [`Keyring::decrypt`] at a given time (seconds since the Unix epoch), for tests and for
    /// callers that read the clock once per request.
    pub fn decrypt_at(&self, token: &str, ttl_secs: Option<u64>, now: u64) -> Result<Opened> {
        let token = token.trim_ascii();
        // A token for a message over the limit is refused before any work on it.
        if token.len() > MAX_TOKEN_CHARS {
            return Err(CryptoError::TooLarge { size: token.len(), limit: MAX_TOKEN_CHARS });
        }
        let header = TokenHeader::parse(token)?;
        header.check_time(now, ttl_secs)?;
        for (key_index, key) in self.keys.iter().enumerate().rev() {
            // Time was checked above; passing no TTL keeps the crate from redoing it.
            if let Ok(plaintext) = key.fernet().decrypt_at_time(token, None, now) {
                return Ok(Opened { plaintext, timestamp: header.timestamp, key_index });
            }
        }
        TokenHeader::check_alphabet(token)?;
        // Signed by one of our keys, yet not decryptable: the ciphertext's padding is wrong
        // (a broken encoder), which is not a signature mismatch.
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| CryptoError::Malformed("bad base64"))?;
        if let Some(split) = raw.len().checked_sub(32)
            && self.keys.iter().any(|k| k.signs(&raw[..split], &raw[split..]))
        {
            return Err(CryptoError::BadPadding);
        }
        Err(CryptoError::BadSignature)
    }

    /// Re-encrypts a token under the newest key, keeping its original timestamp (as Python's
    /// `MultiFernet.rotate`), so rotation never extends a token's life.
    pub fn reencrypt(&self, token: &str) -> Result<String> {
        let opened = self.decrypt(token, None)?;
        Ok(self.newest().fernet().encrypt_at_time(&opened.plaintext, opened.timestamp))
    }
}

/// The longest token of a message within [`MAX_MESSAGE_BYTES`]: base64 of the message padded
/// to whole blocks plus 57 bytes of header, IV and HMAC.
const MAX_TOKEN_CHARS: usize = (MAX_MESSAGE_BYTES + 16 + 57).div_ceil(3) * 4;

fn check_size(size: usize) -> Result<()> {
    if size > MAX_MESSAGE_BYTES {
        return Err(CryptoError::TooLarge { size, limit: MAX_MESSAGE_BYTES });
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> Keyring {
        Keyring::new((0..n).map(|_| PayloadKey::generate().unwrap()).collect()).unwrap()
    }

    #[test]
    fn newest_encrypts_any_decrypts() {
        let mut kr = ring(1);
        let old = kr.encrypt(b"before").unwrap();
        kr.rotate(None).unwrap();
        let new = kr.encrypt(b"after").unwrap();
        let o = kr.decrypt(&old, Some(60)).unwrap();
        assert_eq!((o.plaintext.as_slice(), o.key_index), (&b"before"[..], 0));
        let n = kr.decrypt(&new, Some(60)).unwrap();
        assert_eq!((n.plaintext.as_slice(), n.key_index), (&b"after"[..], 1));
        // Dropping the old key makes old tokens foreign.
        kr.rotate(Some(1)).unwrap();
        assert!(matches!(kr.decrypt(&old, None), Err(CryptoError::BadSignature)));
    }

    #[test]
    fn reencrypt_keeps_the_timestamp() {
        let mut kr = ring(1);
        let token = kr.encrypt(b"x").unwrap();
        let ts = TokenHeader::parse(&token).unwrap().timestamp;
        kr.rotate(None).unwrap();
        let again = kr.reencrypt(&token).unwrap();
        assert_eq!(TokenHeader::parse(&again).unwrap().timestamp, ts);
        assert_eq!(kr.decrypt(&again, None).unwrap().key_index, 1);
    }

    #[test]
    fn ttl_and_skew() {
        let kr = ring(1);
        let token = kr.encrypt(b"x").unwrap();
        let ts = TokenHeader::parse(&token).unwrap().timestamp;
        assert!(kr.decrypt_at(&token, Some(10), ts + 10).is_ok());
        assert!(matches!(kr.decrypt_at(&token, Some(10), ts + 11), Err(CryptoError::Expired { .. })));
        assert!(matches!(kr.decrypt_at(&token, None, ts - 61), Err(CryptoError::FromTheFuture { .. })));
    }

    #[test]
    fn tampering_is_a_bad_signature() {
        let kr = ring(1);
        let token = kr.encrypt(b"hello world").unwrap();
        let mut bytes = token.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(kr.decrypt(&tampered, None), Err(CryptoError::BadSignature)));
    }
}

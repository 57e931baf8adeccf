//! A bounded replay guard: a token accepted once is refused if it comes again within its TTL.
//!
//! Each accepted token is remembered by the first 16 bytes of its HMAC (unique per token: a
//! collision needs 2^64 tokens) until `timestamp + ttl`, when it could no longer pass the TTL
//! check anyway. Memory is bounded by `capacity`: about 80 bytes per entry, so the default of
//! 100,000 entries (enough for 1,600 encrypted requests a second with a 60 s TTL) stays under
//! 8 MiB. When every slot holds an unexpired token the guard refuses new tokens rather than
//! forget one: forgetting would reopen a replay window, refusing only delays the caller.

use std::collections::{BTreeSet, HashSet};

use base64::Engine as _;

use crate::error::{CryptoError, Result};

/// Default number of tokens remembered.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Remembers accepted tokens until they expire. Not synchronised: wrap it in a mutex to share.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashSet<u128>,
    /// (expiry, id), so the expired ones are at the front.
    by_expiry: BTreeSet<(u64, u128)>,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` unexpired tokens.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard { capacity: capacity.max(1), seen: HashSet::new(), by_expiry: BTreeSet::new() }
    }

    /// Number of tokens remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records a token that was just opened (authenticated) at `now`, made at `timestamp` and
    /// valid for `ttl_secs`; refuses it if it was recorded before and has not expired.
    /// Call it only after the token's signature checked out, so forged tokens cannot fill it.
    pub fn check_and_record(&mut self, token: &str, timestamp: u64, ttl_secs: u64, now: u64) -> Result<()> {
        let id = token_id(token).ok_or(CryptoError::Malformed("too short"))?;
        self.check_and_record_id(id, timestamp.saturating_add(ttl_secs), now)
    }

    /// Records a one-time id (of something authenticated) valid until `expiry`; refuses it if
    /// it was recorded before and has not expired. The same bounds as
    /// [`ReplayGuard::check_and_record`].
    pub fn check_and_record_id(&mut self, id: u128, expiry: u64, now: u64) -> Result<()> {
        self.forget_expired(now);
        if self.seen.contains(&id) {
            return Err(CryptoError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(CryptoError::ReplayGuardFull(self.capacity));
        }
        self.seen.insert(id);
        self.by_expiry.insert((expiry, id));
        Ok(())
    }

    fn forget_expired(&mut self, now: u64) {
        while let Some(&(expiry, id)) = self.by_expiry.first() {
            if expiry >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&id);
        }
    }
}

/// The first 16 bytes of the token's HMAC (its last 32 bytes), from the base64 text: the id
/// a replay guard remembers a token by (here, and the network-wide one of the gateways).
pub fn token_id(token: &str) -> Option<u128> {
    let body = token.trim_ascii().trim_end_matches('=');
    // The last 43 characters cover the 32-byte HMAC (and a few bits before it); decode a
    // 4-aligned tail long enough to hold it.
    let start = body.len().checked_sub(48)?;
    let start = start - (start % 4);
    // `get`: a cut inside a multibyte character is no base64, so no id (slicing would panic).
    let tail = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body.get(start..)?).ok()?;
    let hmac = tail.get(tail.len().checked_sub(32)?..)?;
    Some(u128::from_be_bytes(hmac[..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keyring, PayloadKey};

    #[test]
    fn second_use_within_ttl_is_refused() {
        let kr = Keyring::new(vec![PayloadKey::generate().unwrap()]).unwrap();
        let (a, b) = (kr.encrypt(b"a").unwrap(), kr.encrypt(b"a").unwrap());
        let mut g = ReplayGuard::new(10);
        g.check_and_record(&a, 100, 60, 100).unwrap();
        assert!(matches!(g.check_and_record(&a, 100, 60, 130), Err(CryptoError::Replayed)));
        g.check_and_record(&b, 100, 60, 130).unwrap();
        // Past its TTL it is forgotten (the TTL check refuses it by then anyway).
        g.check_and_record(&a, 100, 60, 161).unwrap();
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn memory_is_bounded_and_full_means_refuse() {
        let kr = Keyring::new(vec![PayloadKey::generate().unwrap()]).unwrap();
        let mut g = ReplayGuard::new(3);
        for _ in 0..3 {
            g.check_and_record(&kr.encrypt(b"x").unwrap(), 100, 60, 100).unwrap();
        }
        let extra = kr.encrypt(b"x").unwrap();
        assert!(matches!(g.check_and_record(&extra, 100, 60, 100), Err(CryptoError::ReplayGuardFull(3))));
        assert_eq!(g.len(), 3);
        // Once they expire there is room again.
        g.check_and_record(&extra, 200, 60, 200).unwrap();
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn ids_come_from_the_hmac() {
        let kr = Keyring::new(vec![PayloadKey::generate().unwrap()]).unwrap();
        let t = kr.encrypt(b"hello").unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE.decode(&t).unwrap();
        let expected = u128::from_be_bytes(raw[raw.len() - 32..raw.len() - 16].try_into().unwrap());
        assert_eq!(token_id(&t), Some(expected));
        assert_eq!(token_id("short"), None);
        assert_eq!(token_id(&format!("AAA\u{e9}{}", "A".repeat(47))), None, "cut inside a character");
    }
}

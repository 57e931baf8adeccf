//! Random, truncated, flipped and forged tokens: each is refused with an error, never a panic
//! and never a plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use rampart_crypto::{CryptoError, Keyring, PayloadKey};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn keyring() -> Keyring {
    Keyring::new(vec![PayloadKey::generate().unwrap(), PayloadKey::generate().unwrap()]).unwrap()
}

#[test]
fn random_strings_are_refused() {
    let kr = keyring();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
    for i in 0..5_000 {
        let len = (rng.next() % 400) as usize;
        let s: String = if i % 2 == 0 {
            (0..len).map(|_| ALPHABET[(rng.next() % 65) as usize] as char).collect()
        } else {
            String::from_utf8_lossy(&rng.bytes(len)).into_owned()
        };
        assert!(kr.decrypt(&s, Some(60)).is_err(), "{s:?} opened");
    }
}

#[test]
fn random_well_formed_tokens_are_refused() {
    let kr = keyring();
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let blocks = 1 + (rng.next() % 8) as usize;
        let mut raw = vec![0x80];
        let ts = match rng.next() % 3 {
            0 => u64::MAX,
            1 => 0,
            _ => rampart_crypto::now_secs(),
        };
        raw.extend_from_slice(&ts.to_be_bytes());
        raw.extend(rng.bytes(16 + 16 * blocks + 32));
        let token = URL_SAFE.encode(&raw);
        let err = kr.decrypt(&token, Some(60)).unwrap_err();
        assert!(
            matches!(
                err,
                CryptoError::BadSignature | CryptoError::Expired { .. } | CryptoError::FromTheFuture { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn every_truncation_and_flip_of_a_real_token_is_refused() {
    let kr = keyring();
    let token = kr.encrypt(b"a message worth protecting, long enough for three blocks").unwrap();
    assert!(kr.decrypt(&token, Some(60)).is_ok());
    let unpadded = token.trim_end_matches('=');
    for cut in 0..unpadded.len() {
        assert!(kr.decrypt(&token[..cut], Some(60)).is_err(), "truncated at {cut} opened");
    }
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'_', b'=', b'!'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut t = bytes.to_vec();
            t[i] = replacement;
            let t = String::from_utf8(t).unwrap();
            // Changing only the padding or the unused low bits of the last character can leave
            // the bytes the same; anything else must be refused.
            if let Ok(opened) = kr.decrypt(&t, Some(60)) {
                assert_eq!(URL_SAFE.decode(t.as_bytes()).ok(), URL_SAFE.decode(token.as_bytes()).ok());
                assert!(!opened.plaintext.is_empty());
            }
        }
    }
}

#[test]
fn a_token_from_a_foreign_key_is_a_bad_signature() {
    let mine = keyring();
    let theirs = keyring();
    let token = theirs.encrypt(b"hello").unwrap();
    assert!(matches!(mine.decrypt(&token, None), Err(CryptoError::BadSignature)));
}

#[test]
fn oversized_input_is_refused_before_work() {
    let kr = keyring();
    let big = vec![0u8; rampart_crypto::MAX_MESSAGE_BYTES + 1];
    assert!(matches!(kr.encrypt(&big), Err(CryptoError::TooLarge { .. })));
    let huge_token = "A".repeat(rampart_crypto::MAX_MESSAGE_BYTES / 3 * 4 + 1024);
    assert!(matches!(kr.decrypt(&huge_token, None), Err(CryptoError::TooLarge { .. })));
}

#[test]
fn a_valid_signature_over_bad_padding_is_not_called_a_signature_mismatch() {
    let key = PayloadKey::generate().unwrap();
    let raw_key = URL_SAFE.decode(key.to_base64().as_bytes()).unwrap();
    let kr = Keyring::new(vec![key]).unwrap();
    let signing = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw_key[..16]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut rng = Rng(0x0bad_0bad_0bad_0bad);
    let mut bad_padding = 0;
    for _ in 0..16 {
        // A random ciphertext block almost never decrypts to valid PKCS#7 padding.
        let mut token = vec![0x80];
        token.extend_from_slice(&now.to_be_bytes());
        token.extend(rng.bytes(16 + 16)); // IV, one block
        let mac = ring::hmac::sign(&signing, &token);
        token.extend_from_slice(mac.as_ref());
        match kr.decrypt(&URL_SAFE.encode(&token), Some(60)) {
            Err(CryptoError::BadPadding) => bad_padding += 1,
            Err(CryptoError::BadSignature) => panic!("a valid signature was reported as a mismatch"),
            _ => {}
        }
    }
    assert!(bad_padding >= 14, "only {bad_padding} of 16 reported as bad padding");
    let msg = CryptoError::BadPadding.to_string();
    assert!(msg.contains("padded") && !msg.contains("matches no key"), "{msg}");
}

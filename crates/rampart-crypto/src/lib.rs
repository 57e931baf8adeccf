//! Payload envelopes for rampart: end-to-end encryption on top of TLS, so that a gateway routes
//! a request it cannot read (DESIGN.md "Payload encryption").
//!
//! The format is Fernet, byte-compatible with Python's `cryptography.fernet`: a key from
//! `keys/payload.keys` works in both, and tokens go both ways. The `fernet` crate (pure-Rust
//! backend) does the cryptography; this crate adds what it lacks: a keyring file, rotation that
//! keeps timestamps, precise refusal reasons, a size bound, and a bounded replay guard.
//!
//! ```
//! use rampart_crypto::{Keyring, PayloadKey, ReplayGuard};
//! # fn main() -> Result<(), rampart_crypto::CryptoError> {
//! let mut keyring = Keyring::new(vec![PayloadKey::generate()?]).expect("one key");
//! let token = keyring.encrypt(b"{\"amount\": 3}")?;
//! keyring.rotate(None)?; // old tokens still open; new ones use the new key
//! let opened = keyring.decrypt(&token, Some(60))?;
//! let mut guard = ReplayGuard::new(1000);
//! guard.check_and_record(&token, opened.timestamp, 60, rampart_crypto::now_secs())?;
//! assert!(guard.check_and_record(&token, opened.timestamp, 60, rampart_crypto::now_secs()).is_err());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`key`]: one key, its base64 form and fingerprint;
//! - [`keyring`]: encrypt with the newest, decrypt with any, TTL, rotation;
//! - [`token`]: the clear header of a token (version, time) and the time rules;
//! - [`replay`]: the bounded replay guard;
//! - [`file`]: the keyring file.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod file;
pub mod key;
pub mod keyring;
pub mod replay;
pub mod token;

pub use error::{CryptoError, Result};
pub use key::PayloadKey;
pub use keyring::{Keyring, MAX_MESSAGE_BYTES, Opened, now_secs};
pub use replay::{ReplayGuard, token_id};
pub use token::TokenHeader;

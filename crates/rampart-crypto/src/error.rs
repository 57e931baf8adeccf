//! The one error type of the payload-encryption crate.

use std::path::PathBuf;

/// Why a keyring could not be used or a token could not be opened.
///
/// Each refusal of a token has its own variant so that the caller can report a precise reason
/// (a node answers 400 with it); none carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The token is not a Fernet token at all (bad base64, wrong version, wrong length).
    #[error("not a Fernet token: {0}")]
    Malformed(&'static str),
    /// The token's signature matches no key of the keyring: tampered, or encrypted under a key
    /// this keyring does not hold.
    #[error("token signature matches no key in the keyring (tampered, or made with another key)")]
    BadSignature,
    /// The token's signature is valid but its ciphertext does not decrypt to padded
    /// plaintext: made by a broken encoder with one of our keys.
    #[error("token signature is valid but its ciphertext is not correctly padded (a broken encoder)")]
    BadPadding,
    /// The token is older than the TTL allows.
    #[error("token expired: made {age_secs} s ago, older than the {ttl_secs} s TTL")]
    Expired {
        /// Seconds since the token was made.
        age_secs: u64,
        /// The TTL it was checked against.
        ttl_secs: u64,
    },
    /// The token claims to be made more than 60 seconds in the future.
    #[error("token timestamp is {ahead_secs} s in the future (more than the 60 s clock skew allowed)")]
    FromTheFuture {
        /// Seconds ahead of this clock.
        ahead_secs: u64,
    },
    /// The token was already opened once within its TTL.
    #[error("token replayed: already accepted once within its TTL")]
    Replayed,
    /// The replay guard is full of unexpired tokens; refusing is safer than forgetting one.
    #[error("replay guard full ({0} unexpired tokens): refusing new tokens until some expire")]
    ReplayGuardFull(usize),
    /// The message is larger than a token may carry.
    #[error("message of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A keyring with no key.
    #[error("the keyring {0} holds no key; create one with `rampart keys new`")]
    EmptyKeyring(PathBuf),
    /// A line of the keyring file is not a Fernet key.
    #[error("{path}, line {line}: not a Fernet key (32 bytes, urlsafe base64)")]
    BadKey {
        /// The keyring file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The keyring file is readable or writable by others.
    #[error("{path} has mode {mode:o}: a keyring must be private to its owner (chmod 600 it)")]
    InsecurePermissions {
        /// The keyring file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The keyring file already exists.
    #[error("{0} already exists; pass --force to replace it (the old keyring is kept aside)")]
    KeyringExists(PathBuf),
    /// The keyring file does not exist.
    #[error("no keyring at {0}; create one with `rampart keys new`")]
    NoKeyring(PathBuf),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

impl From<rampart_files::FileError> for CryptoError {
    fn from(e: rampart_files::FileError) -> Self {
        CryptoError::Io { action: e.action, path: e.path, source: e.source }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

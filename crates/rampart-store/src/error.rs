//! The one error type of the store crate.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (normally a running gateway) holds the embedded store.
    #[error("the store {0} is in use by another process (a running gateway?)")]
    InUse(PathBuf),
    /// The lease does not exist or has expired.
    #[error("lease {0:x} not found (expired or revoked)")]
    LeaseNotFound(i64),
    /// The ACL does not grant this operation to the caller.
    #[error("forbidden: {op} on {key:?} is not granted to this principal")]
    Forbidden {
        /// The operation ("read", "write", "lease").
        op: &'static str,
        /// The key or prefix.
        key: String,
    },
    /// A watch asked to resume from a revision the store no longer remembers.
    #[error("revision {requested} is compacted (oldest available: {oldest}); re-read and watch from now")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available.
        oldest: u64,
    },
    /// A watcher fell too far behind and was dropped; resume from the last revision seen.
    #[error("watch fell behind and was closed after revision {0}; resume from the next one")]
    Lagged(u64),
    /// A key that cannot be stored (empty, or over the size limit).
    #[error("invalid key {0:?}: keys are 1 to 1024 bytes")]
    InvalidKey(String),
    /// A value over the size limit.
    #[error("value of {0} bytes is over the 1 MiB limit")]
    ValueTooLarge(usize),
    /// The storage engine failed (disk full, corruption, I/O).
    #[error("storage: {0}")]
    Backend(String),
    /// The store cannot be reached or cannot reach agreement (no etcd member answers, or the
    /// cluster lost its quorum). Nothing was written; the caller may try again later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The largest key accepted, in bytes (etcd's default request limit is far larger; registry
/// keys are short paths).
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest value accepted, in bytes (etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Refuses a key no backend may store (empty or over [`MAX_KEY_BYTES`]); every backend checks
/// with this so they agree.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidKey(key.chars().take(64).collect()));
    }
    Ok(())
}

/// Refuses a value over [`MAX_VALUE_BYTES`], the same limit for every backend.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::ValueTooLarge(value.len()));
    }
    Ok(())
}

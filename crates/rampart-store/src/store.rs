//! The registry trait. Every backend (embedded redb, etcd) implements it with the same
//! semantics, checked by one shared test suite (`tests/suite`).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{CasOutcome, Expect, KeyValue, LeaseId, Revision, Watch};

/// A key-value store with prefixes, compare-and-set, leases and watches (the subset of etcd v3
/// that rampart uses). Every write is durable before the call returns.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key's current value.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, in key order.
    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>>;

    /// Sets a key, attached to `lease` if given. Returns the new revision.
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Deletes a key; whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes every key under `prefix`; how many there were.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    /// Writes `value` (or deletes, with `None`) only if `expect` holds, atomically.
    async fn compare_and_set(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome>;

    /// A new lease living `ttl` unless kept alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Renews a lease for its full TTL; `LeaseNotFound` once it has expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Ends a lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Changes under `prefix` from revision `from` (inclusive) or, with `None`, from now on.
    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch>;

    /// The store's current revision.
    async fn revision(&self) -> Result<Revision>;
}

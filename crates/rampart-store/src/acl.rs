//! Per-principal access to the registry: a principal may only read and write under the prefixes
//! it was granted, and use only the leases it was granted. The gateway builds the [`Grants`]
//! of each caller (a node: its own lease and `services/<svc>/` of its services; an admin:
//! everything) and wraps the store for that call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::types::{CasOutcome, Expect, KeyValue, LeaseId, Revision, Watch};

/// Which leases a principal may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LeaseAccess {
    /// None: no granting, renewing, revoking or attaching.
    #[default]
    None,
    /// May grant new leases, and use exactly these.
    Own(Vec<LeaseId>),
    /// May attach keys to exactly these leases, and nothing more: no granting, renewing or
    /// revoking (a node and its registration's lease, so that what it claims vanishes with it).
    Attach(Vec<LeaseId>),
    /// Every lease (administrators).
    All,
}

/// What a principal may touch. Empty by default: default deny.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Key prefixes it may read (get, range, watch).
    pub read: Vec<String>,
    /// Key prefixes it may write (put, delete, compare-and-set); writing implies reading.
    pub write: Vec<String>,
    /// Leases it may use.
    pub leases: LeaseAccess,
}

impl Grants {
    /// Everything (an administrator).
    pub fn all() -> Self {
        Grants { read: vec![String::new()], write: vec![String::new()], leases: LeaseAccess::All }
    }

    fn may_read(&self, key: &str) -> bool {
        self.read.iter().chain(&self.write).any(|p| key.starts_with(p.as_str()))
    }

    fn may_write(&self, key: &str) -> bool {
        self.write.iter().any(|p| key.starts_with(p.as_str()))
    }

    fn may_use(&self, lease: LeaseId) -> bool {
        match &self.leases {
            LeaseAccess::None => false,
            LeaseAccess::Own(ids) | LeaseAccess::Attach(ids) => ids.contains(&lease),
            LeaseAccess::All => true,
        }
    }
}

/// A store seen through one principal's grants.
#[derive(Debug)]
pub struct AclStore<S: ?Sized> {
    inner: Arc<S>,
    grants: Grants,
}

impl<S: Store + ?Sized> AclStore<S> {
    /// `inner` limited to `grants`.
    pub fn new(inner: Arc<S>, grants: Grants) -> Self {
        AclStore { inner, grants }
    }

    fn read(&self, key: &str) -> Result<()> {
        if self.grants.may_read(key) { Ok(()) } else { Err(forbidden("read", key)) }
    }

    fn write(&self, key: &str) -> Result<()> {
        if self.grants.may_write(key) { Ok(()) } else { Err(forbidden("write", key)) }
    }

    fn lease(&self, lease: Option<LeaseId>) -> Result<()> {
        match lease {
            Some(l) if !self.grants.may_use(l) => Err(forbidden("lease", &format!("{:x}", l.0))),
            _ => Ok(()),
        }
    }
}

fn forbidden(op: &'static str, key: &str) -> StoreError {
    StoreError::Forbidden { op, key: key.chars().take(200).collect() }
}

#[async_trait]
impl<S: Store + ?Sized> Store for AclStore<S> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.read(key)?;
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        self.read(prefix)?;
        self.inner.range(prefix).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        self.write(key)?;
        self.lease(lease)?;
        self.inner.put(key, value, lease).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.write(key)?;
        self.inner.delete(key).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.write(prefix)?;
        self.inner.delete_prefix(prefix).await
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome> {
        self.write(key)?;
        self.lease(lease)?;
        self.inner.compare_and_set(key, expect, value, lease).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if matches!(self.grants.leases, LeaseAccess::None | LeaseAccess::Attach(_)) {
            return Err(forbidden("lease", "grant"));
        }
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        if matches!(self.grants.leases, LeaseAccess::Attach(_)) {
            return Err(forbidden("lease", "renew"));
        }
        self.lease(Some(lease))?;
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        if matches!(self.grants.leases, LeaseAccess::Attach(_)) {
            return Err(forbidden("lease", "revoke"));
        }
        self.lease(Some(lease))?;
        self.inner.revoke_lease(lease).await
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch> {
        self.read(prefix)?;
        self.inner.watch(prefix, from).await
    }

    async fn revision(&self) -> Result<Revision> {
        self.inner.revision().await
    }
}

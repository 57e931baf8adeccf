//! Leases. etcd counts TTLs in whole seconds with a floor of its own (about one and a half
//! election timeouts), so a shorter TTL is rounded up: a lease never ends earlier than asked.

use std::time::Duration;

use rampart_store::{LeaseId, Result, StoreError};

use crate::Inner;
use crate::endpoints::Failure;

impl Inner {
    pub(crate) async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let secs =
            i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).unwrap_or(i64::MAX).max(1);
        let ran = self
            .endpoints
            .run("grant lease", |mut c| async move { c.client.lease_grant(secs, None).await })
            .await
            .map_err(|f| self.failed(f, "", None))?;
        self.endpoints.saw(ran.value.header());
        Ok(LeaseId(ran.value.id()))
    }

    /// One keep-alive over its own stream: a registry renews a few leases every few seconds,
    /// not enough to keep a stream per lease open.
    pub(crate) async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let ran = self
            .endpoints
            .run("keep lease alive", |mut c| async move {
                // Opening the stream renews once (and turns etcd's "TTL 0" answer into an
                // error); the TTL granted is in the answer to a second renewal.
                let (mut keeper, mut stream) = match c.client.lease_keep_alive(lease.0).await {
                    Ok(pair) => pair,
                    Err(etcd_client::Error::LeaseKeepAliveError(m)) if m.contains("not found") => {
                        return Ok(Some(0));
                    }
                    Err(e) => return Err(e),
                };
                keeper.keep_alive().await?;
                Ok(stream.message().await?.map(|resp| resp.ttl()))
            })
            .await
            .map_err(|f| self.failed(f, "", Some(lease)))?;
        match ran.value {
            Some(ttl) if ttl > 0 => Ok(Duration::from_secs(ttl.unsigned_abs())),
            Some(_) => Err(StoreError::LeaseNotFound(lease.0)),
            None => Err(StoreError::Unavailable("keep lease alive: the member closed the stream".into())),
        }
    }

    /// Revokes a lease. A revoke retried after a failover that finds the lease gone counts as
    /// done: the first try may well have revoked it.
    pub(crate) async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let ran = self
            .endpoints
            .run("revoke lease", |mut c| async move { c.client.lease_revoke(lease.0).await })
            .await;
        match ran {
            Ok(ran) => {
                self.endpoints.saw(ran.value.header());
                Ok(())
            }
            Err(Failure::Refused { status, ambiguous: true }) if status.code() == tonic::Code::NotFound => {
                Ok(())
            }
            Err(f) => Err(self.failed(f, "", Some(lease))),
        }
    }
}

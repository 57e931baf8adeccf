//! The registry reached through a gateway: a [`Store`] whose operations are `POST
//! /_rampart/store` requests over mutual TLS. The gateway runs each one through the caller's
//! ACL (an admin: everything; a node: its services' state), so nodes and the CLI never open
//! the store themselves. Watches are not offered remotely (yet).

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use rampart_store::{CasOutcome, Expect, KeyValue, LeaseId, Revision, Store, StoreError, Watch};

use crate::client::HttpsClient;
use crate::contract::path::STORE as STORE_PATH;
use crate::contract::store::{
    StoreErrorKind, StoreRequest, StoreResponse, WireExpect, WireKv, decode, encode,
};
use crate::gateways::{Gateways, GatewaysError};
use crate::serve::full;

/// Runs a wire request against a store (the gateway side of the API).
pub async fn execute(store: &dyn Store, req: StoreRequest) -> Result<StoreResponse, StoreError> {
    let mut out = StoreResponse::default();
    match req {
        StoreRequest::Get { key } => out.kv = store.get(&key).await?.map(WireKv::from),
        StoreRequest::Range { prefix } => {
            out.kvs = Some(store.range(&prefix).await?.into_iter().map(WireKv::from).collect());
        }
        StoreRequest::Put { key, value, lease } => {
            out.revision = Some(store.put(&key, decode(&value)?, lease.map(LeaseId)).await?);
        }
        StoreRequest::Delete { key } => out.deleted = Some(u64::from(store.delete(&key).await?)),
        StoreRequest::DeletePrefix { prefix } => out.deleted = Some(store.delete_prefix(&prefix).await?),
        StoreRequest::Cas { key, expect, value, lease } => {
            let expect = match expect {
                WireExpect::Absent => Expect::Absent,
                WireExpect::ModRevision(r) => Expect::ModRevision(r),
                WireExpect::Value(v) => Expect::Value(decode(&v)?),
            };
            let value = value.map(|v| decode(&v)).transpose()?;
            let o = store.compare_and_set(&key, expect, value, lease.map(LeaseId)).await?;
            out.succeeded = Some(o.succeeded);
            out.revision = Some(o.revision);
            out.kv = o.current.map(WireKv::from);
        }
        StoreRequest::Grant { ttl_ms } => {
            out.lease = Some(store.grant_lease(Duration::from_millis(ttl_ms)).await?.0)
        }
        StoreRequest::KeepAlive { lease } => {
            out.ttl_ms =
                Some(u64::try_from(store.keep_alive(LeaseId(lease)).await?.as_millis()).unwrap_or(u64::MAX));
        }
        StoreRequest::Revoke { lease } => store.revoke_lease(LeaseId(lease)).await?,
        StoreRequest::Revision => out.revision = Some(store.revision().await?),
    }
    Ok(out)
}

/// The store of a network's gateways, reached over mutual TLS; the next gateway is tried when
/// the one in use cannot be reached.
#[derive(Clone, Debug)]
pub struct RemoteStore {
    client: HttpsClient,
    gateways: std::sync::Arc<Gateways>,
}

impl RemoteStore {
    /// The store API of the gateway at `base` (`https://host:port`), through `client`.
    pub fn new(client: HttpsClient, base: &str) -> Self {
        Self::with_gateways(client, std::sync::Arc::new(Gateways::new(&[base])))
    }

    /// The store API of whichever of `gateways` answers.
    pub fn with_gateways(client: HttpsClient, gateways: std::sync::Arc<Gateways>) -> Self {
        RemoteStore { client, gateways }
    }

    async fn call(&self, req: StoreRequest) -> Result<StoreResponse, StoreError> {
        // Reads, lease renewals and plain puts/deletes are safe to send again when an answer
        // was lost; a compare-and-set or a lease grant is not (it may have been applied).
        let repeatable = !matches!(req, StoreRequest::Cas { .. } | StoreRequest::Grant { .. });
        self.call_inner(&req, repeatable).await.map_err(|(e, _)| e)
    }

    /// One operation through the gateways; on failure, also whether it may have been applied
    /// (it reached a gateway and the answer was lost).
    async fn call_inner(
        &self,
        req: &StoreRequest,
        repeatable: bool,
    ) -> Result<StoreResponse, (StoreError, bool)> {
        let failed = |e: String| StoreError::Unavailable(e);
        let body = serde_json::to_vec(req).map_err(|e| (failed(e.to_string()), false))?;
        let build = |base: &str| {
            http::Request::post(format!("{base}{STORE_PATH}"))
                .header(http::header::CONTENT_TYPE, crate::contract::media::JSON)
                .body(full(body.clone()))
        };
        let timeout = Duration::from_secs(10);
        let sent = if repeatable {
            self.gateways.send_idempotent(&self.client, timeout, build).await
        } else {
            self.gateways.send(&self.client, timeout, build).await
        };
        let (url, resp) = sent.map_err(|e| {
            let lost = matches!(e, GatewaysError::Lost { .. });
            (failed(e.to_string()), lost)
        })?;
        self.answer(url, resp).await.map_err(|e| (e, false))
    }

    async fn answer(
        &self,
        url: String,
        resp: http::Response<hyper::body::Incoming>,
    ) -> Result<StoreResponse, StoreError> {
        let failed = |e: String| StoreError::Unavailable(format!("gateway {url}: {e}"));
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), 64 << 20)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        let out: StoreResponse = serde_json::from_slice(&bytes).map_err(|_| {
            failed(format!(
                "answered {status} with {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        match (out.kind, &out.error) {
            (Some(StoreErrorKind::Forbidden), Some(e)) => {
                Err(StoreError::Forbidden { op: "remote", key: e.clone() })
            }
            (Some(StoreErrorKind::LeaseNotFound), _) => Err(StoreError::LeaseNotFound(0)),
            (Some(StoreErrorKind::Invalid), Some(e)) => Err(StoreError::Backend(e.clone())),
            (_, Some(e)) => Err(failed(e.clone())),
            _ => Ok(out),
        }
    }
}

#[async_trait]
impl Store for RemoteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.call(StoreRequest::Get { key: key.into() }).await?.kv.map(KeyValue::try_from).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let kvs = self.call(StoreRequest::Range { prefix: prefix.into() }).await?.kvs.unwrap_or_default();
        kvs.into_iter().map(KeyValue::try_from).collect()
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision, StoreError> {
        let req = StoreRequest::Put { key: key.into(), value: encode(&value), lease: lease.map(|l| l.0) };
        Ok(self.call(req).await?.revision.unwrap_or_default())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.call(StoreRequest::Delete { key: key.into() }).await?.deleted.unwrap_or_default() > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        Ok(self.call(StoreRequest::DeletePrefix { prefix: prefix.into() }).await?.deleted.unwrap_or_default())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome, StoreError> {
        let expect = match expect {
            Expect::Absent => WireExpect::Absent,
            Expect::ModRevision(r) => WireExpect::ModRevision(r),
            Expect::Value(v) => WireExpect::Value(encode(&v)),
        };
        let value_sent = value.clone();
        let req = StoreRequest::Cas {
            key: key.into(),
            expect,
            value: value.map(|v| encode(&v)),
            lease: lease.map(|l| l.0),
        };
        let out = match self.call_inner(&req, false).await {
            Ok(out) => out,
            // Sent to a gateway that died before answering: it may have been applied. Send it
            // again (its compare lets at most one apply); if this try's compare fails because
            // the key already holds exactly what this call writes, the first try applied.
            // (Another writer writing the very same value at that moment would look the same;
            // registry writers use keys and values of their own.)
            Err((_, true)) => {
                let out = self.call_inner(&req, true).await.map_err(|(e, _)| e)?;
                let current = out.kv.clone().map(KeyValue::try_from).transpose()?;
                let ours = match (&current, &value_sent) {
                    (Some(kv), Some(v)) => &kv.value == v && kv.lease == lease,
                    (None, None) => true,
                    _ => false,
                };
                if out.succeeded != Some(true) && ours {
                    let revision =
                        current.as_ref().map_or(out.revision.unwrap_or_default(), |kv| kv.mod_revision);
                    return Ok(CasOutcome { succeeded: true, revision, current });
                }
                out
            }
            Err((e, false)) => return Err(e),
        };
        Ok(CasOutcome {
            succeeded: out.succeeded.unwrap_or(false),
            revision: out.revision.unwrap_or_default(),
            current: out.kv.map(KeyValue::try_from).transpose()?,
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let out = self.call(StoreRequest::Grant { ttl_ms }).await?;
        out.lease.map(LeaseId).ok_or_else(|| StoreError::Backend("no lease in the answer".into()))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, StoreError> {
        let out = self.call(StoreRequest::KeepAlive { lease: lease.0 }).await.map_err(|e| match e {
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease.0),
            e => e,
        })?;
        Ok(Duration::from_millis(out.ttl_ms.unwrap_or_default()))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.call(StoreRequest::Revoke { lease: lease.0 }).await.map(|_| ())
    }

    async fn watch(&self, _prefix: &str, _from: Option<Revision>) -> Result<Watch, StoreError> {
        Err(StoreError::Backend("watches are not offered through the gateway".into()))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.call(StoreRequest::Revision).await?.revision.unwrap_or_default())
    }
}

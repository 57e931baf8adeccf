//! rampart's registry kept in an etcd v3 cluster, for networks whose gateways share one
//! registry: [`EtcdStore`] implements [`rampart_store::Store`] with the same semantics as the
//! embedded backend (the shared suite checks both), every key under one prefix of the
//! cluster, with failover between members done here rather than by the client library.
//!
//! ```no_run
//! # async fn run() -> Result<(), rampart_store::StoreError> {
//! use rampart_etcd::{EtcdConfig, EtcdStore};
//! use rampart_store::Store;
//! let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/rampart/example.org/");
//! let store = EtcdStore::connect(config).await?;
//! store.put("nodes/web-1", b"127.0.0.1:7001".to_vec(), None).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: the settings (`store = { etcd = { ... } }` in `rampart.toml`);
//! - `endpoints`: one connection at a time, failover, deadlines, what a failed try means;
//! - `kv`: the prefix, reads, writes, compare-and-set and its outcome after a failover;
//! - `lease`: leases in etcd's whole seconds;
//! - `watch`: watches that resume on another member without missing or repeating events.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod endpoints;
mod kv;
mod lease;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use rampart_store::{LeaseId, Result, Revision, StoreError, Watch};

pub use config::EtcdConfig;
use endpoints::Endpoints;

/// HTTP/2 pings on idle connections; etcd refuses pings more often than every 5 s by default.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The registry in etcd. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    endpoints: Endpoints,
    prefix: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("prefix", &self.inner.prefix).finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Checks the configuration, reads its TLS and password files, and connects to the first
    /// member that answers (`Unavailable` when none does within the request timeout).
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        config.validate()?;
        let mut options = ConnectOptions::new()
            // A member cut off from its leader refuses at once instead of hanging.
            .with_require_leader(true)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(KEEP_ALIVE, config.request_timeout);
        if let Some(tls) = config.tls_files()? {
            let mut t = TlsOptions::new();
            if let Some(ca) = tls.ca {
                t = t.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = tls.identity {
                t = t.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(t);
        }
        if let Some((user, password)) = config.credentials()? {
            options = options.with_user(user, password).with_auto_token_refresh(true);
        }
        let endpoints = Endpoints::new(
            config.endpoints.clone(),
            options,
            config.prefix.clone().into_bytes(),
            config.request_timeout,
            config.connect_timeout,
        );
        let inner = Inner { endpoints, prefix: config.prefix };
        // The first read names the whole prefix when etcd's role does not reach it.
        inner.revision().await.map_err(|e| match e {
            StoreError::Forbidden { op, .. } => StoreError::Forbidden { op, key: inner.prefix.clone() },
            e => e,
        })?;
        Ok(EtcdStore { inner: Arc::new(inner) })
    }

    /// The prefix every key lives under.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The client URL of the member in use, if connected.
    pub async fn current_endpoint(&self) -> Option<String> {
        self.inner.endpoints.current_url().await
    }
}

/// An error etcd answered with, as a store error.
pub(crate) fn refused(status: &tonic::Status, key: &str, lease: Option<LeaseId>) -> StoreError {
    use tonic::Code;
    let msg = status.message();
    match status.code() {
        Code::NotFound if msg.contains("lease") => StoreError::LeaseNotFound(lease.map_or(0, |l| l.0)),
        Code::PermissionDenied => StoreError::Forbidden { op: "etcd role", key: key.to_owned() },
        _ => StoreError::Backend(format!("etcd: {msg} ({:?})", status.code())),
    }
}

rampart_store::delegate_store! {
    impl Store for EtcdStore => inner;
    pass: [get, range, put, delete, delete_prefix, compare_and_set, grant_lease, keep_alive, revoke_lease, revision];

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch> {
        watch::watch(self.inner.clone(), prefix, from).await
    }
}

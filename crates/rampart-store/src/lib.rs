//! rampart's registry: nodes, services' state, users, tokens and policy, kept in a key-value
//! store with prefixes, compare-and-set, leases and watches — the subset of etcd v3 rampart
//! needs, so that the etcd backend maps onto the same [`Store`] trait one to one.
//!
//! The default backend is [`EmbeddedStore`], one redb file with every write fsync'd before it
//! is acknowledged. [`AclStore`] wraps any store and lets a principal touch only the prefixes
//! it was granted (a node: its own lease and its services' state; an admin: everything).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rampart_store::StoreError> {
//! use std::time::Duration;
//! use rampart_store::{EmbeddedStore, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let store = EmbeddedStore::open(&dir.path().join("registry.redb"))?;
//! let lease = store.grant_lease(Duration::from_secs(3)).await?;
//! store.put("nodes/web-1", b"127.0.0.1:7001".to_vec(), Some(lease)).await?;
//! assert_eq!(store.range("nodes/").await?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`store`]: the trait;
//! - [`types`]: key-values, revisions, leases, compare-and-set, watch events;
//! - [`embedded`]: the redb backend;
//! - [`acl`]: per-principal prefix grants over any store;
//! - [`mirror`]: reads under a prefix answered from memory, kept current by a watch;
//! - `delegate`: [`delegate_store!`], a `Store` impl passing through to a field;
//! - `watch`: fan-out of changes with a bounded history for resuming.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acl;
#[doc(hidden)]
pub mod delegate;
pub mod embedded;
pub mod error;
pub mod mirror;
pub mod store;
pub mod types;
mod watch;

pub use acl::{AclStore, Grants, LeaseAccess};
pub use embedded::EmbeddedStore;
pub use error::{Result, StoreError};
pub use mirror::Mirror;
pub use store::Store;
pub use types::{CasOutcome, Event, EventKind, Expect, KeyValue, LeaseId, Revision, Watch};

//! Federation: peer networks whose services answer through this network's gateway. A peer is
//! known by its trust domain and the CA bundle that verifies its identities, kept one root store
//! per domain (never merged), and reached at one or more gateway URLs.
//!
//! # Layout
//! - [`peers`]: the peers a network trusts, kept in the registry under `peers/`;
//! - [`exports`]: which local services each peer may call (`exports/` in the registry);
//! - [`assertion`]: the signed word of a forwarding gateway about its caller, and its check.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod assertion;
pub mod exports;
pub mod peers;

pub use peers::{Peer, PeerError};

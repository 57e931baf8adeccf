//! The network layer of rampart: TLS configurations with the peer's role checked during the
//! handshake, an HTTP/1.1 + HTTP/2 server over TLS that takes a bound listener and a shutdown
//! signal, and a pooled mutual-TLS client.
//!
//! # Layout
//! - [`tls`]: server and client configs (client certificate off/optional/required, roles);
//! - [`serve`]: the accept loop, limits, graceful drain;
//! - [`client`]: the pooled HTTPS client;
//! - [`remote_store`]: the registry reached through a gateway (a [`rampart_store::Store`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod gateways;
pub mod remote_store;
pub mod serve;
pub mod tls;

pub use error::{NetError, Result};

/// Set (to `unavailable`) by a node on an answer that failed because the registry could not
/// be reached: the gateway passes it on without blaming the node or trying another (they
/// share the registry).
pub const REGISTRY_HEADER: &str = "rampart-registry";
pub use serve::{Body, BoxError, ConnInfo, ConnProblem, Handler, Observers, ServeLimits, full, serve};
pub use tls::{ClientAuth, TlsMaterial};

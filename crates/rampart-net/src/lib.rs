//! The network layer of rampart: TLS configurations with the peer's role checked during the
//! handshake, an HTTP/1.1 + HTTP/2 server over TLS that takes a bound listener and a shutdown
//! signal, and a pooled mutual-TLS client.
//!
//! # Layout
//! - [`tls`]: server and client configs (client certificate off/optional/required, roles);
//! - [`serve`]: the accept loop, limits, graceful drain; `conn`: one connection's idle and
//!   head clock, the 414 for an over-long request line, the lingering close;
//! - [`refusal`]: why a TLS handshake was refused, by kind;
//! - [`wire`]: the method and path rules gateway and node both apply;
//! - [`client`]: the pooled HTTPS client;
//! - [`remote_store`]: the registry reached through a gateway (a [`rampart_store::Store`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
mod conn;
pub mod error;
pub mod gateways;
pub mod proxy_header;
pub mod refusal;
pub mod remote_store;
pub mod serve;
pub mod tls;
pub mod wire;

pub use error::{NetError, Result};

/// Set (to `unavailable`) by a node on an answer that failed because the registry could not
/// be reached: the gateway passes it on without blaming the node or trying another (they
/// share the registry).
pub const REGISTRY_HEADER: &str = "rampart-registry";
/// Set by a node on an answer its service produced, as opposed to a refusal of the node's own
/// (a replayed envelope, a registry out of reach, a limit): only such an answer may be
/// recorded as the outcome of an `Idempotency-Key`. The gateway removes it.
pub const SERVED_HEADER: &str = "rampart-served";
pub use refusal::HandshakeRefusal;
pub use serve::{
    Body, BoxError, ConnInfo, ConnProblem, Handler, Observers, ServeLimits, Source, full, serve,
};
pub use tls::{ClientAuth, TlsMaterial};

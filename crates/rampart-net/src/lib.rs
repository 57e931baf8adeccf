//! The network layer of rampart: TLS configurations with the peer's role checked during the
//! handshake, an HTTP/1.1 + HTTP/2 server over TLS that takes a bound listener and a shutdown
//! signal, and a pooled mutual-TLS client.
//!
//! # Layout
//! - [`tls`]: server and client configs (client certificate off/optional/required, roles);
//! - [`accept`]: the accept layer — connection cap, PROXY header, drain — handing
//!   connections to a [`accept::Protocol`] that may peek at their first bytes;
//! - [`serve`]: the HTTPS protocol (TLS, HTTP/1.1 and HTTP/2, limits); `conn`: one
//!   connection's idle and head clock, the 414 for an over-long request line, the lingering
//!   close;
//! - [`hello`]: a ClientHello read (its SNI) without ending TLS, every byte kept;
//!   [`rewind`]: those bytes put back in front of the stream, for a handshake here;
//!   [`redirect`]: the plain-HTTP protocol that only answers 308 to HTTPS; [`passthrough`]:
//!   the protocol that relays a connection by its SNI to a node, or ends TLS here;
//! - [`refusal`]: why a TLS handshake was refused, by kind;
//! - [`contract`]: the wire contract — headers, media types, API paths, the internal and store
//!   API bodies;
//! - [`trust`]: trust kept per trust domain (peer networks' CA bundles, never merged);
//! - [`wire`]: the method and path rules gateway and node both apply;
//! - [`client`]: the pooled HTTPS client;
//! - [`remote_store`]: the registry reached through a gateway (a [`rampart_store::Store`]);
//! - [`workers`]: one single-threaded runtime per core, serving the connections handed to it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accept;
pub mod body;
pub mod client;
mod conn;
pub mod contract;
pub mod error;
pub mod gateways;
pub mod hello;
mod http1;
pub mod passthrough;
pub mod pool;
pub mod proxy_header;
pub mod redirect;
pub mod refusal;
pub mod remote_store;
pub mod rewind;
pub mod serve;
pub mod tls;
pub mod trust;
mod watchdog;
pub mod wire;
pub mod workers;

pub use error::{NetError, Result};

pub use refusal::HandshakeRefusal;
pub use serve::{
    Body, BoxError, ConnInfo, ConnProblem, Handler, Observers, ServeLimits, Source, full, serve,
};
pub use tls::{ClientAuth, TlsMaterial};

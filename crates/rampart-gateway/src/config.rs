//! `[gateway]` in `rampart.toml`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How a gateway runs. Every field has a default; the file needs only what differs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address of the front listener. Default: `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// Client certificates at the front door: `off`, `optional` or `required`. Default:
    /// `optional` (clients use a certificate or a token; nodes always use certificates).
    pub client_cert: String,
    /// Lease of a registered node, in milliseconds: a node silent this long leaves the pool.
    /// Default: 3000.
    pub lease_ttl_ms: u64,
    /// How often nodes are told to heartbeat, in milliseconds. Default: 1000.
    pub heartbeat_ms: u64,
    /// Largest request body accepted, in bytes. Default: 8 MiB.
    pub max_body_bytes: usize,
    /// Time to connect to a node, in milliseconds. Default: 2000.
    pub connect_timeout_ms: u64,
    /// Time for a node to answer, in milliseconds. Default: 30000.
    pub request_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            client_cert: "optional".into(),
            lease_ttl_ms: 3000,
            heartbeat_ms: 1000,
            max_body_bytes: 8 << 20,
            connect_timeout_ms: 2000,
            request_timeout_ms: 30_000,
        }
    }
}

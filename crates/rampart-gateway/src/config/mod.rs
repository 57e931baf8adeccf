//! `[gateway]` in `rampart.toml`: read and written in its grouped form (`[gateway.limits]`,
//! `[gateway.bans]`, `[gateway.retry]`, `[gateway.health]`, `[gateway.federation]`, durations as `"10s"`) by
//! [`file`], which also still reads the flat keys of earlier versions. In memory it is one flat
//! struct, in milliseconds and seconds.

mod file;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How a gateway runs. Every field has a default; the file needs only what differs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "file::GatewayFile", into = "file::GatewayFile")]
pub struct GatewayConfig {
    /// Address of the front listener. Default: `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// Networks of the load balancers in front of this listener that send the PROXY protocol
    /// (v1 or v2) with each client's address: their connections must carry the header, and
    /// nobody else's may (`["10.0.0.0/8"]`). Default: none, no header accepted.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Networks of the HTTP proxies in front of this listener whose `Forwarded` /
    /// `X-Forwarded-For` is believed (the rightmost address that is not one of them is the
    /// client). From anyone else the headers are ignored. Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
    /// Time to connect to a node, in milliseconds. Default: 1000.
    pub connect_timeout_ms: u64,
    /// Time one attempt may take before the node counts as hung, in milliseconds. Default: 3000.
    pub try_timeout_ms: u64,
    /// Time a request may take in all, retries included, in milliseconds. Default: 15000.
    pub deadline_ms: u64,
    /// Most attempts per request (the first included). Default: 3.
    pub max_attempts: u32,
    /// Retries allowed per request over a 10 s window, on top of the floor. Default: 0.2.
    pub retry_ratio: f64,
    /// Retries always allowed per second. Default: 10.
    pub retry_floor_per_sec: f64,
    /// How often every node is probed, in milliseconds. Default: 500.
    pub probe_interval_ms: u64,
    /// How long an `Idempotency-Key` outcome is kept and replayed, in seconds. Default: 86400.
    pub idempotency_window_secs: u64,
    /// Requests per second allowed from one source address (0: no limit). Default: 10000.
    pub rate_per_source: f64,
    /// Requests per second allowed for one principal (0: no limit). Default: 10000.
    pub rate_per_principal: f64,
    /// Bursts allowed above the rates, as a multiple of one second's worth. Default: 2.
    pub rate_burst_secs: f64,
    /// Longest request URI, bytes (414 beyond). Default: 8192.
    pub max_uri_bytes: usize,
    /// Largest request head, bytes (431 beyond). Default: 8192, as nginx's per-line limit. It is
    /// also the cap of the HTTP/1.1 read buffer every connection keeps while it idles: with
    /// 16384, 10,000 idle keep-alive connections held 57 MiB more.
    pub max_header_bytes: usize,
    /// Most request headers (431 beyond). Default: 100.
    pub max_headers: usize,
    /// Time for a client to send its request headers once it began them, and to complete the
    /// TLS handshake (a PROXY protocol header included), in milliseconds (a slow client
    /// beyond). Default: 10000.
    pub header_timeout_ms: u64,
    /// Time a connection may idle between requests before it is closed quietly, in
    /// milliseconds. Default: 60000.
    pub idle_timeout_ms: u64,
    /// Time a request body may pause between bytes, in milliseconds (408 beyond). Default: 10000.
    pub body_idle_timeout_ms: u64,
    /// Connections served at once. Default: 10000.
    pub max_connections: usize,
    /// Authentication failures from one source, within `ban_window_secs`, that ban it
    /// (0: never ban). Default: 20.
    pub ban_after_failures: u32,
    /// The window for counting those failures, in seconds. Default: 60.
    pub ban_window_secs: u64,
    /// How long a ban lasts, in seconds. Default: 300.
    pub ban_secs: u64,
    /// IPv6 sources are counted and banned by this prefix length, since one machine commonly
    /// holds a whole /64 (128: by address). Default: 64.
    pub ban_ipv6_prefix: u8,
    /// Most unexpired envelope claims (the network-wide replay guard) this gateway keeps in
    /// the registry; past it, encrypted requests are refused (503) until some expire, rather
    /// than a claim forgotten. Default: 500000 (over 8,000 encrypted requests a second with
    /// the default 60 s envelope TTL).
    pub max_envelope_claims: usize,
    /// A bearer token that may read `/_rampart/metrics` (besides admins). Default: none.
    pub metrics_token: Option<String>,
    /// How often each peer network's catalog is asked for, in milliseconds: also its
    /// heartbeat. Default: 1000.
    pub catalog_interval_ms: u64,
    /// A peer whose catalog has not answered for this long is down, in milliseconds.
    /// Default: 3000.
    pub peer_stale_after_ms: u64,
    /// Most networks a request may have passed to be served (508 beyond). Default: 4.
    pub max_chain: usize,
    /// Services that go to a peer network exporting them even while a local replica is live
    /// (the local replicas then serve only while no peer exporting them is up). Default: none —
    /// local first.
    pub prefer_peers: Vec<String>,
    /// More front listeners (`[[gateway.listeners]]`): each with its own client certificate
    /// mode and certificates (chosen by SNI), or a plain-HTTP one that only redirects to HTTPS.
    /// Default: none (only `listen`).
    pub listeners: Vec<ListenerConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            client_cert: "optional".into(),
            lease_ttl_ms: 3000,
            heartbeat_ms: 1000,
            max_body_bytes: 8 << 20,
            connect_timeout_ms: 1000,
            try_timeout_ms: 3000,
            deadline_ms: 15_000,
            max_attempts: 3,
            retry_ratio: 0.2,
            retry_floor_per_sec: 10.0,
            probe_interval_ms: 500,
            idempotency_window_secs: 86_400,
            rate_per_source: 10_000.0,
            rate_per_principal: 10_000.0,
            rate_burst_secs: 2.0,
            max_uri_bytes: 8192,
            max_header_bytes: 8 << 10,
            max_headers: 100,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_idle_timeout_ms: 10_000,
            max_connections: 10_000,
            ban_after_failures: 20,
            ban_window_secs: 60,
            ban_secs: 300,
            ban_ipv6_prefix: 64,
            max_envelope_claims: 500_000,
            metrics_token: None,
            catalog_interval_ms: 1000,
            peer_stale_after_ms: 3000,
            max_chain: 4,
            prefer_peers: Vec::new(),
            listeners: Vec::new(),
            proxy_protocol_from: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// One more front listener (`[[gateway.listeners]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Client certificates here: `off`, `optional` or `required` [default: the gateway's].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Its certificates (PEM files, relative to the home): the one whose DNS names hold the
    /// client's SNI is presented, the first otherwise [default: the gateway's own].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateFiles>,
    /// `"redirect"`: plain HTTP, every request answered 308 to the same path over HTTPS on the
    /// gateway's `listen` port (nothing else is served in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<Insecure>,
    /// `true`: it only relays passthrough routes, by the name each client asks for; nothing
    /// ends at the gateway here (no certificate, no API), and a client asking for no name or
    /// another is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay_only: bool,
}

/// A certificate and its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// The certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM).
    pub key: std::path::PathBuf,
}

/// What a plain-HTTP listener does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Insecure {
    /// Answers 308 Permanent Redirect to `https://` (the method and body kept by the client).
    Redirect,
}

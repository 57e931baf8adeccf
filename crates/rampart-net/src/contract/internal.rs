//! `POST /_rampart/internal/<endpoint>`: what nodes say to gateways, and the answers. Only node
//! certificates may call it. Every message is safe to repeat on another gateway of the network
//! when its answer was lost.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The internal API's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// [`Registration`] → [`Registered`]: join the pool under a lease.
    Register,
    /// `{}` → [`HeartbeatAnswer`]: renew the lease (404 once it lapsed: register again).
    Heartbeat,
    /// `{}` → `{"result": "ok"}`: leave the pool and drain.
    Deregister,
    /// An event (`rampart_events::NewEvent`) → `{"result": "ok"}`: a caller the node refused.
    Events,
    /// [`ClaimRequest`] → [`ClaimAnswer`]: claim an envelope in the network-wide replay guard.
    Envelopes,
    /// A CSR (PEM, [`super::media::PKCS10`]) → the node's new certificate (PEM,
    /// [`super::media::PEM_CERTIFICATES`]): its current certificate renewed for the CSR's key.
    Renew,
    /// [`AdmitRequest`] → [`Admitted`], or the refusal to pass on (its status and body, as the
    /// gateway would have answered): may this caller call this passthrough route now? The
    /// gateway authenticates and applies admission and policy as for its own requests, and
    /// records the refusal as an event of the node.
    Admit,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Register,
        Endpoint::Heartbeat,
        Endpoint::Deregister,
        Endpoint::Events,
        Endpoint::Envelopes,
        Endpoint::Renew,
        Endpoint::Admit,
    ];

    /// Its path, after `/_rampart`.
    pub fn rest(self) -> &'static str {
        match self {
            Endpoint::Register => "/internal/register",
            Endpoint::Heartbeat => "/internal/heartbeat",
            Endpoint::Deregister => "/internal/deregister",
            Endpoint::Events => "/internal/events",
            Endpoint::Envelopes => "/internal/envelopes",
            Endpoint::Renew => "/internal/renew",
            Endpoint::Admit => "/internal/admit",
        }
    }

    /// The endpoint at `rest` (the path after `/_rampart`), if it is one.
    pub fn at(rest: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.rest() == rest)
    }
}

/// A node joining the pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Its internal listener (`0.0.0.0:PORT`: reached at the address it registered from).
    pub addr: SocketAddr,
    /// The services it hosts (service names, never the policy wildcard).
    pub services: Vec<String>,
    /// How long some of its services may take to answer, in milliseconds (a program's
    /// timeout): the gateway waits that long on them rather than taking the node for hung.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub timeouts_ms: std::collections::BTreeMap<String, u64>,
    /// Its listener for the client TLS that gateways relay to it on passthrough routes
    /// (`--public-listen`), if it has one (an unspecified address is read as for `addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<SocketAddr>,
}

/// The gateway's answer to a [`Registration`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The node's lease.
    pub lease: i64,
    /// How long the lease lives without a heartbeat, in milliseconds.
    pub lease_ttl_ms: u64,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// The passthrough routes of the services it hosts: service → the server names (SNI) the
    /// route answers for. Its public listener serves these names, and only these.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub passthrough: std::collections::BTreeMap<String, Vec<String>>,
}

/// A caller of a passthrough route, as the node that ended its TLS saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmitRequest {
    /// The route's service.
    pub service: String,
    /// The request's method.
    pub method: String,
    /// The client's address (from the gateway's PROXY protocol header).
    pub client: SocketAddr,
    /// The request's `Authorization` header, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// The client's certificate (DER, base64), which the node's handshake verified against
    /// the trust domain's CA and CRL, if it presented one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The gateway's answer to an [`AdmitRequest`] it admits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admitted {
    /// The caller's principal, as the service sees it (`Rampart-Principal` on internal calls).
    pub principal: String,
    /// Its role (`Rampart-Role` on internal calls).
    pub role: String,
}

/// The gateway's answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// The lease's time to live now, in milliseconds.
    pub ttl_ms: u64,
}

/// An envelope claimed in the network-wide replay guard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The envelope's id: 32 hexadecimal digits (from its HMAC).
    pub id: String,
    /// When the envelope stops passing the TTL check, seconds since the Unix epoch.
    pub expires: u64,
    /// The idempotency scope, if the request carried a key (hexadecimal).
    pub scope: Option<String>,
    /// The node's own nonce for this request (hexadecimal).
    pub nonce: String,
}

/// What the replay guard says of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVerdict {
    /// Never seen (or seen only as this very request): act on it.
    Fresh,
    /// Seen under this request's idempotency scope: a retry, act on it again.
    Retry,
    /// Seen without this request's scope: a replay.
    Replayed,
    /// Past its TTL already.
    Expired,
}

/// The gateway's answer to a [`ClaimRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimAnswer {
    /// The verdict.
    pub claim: ClaimVerdict,
}

/// The error kind of a claim refused (503) because the guard is full of unexpired claims.
pub const REPLAY_GUARD_FULL: &str = "replay_guard_full";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_and_bodies_keep_their_wire_form() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::at(e.rest()), Some(e));
        }
        assert_eq!(Endpoint::at("/internal/other"), None);
        let reg: Registration =
            serde_json::from_str(r#"{"addr":"0.0.0.0:7001","services":["echo"]}"#).unwrap();
        assert_eq!(reg.services, ["echo"]);
        let answer = serde_json::to_value(ClaimAnswer { claim: ClaimVerdict::Replayed }).unwrap();
        assert_eq!(answer, serde_json::json!({"claim": "replayed"}));
        let registered =
            Registered { lease: 7, lease_ttl_ms: 3000, heartbeat_ms: 1000, passthrough: Default::default() };
        assert_eq!(
            serde_json::to_value(registered).unwrap(),
            serde_json::json!({"lease": 7, "lease_ttl_ms": 3000, "heartbeat_ms": 1000})
        );
    }
}

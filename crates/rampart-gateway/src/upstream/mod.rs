//! Where a service's requests can go. A request is sent to a [`Target`] that an [`Upstreams`]
//! source lists for its service: the local nodes from the registry today ([`nodes`], their
//! routing table in `table`); a peer network's gateway and a passthrough relay are the next
//! sources. How one target is chosen among several ([`balance`]) and what the gateway knows
//! of each one's health ([`health`], kept current by [`probe`] and by the answers themselves)
//! are the same for every source.

pub mod balance;
pub mod health;
pub mod nodes;
pub mod probe;
mod table;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;

pub use health::{HealthBoard, NodeHealth};
pub use nodes::{NodeRecord, Nodes};
pub use transport::{SendError, Sent, Transport};

/// One place a service can be reached.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name (a node's, from its certificate): what events, ejection and `tried` name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What the gateway knows of its health and load.
    pub health: Arc<NodeHealth>,
}

/// A source of targets by service. Object-safe, so the request path holds a `dyn Upstreams`
/// and does not know whether a target is a node or another network's gateway.
pub trait Upstreams: Send + Sync {
    /// Whether any target has ever offered `service` (it may have none live now: callers get
    /// 503 "no live replica", not 404 "unknown service").
    fn knows(&self, service: &str) -> bool;

    /// The targets of `service` now (an empty list when none is live).
    fn targets(&self, service: &str) -> Arc<[Target]>;

    /// The health of every target that shares a service with `target` (itself included): the
    /// pool within which at most a share may be ejected at once.
    fn peers_of(&self, target: &str) -> Vec<Arc<NodeHealth>>;

    /// The health board its targets' health lives on.
    fn board(&self) -> &HealthBoard;

    /// How long `service` may take to answer, when its targets said (a program's timeout):
    /// each attempt waits at least that long, so that a slow answer is not taken for a hang.
    fn takes(&self, _service: &str) -> Option<std::time::Duration> {
        None
    }

    /// How answers name `target` ("node n1").
    fn describe(&self, target: &Target) -> String {
        format!("node {}", target.name)
    }

    /// The answer when a request reached none of the service's targets, `target` the last
    /// tried: 502 for a node (the service is here, its replicas unreachable).
    fn unreachable(&self, target: &Target) -> http::Response<rampart_net::Body> {
        crate::reply::error(
            http::StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            &format!("{} could not be reached", self.describe(target)),
        )
    }
}

/// Who hears what happens to targets: the gateway's events and metrics.
pub trait TargetEvents: Send + Sync {
    /// An ejected target is back in the pool (it answered, or passed its probes).
    fn rejoined(&self, target: &str, why: &str);
    /// A target was taken out of the pool.
    fn ejected(&self, target: &str, why: &str);
    /// A target's certificate was refused (reported once until it answers again).
    fn certificate_refused(&self, target: &str, why: &str);
}

/// A target answered: it may be back in the pool.
pub(crate) fn answered(events: &dyn TargetEvents, target: &Target, in_flight: health::InFlight, why: &str) {
    if in_flight.ok() {
        events.rejoined(&target.name, why);
    }
}

/// A target failed (`why`): counted, ejected when it keeps failing and the cap allows, and a
/// refused certificate is reported.
pub(crate) fn failed(
    upstreams: &dyn Upstreams,
    events: &dyn TargetEvents,
    target: &Target,
    in_flight: health::InFlight,
    error: Failure<'_>,
) {
    if let Failure::Send(SendError { refused_certificate: Some(why), .. }) = error
        && target.health.certificate_refused()
    {
        events.certificate_refused(&target.name, why);
    }
    let why = error.to_string();
    tracing::warn!("attempt on {} ({}) failed: {why}", target.name, target.addr);
    if in_flight.failed()
        && upstreams.board().maybe_eject(&target.health, &upstreams.peers_of(&target.name), &why)
    {
        events.ejected(&target.name, &format!("consecutive failures: {why}"));
    }
}

/// How an attempt on a target failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Failure<'a> {
    /// No answer (see [`SendError`]).
    Send(&'a SendError),
    /// It answered with this server error (502, 503, 504).
    Status(http::StatusCode),
    /// It did not answer in time.
    TimedOut,
}

impl std::fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Send(e) => f.write_str(&e.detail),
            Failure::Status(s) => write!(f, "answered {s}"),
            Failure::TimedOut => f.write_str("timed out"),
        }
    }
}

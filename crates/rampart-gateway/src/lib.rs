//! The rampart gateway: the front door of a network. For each request it authenticates the
//! caller (client certificate or bearer token), routes by the first path segment to a live
//! node hosting that service, checks default-deny policy, and forwards over pooled mutual TLS,
//! setting `Rampart-Principal` itself. It owns the registry: nodes register through it under
//! leases, and reach their services' state through its store API under an ACL.
//!
//! # Layout
//! - [`Gateway`] (`gateway.rs`): a running gateway and the tasks it owns; [`State`] here: what
//!   every request handler shares;
//! - `request`: the request path, screen → admit → forward; [`routes`]: where TLS ends per
//!   service (reencrypt to nodes, edge to an app on loopback);
//! - [`config`]: `[gateway]` in `rampart.toml`;
//! - [`admission`]: every limit and ban (rates in `rate`, bans in `bans`), decided in one place;
//! - `authn`: who is calling; [`forwarded`]: from where, behind trusted proxies (the PROXY
//!   protocol is read by `rampart_net::proxy_header`, before TLS);
//! - [`upstream`]: where a service's requests can go (the nodes, following the registry),
//!   balancing, health, probes, the transport;
//! - [`forward`]: forwarding an admitted request, the retry rule, idempotency;
//! - `membership`: nodes joining under leases, renewing, leaving and draining;
//! - [`api`]: `/_rampart/…` — `admin`, `internal` (what nodes call), `registry` (the store
//!   API), `token`; the dashboard's assets (`dashboard`) and event stream (`stream`);
//! - [`bundle`]: this network's CA bundle, as peers fetch it; [`certs`]: the gateway's
//!   certificate read again when it changes and renewed by itself, nodes' renewals signed;
//! - [`envelopes`]: the network-wide replay guard nodes claim envelopes through;
//! - [`federation`]: peer networks — trust, exports, their catalogs, requests to and from them;
//! - `events`: refusals and node changes as security events; [`metrics`]: their counters;
//! - [`cluster`]: events and bans shared with the other gateways of a shared registry;
//! - `reply`: JSON error answers.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod api;
mod authn;
pub mod bundle;
pub mod certs;
pub mod cluster;
pub mod config;
mod dashboard;
pub mod envelopes;
pub mod federation;
pub mod forward;
pub mod forwarded;
mod gateway;
pub use gateway::{Front, Gateway};
mod membership;
pub use membership::DRAIN_GRACE;
mod events;
pub mod metrics;
mod reply;
mod request;
pub mod routes;
mod stream;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_auth::PolicySet;
use rampart_net::pool::Http1Pool;
use rampart_net::workers::PerWorker;
use rampart_pki::TrustDomain;
use rampart_store::Store;

/// Public for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub use authn::{AuthFailure, bearer};
pub use config::GatewayConfig;
/// Public for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub use request::split;

/// What every request handler shares: the gateway's parts, each keeping its own state.
pub struct State {
    /// The network's trust domain.
    pub(crate) domain: TrustDomain,
    /// The registry.
    pub(crate) store: Arc<dyn Store>,
    /// The registry with users and tokens (`auth/`) answered from memory, for the per-request
    /// token check (fast, and still working while the registry is out of reach).
    pub(crate) auth: Arc<rampart_store::Mirror>,
    /// What token checks read from `auth`, kept while it does not change.
    pub(crate) tokens: rampart_auth::tokens::TokenCache,
    /// The nodes and their health: where services' requests go.
    pub(crate) nodes: Arc<upstream::Nodes>,
    /// The policy, swapped on every change under `auth/policy/`.
    pub(crate) policy: Arc<ArcSwap<PolicySet>>,
    /// The pooled mutual-TLS client to nodes, one per connection worker; it accepts a node
    /// only at an address it registered (built with [`rampart_net::tls::bound_client_config`]
    /// over the book `nodes` keeps).
    pub(crate) client: PerWorker<Http1Pool>,
    /// The retry budget.
    pub(crate) budget: forward::retry::RetryBudget,
    /// The audit log and live event stream.
    pub(crate) events: Arc<rampart_events::EventLog>,
    /// Counters for `/_rampart/metrics`.
    pub(crate) metrics: metrics::Metrics,
    /// Every limit and ban.
    pub(crate) admission: admission::Admission,
    /// Nodes that deregistered (through this gateway or another), with their services and when
    /// they left: their leaving is not a lapsed lease, and while they drain (for
    /// [`DRAIN_GRACE`]) their in-flight requests may still use their services' state.
    pub(crate) draining:
        std::sync::Mutex<std::collections::HashMap<String, (Vec<String>, std::time::Instant)>>,
    /// The leases of the envelope claims this gateway wrote (the network-wide replay guard).
    pub(crate) claim_leases: envelopes::ClaimLeases,
    /// This network's CA bundle, served to peers (`GET /_rampart/bundle`).
    pub(crate) bundle: Arc<bundle::OwnBundle>,
    /// Peer networks: whom we trust, what we export and import.
    pub(crate) federation: Option<Arc<federation::Federation>>,
    /// How TLS ends per service: edge routes' apps (`[routes.<service>]`).
    pub(crate) routes: routes::Routes,
    /// The check of client certificates that nodes pass on from passthrough routes.
    pub(crate) relayed_certificates: Option<rampart_net::tls::CrlUpdater>,
    /// The gateway's certificate (followed on disk, renewed) and the CA it may hold.
    pub(crate) certificates: Option<Arc<certs::Certificates>>,
    /// Turns true when the gateway begins to stop: what never ends by itself (event
    /// streams) ends then, so the drain does not wait for it.
    closing: tokio::sync::watch::Sender<bool>,
    /// Settings.
    pub(crate) config: GatewayConfig,
}

impl State {
    /// A gateway's shared state (call within a tokio runtime: it starts following `auth/`);
    /// [`Gateway::start`] starts the rest of its work.
    pub fn new(
        domain: TrustDomain,
        store: Arc<dyn Store>,
        (client, addresses): (PerWorker<Http1Pool>, rampart_net::tls::AddressBook),
        events: Arc<rampart_events::EventLog>,
        config: GatewayConfig,
    ) -> Self {
        let c = &config;
        State {
            domain,
            auth: rampart_store::Mirror::new(store.clone(), "auth/"),
            tokens: Default::default(),
            store,
            nodes: Arc::new(upstream::Nodes::new(addresses)),
            policy: Arc::new(ArcSwap::from_pointee(Default::default())),
            client,
            budget: forward::retry::RetryBudget::new(
                c.retry_ratio,
                c.retry_floor_per_sec,
                Duration::from_secs(10),
            ),
            events,
            metrics: Default::default(),
            admission: admission::Admission::new(c),
            draining: Default::default(),
            claim_leases: Default::default(),
            bundle: Default::default(),
            federation: None,
            certificates: None,
            routes: Default::default(),
            relayed_certificates: None,
            closing: tokio::sync::watch::Sender::new(false),
            config,
        }
    }
}

impl State {
    /// Serves the CA bundle in `path` as this network's, read again when it changes.
    pub fn with_bundle_file(mut self, path: std::path::PathBuf) -> Self {
        self.bundle = Arc::new(bundle::OwnBundle::from_file(path));
        self
    }

    /// Federates with the peer networks in the registry.
    pub fn with_federation(mut self, federation: federation::Federation) -> Self {
        self.federation = Some(Arc::new(federation));
        self
    }

    /// Serves `routes` (checked by [`routes::Routes::new`]).
    pub fn with_routes(mut self, routes: routes::Routes) -> Self {
        self.routes = routes;
        self
    }

    /// Checks the client certificates nodes pass on from passthrough routes with `check` (to
    /// the trust domain's CA and CRL); without it, none is accepted.
    pub fn with_relayed_certificates(mut self, check: rampart_net::tls::CrlUpdater) -> Self {
        self.relayed_certificates = Some(check);
        self
    }

    /// Presents the certificate of `certificates` as its files say, renewing it (and signing
    /// nodes' renewals) when they hold the CA.
    pub fn with_certificates(mut self, certificates: certs::Certificates) -> Self {
        self.certificates = Some(Arc::new(certificates));
        self
    }

    /// Turns true when the gateway begins to stop.
    pub(crate) fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("domain", &self.domain).finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

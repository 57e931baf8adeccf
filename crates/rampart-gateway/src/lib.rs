//! The rampart gateway: the front door of a network. For each request it authenticates the
//! caller (client certificate or bearer token), routes by the first path segment to a live
//! node hosting that service, checks default-deny policy, and forwards over pooled mutual TLS,
//! setting `Rampart-Principal` itself. It owns the registry: nodes register through it under
//! leases, and reach their services' state through its store API under an ACL.
//!
//! # Layout
//! - [`config`]: `[gateway]` in `rampart.toml`;
//! - [`upstream`]: where a service's requests can go (the nodes, following the registry),
//!   balancing, health, probes, the transport;
//! - `authn`: who is calling; [`forwarded`]: from where, behind trusted proxies (the PROXY
//!   protocol is read by `rampart_net::proxy_header`, before TLS);
//! - [`forward`]: forwarding an admitted request, the retry rule, idempotency;
//! - [`api`]: `/_rampart/…` (registration, store, status, tokens);
//! - [`cluster`]: events and bans shared with the other gateways of a shared registry;
//! - [`envelopes`]: the network-wide replay guard nodes claim envelopes through;
//! - `reply`: JSON error answers.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod api;
mod authn;
pub mod cluster;
pub mod config;
mod dashboard;
pub mod envelopes;
pub mod forward;
pub mod forwarded;
mod leaving;
pub use leaving::DRAIN_GRACE;
pub mod metrics;
mod reply;
mod security;
mod stream;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_auth::PolicySet;
use rampart_events::Severity;
use rampart_net::client::HttpsClient;
use rampart_net::{Body, ConnInfo, ServeLimits};
use rampart_pki::TrustDomain;
use rampart_store::Store;

pub use config::GatewayConfig;

/// What every request handler shares.
pub struct State {
    /// The network's trust domain.
    pub domain: TrustDomain,
    /// The registry.
    pub store: Arc<dyn Store>,
    /// The registry with users and tokens (`auth/`) answered from memory, for the per-request
    /// token check (fast, and still working while the registry is out of reach).
    pub auth: Arc<dyn Store>,
    /// The nodes and their health: where services' requests go.
    pub nodes: Arc<upstream::Nodes>,
    /// The policy, swapped on every change under `auth/policy/`.
    pub policy: Arc<ArcSwap<PolicySet>>,
    /// The pooled mutual-TLS client to nodes; it accepts a node only at an address it
    /// registered (built with [`rampart_net::tls::bound_client_config`] over the book `nodes`
    /// keeps).
    pub client: HttpsClient,
    /// The retry budget.
    pub budget: forward::retry::RetryBudget,
    /// The audit log and live event stream.
    pub events: Arc<rampart_events::EventLog>,
    /// Counters for `/_rampart/metrics`.
    pub metrics: metrics::Metrics,
    /// Requests per source address.
    pub source_limit: admission::RateLimiter,
    /// Requests per principal.
    pub principal_limit: admission::RateLimiter,
    /// Sources banned for failing authentication.
    pub bans: admission::Bans,
    /// Nodes that deregistered (through this gateway or another), with their services and when
    /// they left: their leaving is not a lapsed lease, and while they drain (for
    /// [`DRAIN_GRACE`]) their in-flight requests may still use their services' state.
    pub draining: std::sync::Mutex<std::collections::HashMap<String, (Vec<String>, std::time::Instant)>>,
    /// The leases of the envelope claims this gateway wrote (the network-wide replay guard).
    pub claim_leases: envelopes::ClaimLeases,
    /// Settings.
    pub config: GatewayConfig,
}

impl State {
    /// A gateway's shared state (call within a tokio runtime: it starts following `auth/`).
    pub fn new(
        domain: TrustDomain,
        store: Arc<dyn Store>,
        (client, addresses): (HttpsClient, rampart_net::tls::AddressBook),
        events: Arc<rampart_events::EventLog>,
        config: GatewayConfig,
    ) -> Self {
        let c = &config;
        State {
            domain,
            auth: rampart_store::Mirror::new(store.clone(), "auth/"),
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
            source_limit: admission::RateLimiter::new(
                c.rate_per_source,
                c.rate_per_source * c.rate_burst_secs,
            ),
            principal_limit: admission::RateLimiter::new(
                c.rate_per_principal,
                c.rate_per_principal * c.rate_burst_secs,
            ),
            draining: Default::default(),
            bans: admission::Bans::new(
                c.ban_after_failures,
                Duration::from_secs(c.ban_window_secs),
                Duration::from_secs(c.ban_secs),
            )
            .with_ipv6_prefix(c.ban_ipv6_prefix),
            claim_leases: Default::default(),
            config,
        }
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

/// Runs a gateway on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let (nodes, watcher) = (state.nodes.clone(), state.clone());
    let store = state.store.clone();
    tokio::spawn(async move {
        nodes
            .follow(store, move |node| {
                let (state, node) = (watcher.clone(), node.to_owned());
                tokio::spawn(async move { state.node_removed(&node).await });
            })
            .await;
    });
    tokio::spawn(upstream::probe::run(
        state.nodes.clone(),
        Arc::new(state.client.clone()),
        state.clone(),
        Duration::from_millis(state.config.probe_interval_ms),
    ));
    tokio::spawn(follow_policy(state.store.clone(), state.policy.clone()));
    let handler_state = state.clone();
    let handler: rampart_net::Handler = Arc::new(move |req, conn| {
        let state = handler_state.clone();
        Box::pin(async move { handle(state, req, conn).await })
    });
    let (hs, cs) = (state.clone(), state.clone());
    let observers = rampart_net::Observers {
        handshake: Some(Arc::new(move |remote, refusal: rampart_net::HandshakeRefusal| {
            tracing::warn!("TLS handshake from {remote} refused ({}): {refusal}", refusal.kind());
            hs.handshake_failed(remote, &refusal);
        })),
        connection: Some(Arc::new(move |remote, problem| cs.connection_problem(remote, problem))),
    };
    let c = &state.config;
    let limits = ServeLimits {
        max_connections: c.max_connections,
        handshake_timeout: Duration::from_millis(c.header_timeout_ms),
        header_read_timeout: Duration::from_millis(c.header_timeout_ms),
        idle_timeout: Duration::from_millis(c.idle_timeout_ms),
        max_header_bytes: c.max_header_bytes,
        max_uri_bytes: c.max_uri_bytes,
        max_headers: c.max_headers,
        proxy_protocol: rampart_net::proxy_header::ProxyProtocol::new(c.proxy_protocol_from.clone()),
        ..ServeLimits::default()
    };
    rampart_net::serve(listener, Arc::new(tls), handler, limits, observers, shutdown).await;
}

async fn follow_policy(store: Arc<dyn Store>, policy: Arc<ArcSwap<PolicySet>>) {
    loop {
        let watch = store.watch(rampart_auth::policy::POLICY_PREFIX, None).await;
        match rampart_auth::policy::list(store.as_ref()).await {
            Ok(rules) => policy.store(Arc::new(PolicySet::new(rules))),
            Err(e) => tracing::warn!("reading policy: {e}"),
        }
        let Ok(mut watch) = watch else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while watch.next().await.is_ok() {
            if let Ok(rules) = rampart_auth::policy::list(store.as_ref()).await {
                policy.store(Arc::new(PolicySet::new(rules)));
            }
        }
    }
}

/// `/<service>/<rest>` → (service, rest); `rest` keeps its leading `/`.
fn split(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<Body> {
    // Liveness and readiness for orchestrators and load balancers (Kubernetes probes): no
    // credentials, no admission (a ban on the prober's address must not restart the
    // gateway), and nothing said but that this gateway serves.
    if req.method() == http::Method::GET && req.uri().path() == "/_rampart/health" {
        return reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    }
    let started = std::time::Instant::now();
    // Behind a trusted HTTP proxy, the client it names (one address for admission, bans,
    // events and the node).
    let conn = match state.config.trusted_proxies.as_slice() {
        [] => conn,
        trusted => match forwarded::client_of(conn.remote, req.headers(), trusted) {
            client if client == conn.remote => conn,
            client => {
                Arc::new(ConnInfo { remote: client, peer: conn.peer, principal: conn.principal.clone() })
            }
        },
    };
    let (service, rest) = match screen(&state, &req, &conn).await {
        Ok(routed) => routed,
        Err(refused) => return reply::after_body(req, refused).await,
    };
    if service == "_rampart" {
        return api::handle(state.clone(), req, conn, &rest).await;
    }
    let resp = route(&state, req, &conn, &service, &rest).await;
    state.metrics.request(&service, resp.status().as_u16(), started.elapsed());
    resp
}

/// Admission and the wire rules, before anything is routed: the service and the normalised
/// path after it, or the refusal to send.
async fn screen(
    state: &Arc<State>,
    req: &Request<Incoming>,
    conn: &ConnInfo,
) -> Result<(String, String), Response<Body>> {
    // A ban must not lock the network's own out: an admin or node certificate verified in
    // the handshake, a valid admin token (looked at only when the source is banned), and the
    // dashboard's page (its API calls still need an admin credential) pass it.
    let member_cert = conn
        .principal
        .as_ref()
        .is_some_and(|p| matches!(p.role(), rampart_pki::Role::Admin | rampart_pki::Role::Node));
    let past_ban = member_cert
        || (req.method() == http::Method::GET && dashboard::is_page(req.uri().path()))
        || (state.bans.banned(conn.remote.ip()).is_some()
            && req.headers().contains_key(http::header::AUTHORIZATION)
            && authn::authenticate(state, req.headers(), conn, None).await.is_ok_and(|p| p.is_admin()));
    if let Some(refused) = state.refuse_early(
        conn.into(),
        req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()),
        req.headers(),
        past_ban,
    ) {
        return Err(refused);
    }
    if let Err(e) = rampart_net::wire::check_method(req.method()) {
        state.event(Severity::Warning, "bad_method", conn, None, None, &e.to_string());
        return Err(reply::error(StatusCode::BAD_REQUEST, "bad_method", &e.to_string()));
    }
    let (service, rest) = split(req.uri().path());
    // The path after the service, normalised: no request can leave the service it is routed
    // to, and what the node receives is what policy judged.
    let rest = match rampart_net::wire::normalize_path(if rest.is_empty() { "/" } else { rest }) {
        Ok(r) => r.into_owned(),
        Err(e) => {
            let why = format!("{e} ({})", e.kind());
            state.event(Severity::Warning, "bad_path", conn, None, Some(service), &why);
            return Err(reply::error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string()));
        }
    };
    Ok((service.to_owned(), rest))
}

async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
    rest: &str,
) -> Response<Body> {
    match admit(state, &req, conn, service).await {
        Ok(principal) => forward::forward(state, req, conn, service, rest, &principal).await,
        Err(refused) => reply::after_body(req, refused).await,
    }
}

/// Who is calling, and whether they may call `service` now: the principal, or the refusal.
async fn admit(
    state: &Arc<State>,
    req: &Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
) -> Result<rampart_auth::Principal, Response<Body>> {
    let principal = match authn::authenticate(state, req.headers(), conn, Some(service)).await {
        Ok(p) => p,
        Err(failure) => {
            state.auth_failed(failure.kind, conn, Some(service), &failure.reason);
            return Err(reply::unauthenticated(&failure.reason));
        }
    };
    if state.principal_limit.enabled()
        && let Err(wait) = state.principal_limit.check(&principal.name())
    {
        state.event(
            Severity::Warning,
            "rate_limited",
            conn,
            Some(principal.name()),
            Some(service),
            "over the per-principal request rate",
        );
        return Err(security::too_many(wait));
    }
    let known = !service.is_empty() && upstream::Upstreams::knows(state.nodes.as_ref(), service);
    if !known {
        return Err(reply::error(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("no service named {service:?} in this network"),
        ));
    }
    let method = req.method().as_str().to_owned();
    if let Err(denied) = state.policy.load().authorize(&principal, service, &method) {
        state.event(
            Severity::Warning,
            "policy_denied",
            conn,
            Some(principal.name()),
            Some(service),
            &denied.reason,
        );
        return Err(reply::error(StatusCode::FORBIDDEN, "forbidden", &denied.reason));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths_split_into_service_and_rest() {
        assert_eq!(split("/data"), ("data", ""));
        assert_eq!(split("/data/"), ("data", "/"));
        assert_eq!(split("/data/x/y"), ("data", "/x/y"));
        assert_eq!(split("/"), ("", ""));
        assert_eq!(split("/_rampart/status"), ("_rampart", "/status"));
    }
}

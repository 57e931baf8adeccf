//! The rampart gateway: the front door of a network. For each request it authenticates the
//! caller (client certificate or bearer token), routes by the first path segment to a live
//! node hosting that service, checks default-deny policy, and forwards over pooled mutual TLS,
//! setting `Rampart-Principal` itself. It owns the registry: nodes register through it under
//! leases, and reach their services' state through its store API under an ACL.
//!
//! # Layout
//! - [`config`]: `[gateway]` in `rampart.toml`;
//! - [`routes`]: the routing table, following the registry;
//! - `authn`: who is calling;
//! - [`proxy`]: forwarding to nodes;
//! - [`api`]: `/_rampart/…` (registration, store, status, tokens);
//! - `reply`: JSON error answers.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
mod authn;
pub mod config;
pub mod health;
pub mod proxy;
mod reply;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_auth::PolicySet;
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
    /// Service → nodes, swapped on every registry change.
    pub routes: Arc<ArcSwap<routes::Routes>>,
    /// The policy, swapped on every change under `auth/policy/`.
    pub policy: Arc<ArcSwap<PolicySet>>,
    /// The pooled mutual-TLS client to nodes.
    pub client: HttpsClient,
    /// Every node's health and load.
    pub health: Arc<health::HealthBoard>,
    /// The retry budget.
    pub budget: health::RetryBudget,
    /// Settings.
    pub config: GatewayConfig,
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
    tokio::spawn(routes::follow(state.store.clone(), state.routes.clone(), state.health.clone()));
    tokio::spawn(probe(state.clone()));
    tokio::spawn(follow_policy(state.store.clone(), state.policy.clone()));
    let handler_state = state.clone();
    let handler: rampart_net::Handler = Arc::new(move |req, conn| {
        let state = handler_state.clone();
        Box::pin(async move { handle(state, req, conn).await })
    });
    let observer: rampart_net::serve::HandshakeObserver =
        Arc::new(|remote, reason| tracing::warn!("TLS handshake from {remote} failed: {reason}"));
    rampart_net::serve(listener, Arc::new(tls), handler, ServeLimits::default(), Some(observer), shutdown)
        .await;
}

/// Probes every node's `/_rampart/health` each `probe_interval_ms`: a hung or dead node fails
/// and is ejected; an ejected node that passes comes back.
async fn probe(state: Arc<State>) {
    let every = Duration::from_millis(state.config.probe_interval_ms.max(50));
    let timeout = every.max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        let routes = state.routes.load_full();
        for node in routes.nodes.iter() {
            let state = state.clone();
            let routes = routes.clone();
            let (name, addr) = (node.name.clone(), node.addr);
            tokio::spawn(async move {
                let health = state.health.get(&name);
                let req = Request::get(format!("https://{addr}/_rampart/health")).body(rampart_net::full(""));
                let Ok(req) = req else { return };
                let ok = matches!(
                    tokio::time::timeout(timeout, state.client.request(req)).await,
                    Ok(Ok(r)) if r.status().is_success()
                );
                if ok {
                    health.succeeded();
                } else if health.failed() {
                    state.health.maybe_eject(&health, &routes.peers_of(&name), "health probe failed");
                }
            });
        }
    }
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
    let path = req.uri().path().to_owned();
    let (service, rest) = split(&path);
    if service == "_rampart" {
        return api::handle(state.clone(), req, conn, rest).await;
    }
    let principal = match authn::authenticate(&state, req.headers(), &conn, Some(service)).await {
        Ok(p) => p,
        Err(reason) => return reply::unauthenticated(&reason),
    };
    let routes = state.routes.load();
    if service.is_empty() || !routes.knows(service) {
        return reply::error(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("no service named {service:?} in this network"),
        );
    }
    let method = req.method().as_str().to_owned();
    if let Err(denied) = state.policy.load().authorize(&principal, service, &method) {
        return reply::error(StatusCode::FORBIDDEN, "forbidden", &denied.reason);
    }
    drop(routes);
    proxy::forward(&state, req, service, rest, &principal).await
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

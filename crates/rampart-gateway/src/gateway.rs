//! A running gateway: its shared [`State`] and every task it started (the routing table's
//! follower, the probes, the policy follower, and with a shared registry the event and ban
//! sharing), so that stopping the gateway stops all of them, and nothing it started outlives it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_auth::PolicySet;
use rampart_net::ServeLimits;
use rampart_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::{State, cluster, request, upstream};

/// A gateway with its tasks running; [`Gateway::serve`] serves it and stops them after.
pub struct Gateway {
    state: Arc<State>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("state", &self.state).field("tasks", &self.tasks.len()).finish()
    }
}

impl Gateway {
    /// Starts the tasks of a gateway over `state` (within a tokio runtime). `shared`: other
    /// gateways share the registry, so events and bans are shared with them.
    pub fn start(state: State, shared: bool) -> Self {
        let state = Arc::new(state);
        let mut tasks = JoinSet::new();
        let (removed_tx, mut removed) = mpsc::unbounded_channel::<String>();
        let (nodes, store) = (state.nodes.clone(), state.store.clone());
        tasks.spawn(async move {
            nodes.follow(store, |node| drop(removed_tx.send(node.to_owned()))).await;
        });
        let watcher = state.clone();
        tasks.spawn(async move {
            while let Some(node) = removed.recv().await {
                watcher.node_removed(&node).await;
            }
        });
        tasks.spawn(upstream::probe::run(
            state.nodes.clone(),
            Arc::new(state.client.clone()),
            state.clone(),
            Duration::from_millis(state.config.probe_interval_ms),
        ));
        tasks.spawn(follow_policy(state.store.clone(), state.policy.clone()));
        tasks.spawn(state.bundle.clone().follow(Duration::from_secs(1)));
        if let Some(certs) = &state.certificates {
            tasks.spawn(crate::certs::follow(state.clone(), certs.clone()));
        }
        if let Some(federation) = &state.federation {
            tasks.spawn(crate::federation::follow(federation.clone(), state.store.clone()));
            tasks.spawn(crate::federation::catalog::follow(state.clone(), federation.clone()));
        }
        if shared {
            tasks.spawn(cluster::publish(state.clone()));
            tasks.spawn(cluster::follow(state.clone()));
        }
        Gateway { state, tasks }
    }

    /// Reads, once, what routing and policy need before the first request is served: the
    /// nodes, the policy, the peers and their catalogs. The followers started by
    /// [`Gateway::start`] would read them too, but a moment later: a gateway restarted under
    /// load would answer that moment's requests 503 (no node known yet) or 403 (no rule read
    /// yet), where the gateways that stayed up answer them. Bounded by `within`: a registry
    /// that does not answer leaves the followers to catch up, and the gateway serves meanwhile.
    pub async fn warm_up(&self, within: Duration) {
        let state = &self.state;
        let first_reads = async {
            match upstream::nodes::load(state.store.as_ref()).await {
                Ok(nodes) => drop(state.nodes.replace(nodes)),
                Err(e) => tracing::warn!("reading nodes before serving: {e}"),
            }
            match rampart_auth::policy::list(state.store.as_ref()).await {
                Ok(rules) => state.policy.store(Arc::new(PolicySet::new(rules))),
                Err(e) => tracing::warn!("reading policy before serving: {e}"),
            }
            if let Some(federation) = &state.federation {
                match federation.reload(state.store.as_ref()).await {
                    Ok(()) => crate::federation::catalog::ask_all(state, federation).await,
                    Err(e) => tracing::warn!("reading peers before serving: {e}"),
                }
            }
        };
        if tokio::time::timeout(within, first_reads).await.is_err() {
            tracing::warn!("the registry did not answer within {within:?}: serving while it catches up");
        }
    }

    /// Its metrics (for the binary to note certificate expiries).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.state.metrics
    }

    /// Serves `listener` until `shutdown` completes, lets in-flight requests finish, then
    /// stops every task the gateway started.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: rustls::ServerConfig,
        shutdown: impl Future<Output = ()>,
    ) {
        self.serve_all(vec![Front::Https(listener, Arc::new(tls))], shutdown).await;
    }

    /// Serves every front listener until `shutdown` completes, lets in-flight requests
    /// finish on all of them, then stops every task the gateway started.
    pub async fn serve_all(mut self, fronts: Vec<Front>, shutdown: impl Future<Output = ()>) {
        let state = self.state.clone();
        let handler: rampart_net::Handler = Arc::new(move |req, conn| {
            let state = state.clone();
            Box::pin(async move { request::handle(state, req, conn).await })
        });
        let (hs, cs) = (self.state.clone(), self.state.clone());
        let observers = rampart_net::Observers {
            handshake: Some(Arc::new(move |remote, refusal: rampart_net::HandshakeRefusal| {
                tracing::warn!("TLS handshake from {remote} refused ({}): {refusal}", refusal.kind());
                hs.handshake_failed(remote, &refusal);
            })),
            connection: Some(Arc::new(move |remote, problem| cs.connection_problem(remote, problem))),
        };
        let limits = serve_limits(&self.state.config);
        let mut listeners = JoinSet::new();
        for front in fronts {
            let closed = closed(self.state.closing());
            match front {
                Front::Https(listener, tls) => {
                    let serving = rampart_net::serve(
                        listener,
                        tls,
                        handler.clone(),
                        limits.clone(),
                        observers.clone(),
                        closed,
                    );
                    listeners.spawn(serving);
                }
                Front::Sni(listener, tls, own) => {
                    let https = Arc::new(rampart_net::serve::Https::new(
                        tls,
                        handler.clone(),
                        limits.clone(),
                        observers.clone(),
                    ));
                    let relays =
                        Arc::new(crate::routes::relays::ListenerRelays::new(self.state.clone(), own));
                    let router = rampart_net::passthrough::SniRouter::new(
                        https,
                        relays,
                        Duration::from_millis(self.state.config.connect_timeout_ms),
                        limits.drain_timeout,
                    );
                    listeners.spawn(rampart_net::accept::accept(
                        listener,
                        Arc::new(router),
                        accept_limits(&limits),
                        observers.handshake.clone(),
                        closed,
                    ));
                }
                Front::Redirect(listener, https_port) => {
                    let redirect =
                        rampart_net::redirect::Redirect::new(https_port, limits.header_read_timeout);
                    listeners.spawn(rampart_net::accept::accept(
                        listener,
                        redirect,
                        accept_limits(&limits),
                        None,
                        closed,
                    ));
                }
            }
        }
        shutdown.await;
        self.state.closing.send_replace(true);
        while listeners.join_next().await.is_some() {}
        self.stop().await;
    }

    /// Stops every task and waits until they are gone.
    pub async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }
}

/// A front listener.
#[derive(Debug)]
pub enum Front {
    /// TLS (ended here), then HTTP.
    Https(tokio::net::TcpListener, Arc<rustls::ServerConfig>),
    /// Plain HTTP that only redirects to the HTTPS listener on this port.
    Redirect(tokio::net::TcpListener, u16),
    /// A listener of a gateway with passthrough routes: each ClientHello's server name read
    /// first, relayed to a route's node, ended here with the config (when the name is one of
    /// these certificates', or none), or refused. With no certificates, it only relays.
    Sni(tokio::net::TcpListener, Arc<rustls::ServerConfig>, Option<rampart_net::tls::ByServerName>),
}

/// Resolves once the gateway begins to stop.
async fn closed(mut closing: tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// What the accept layer of a listener needs of its limits.
fn accept_limits(limits: &ServeLimits) -> rampart_net::accept::AcceptLimits {
    rampart_net::accept::AcceptLimits {
        max_connections: limits.max_connections,
        handshake_timeout: limits.handshake_timeout,
        drain_timeout: limits.drain_timeout,
        proxy_protocol: limits.proxy_protocol.clone(),
    }
}

/// The listener's limits, from `[gateway]`.
fn serve_limits(c: &crate::GatewayConfig) -> ServeLimits {
    ServeLimits {
        max_connections: c.max_connections,
        handshake_timeout: Duration::from_millis(c.header_timeout_ms),
        header_read_timeout: Duration::from_millis(c.header_timeout_ms),
        idle_timeout: Duration::from_millis(c.idle_timeout_ms),
        max_header_bytes: c.max_header_bytes,
        max_uri_bytes: c.max_uri_bytes,
        max_headers: c.max_headers,
        proxy_protocol: rampart_net::proxy_header::ProxyProtocol::new(c.proxy_protocol_from.clone()),
        ..ServeLimits::default()
    }
}

/// Keeps `policy` equal to the rules under `auth/policy/`.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A gateway over `store` and a client that trusts nobody.
    fn state(dir: &std::path::Path, store: Arc<dyn Store>) -> State {
        let events = Arc::new(rampart_events::EventLog::open(&dir.join("audit.jsonl"), "gateway").unwrap());
        let tls = rustls::ClientConfig::builder_with_provider(rampart_net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let client = rampart_net::workers::PerWorker::new(|| {
            rampart_net::pool::Http1Pool::new(tls.clone(), Duration::from_secs(1))
        });
        let domain = rampart_pki::TrustDomain::new("local").unwrap();
        State::new(domain, store, (client, Default::default()), events, crate::GatewayConfig::default())
    }

    /// Every task holds the state; once stopped, none does, and once the gateway is gone
    /// nothing holds the registry (the auth mirror's follower included): it can be opened again.
    #[tokio::test]
    async fn stopping_a_gateway_stops_every_task_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        for shared in [false, true] {
            let store: Arc<dyn Store> = Arc::new(rampart_store::EmbeddedStore::open(&path).unwrap());
            let held = Arc::downgrade(&store);
            let mut gateway = Gateway::start(state(dir.path(), store), shared);
            assert_eq!(gateway.tasks.len(), if shared { 7 } else { 5 });
            assert!(Arc::strong_count(&gateway.state) > 1, "the tasks hold the state");
            gateway.stop().await;
            assert!(gateway.tasks.is_empty());
            assert_eq!(Arc::strong_count(&gateway.state), 1, "no task outlived the gateway");
            drop(gateway);
            // An aborted task is dropped when the runtime next looks at it.
            for _ in 0..100 {
                if held.strong_count() == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(held.strong_count(), 0, "something still holds the registry");
        }
    }

    /// Once warmed up, before any follower has had a turn (a current-thread runtime runs
    /// none until this test yields), the gateway routes to the registered node and holds the
    /// policy: a restarted gateway's first requests are answered as the others answer them.
    #[tokio::test]
    async fn a_warmed_up_gateway_knows_the_nodes_and_the_policy_before_it_serves() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(rampart_store::EmbeddedStore::open(&dir.path().join("registry.redb")).unwrap());
        let record = upstream::nodes::NodeRecord {
            name: "n1".into(),
            addr: ([127, 0, 0, 1], 9).into(),
            services: vec!["echo".into()],
            timeouts_ms: Default::default(),
            public: None,
            lease: 0,
        };
        let key = format!("{}n1", upstream::nodes::NODES_PREFIX);
        store.put(&key, serde_json::to_vec(&record).unwrap(), None).await.unwrap();
        let allow = rampart_auth::policy::Effect::Allow;
        rampart_auth::policy::add(store.as_ref(), "echo", "user/alice", &[], allow).await.unwrap();

        let mut gateway = Gateway::start(state(dir.path(), store), false);
        assert!(gateway.state.nodes.list().is_empty(), "no follower has run yet");
        assert!(gateway.state.policy.load().is_empty(), "no follower has run yet");
        gateway.warm_up(Duration::from_secs(5)).await;
        assert_eq!(gateway.state.nodes.list().len(), 1);
        assert!(!gateway.state.policy.load().is_empty());
        gateway.stop().await;
    }
}

//! Active health checks: every node's `/_rampart/health` is asked each interval, so a hung or
//! dead node is ejected before requests find it, and an ejected node that passes comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;

use super::{Nodes, TargetEvents, Transport, Upstreams};

/// Probes the nodes of `nodes` every `every` (at least 50 ms), each probe given `every` (at
/// least 500 ms) to pass. Runs until its task is stopped.
pub async fn run(
    nodes: Arc<Nodes>,
    transport: Arc<dyn Transport>,
    events: Arc<dyn TargetEvents>,
    every: Duration,
) {
    let every = every.max(Duration::from_millis(50));
    let timeout = every.max(Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        for (name, addr) in nodes.addresses() {
            let (nodes, transport, events) = (nodes.clone(), transport.clone(), events.clone());
            tokio::spawn(async move {
                probe(&nodes, transport.as_ref(), events.as_ref(), (&name, addr), timeout).await
            });
        }
    }
}

/// One probe of one node, and its verdict on the node's health.
async fn probe(
    nodes: &Nodes,
    transport: &dyn Transport,
    events: &dyn TargetEvents,
    (name, addr): (&str, SocketAddr),
    timeout: Duration,
) {
    let health = nodes.board().get(name);
    let Ok(req) = Request::get(format!("https://{addr}/_rampart/health")).body(rampart_net::full("")) else {
        return;
    };
    let passed = match tokio::time::timeout(timeout, transport.send(req)).await {
        Ok(Ok(r)) => r.status().is_success(),
        Ok(Err(e)) => {
            if let Some(why) = &e.refused_certificate
                && health.certificate_refused()
            {
                events.certificate_refused(name, why);
            }
            false
        }
        Err(_) => false,
    };
    if passed {
        if health.succeeded() {
            events.rejoined(name, "passed its health probes");
        }
    } else if health.failed()
        && nodes.board().maybe_eject(&health, &nodes.peers_of(name), "health probe failed")
    {
        events.ejected(name, "failed its health probes");
    }
}

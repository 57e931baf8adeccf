//! An edge route: TLS ended at the gateway, the admitted request sent in plain HTTP to the
//! route's app on loopback, with the principal and forwarding headers the gateway sets (as a
//! node would pass them to its app). The app is the route's one target, with the same
//! attempts, retry rules and health as a node.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use rampart_net::Body;

use crate::forward::attempt::RequestFor;
use crate::forward::outgoing::Outgoing;
use crate::upstream::{HealthBoard, NodeHealth, Target, Upstreams};

/// One edge route: its app's address, and its health.
#[derive(Debug)]
pub struct EdgeRoute {
    service: String,
    targets: Arc<[Target]>,
    board: HealthBoard,
}

impl EdgeRoute {
    /// The route of `service` to the app at `addr` (on loopback: checked by `Routes::new`).
    pub(crate) fn new(service: &str, addr: SocketAddr) -> Self {
        let board = HealthBoard::default();
        let name = format!("edge:{service}");
        let target = Target { health: board.get(&name), name, addr };
        EdgeRoute { service: service.to_owned(), targets: Arc::new([target]), board }
    }
}

impl Upstreams for EdgeRoute {
    fn knows(&self, service: &str) -> bool {
        service == self.service
    }

    fn targets(&self, service: &str) -> Arc<[Target]> {
        if service == self.service { self.targets.clone() } else { Arc::new([]) }
    }

    fn peers_of(&self, _target: &str) -> Vec<Arc<NodeHealth>> {
        self.targets.iter().map(|t| t.health.clone()).collect()
    }

    fn board(&self) -> &HealthBoard {
        &self.board
    }

    fn describe(&self, target: &Target) -> String {
        format!("the app of edge route {} (http://{})", self.service, target.addr)
    }
}

/// The request an edge route's app gets: what a node gets, over `http://`.
pub(crate) struct EdgeOutgoing<'a>(pub(crate) &'a Outgoing<'a>);

impl RequestFor for EdgeOutgoing<'_> {
    fn to(&self, target: &Target) -> Request<Body> {
        let mut req = self.0.to(target);
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        *req.uri_mut() = format!("http://{}{path}", target.addr).parse().unwrap_or_default();
        req
    }
}

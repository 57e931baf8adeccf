//! What a front listener does with each ClientHello once some route is passthrough
//! ([`rampart_net::passthrough::SniRouter`] asks): a passthrough route's name goes to one of
//! the route's live nodes (their public listeners, the least loaded first), the listener's own
//! names (or none, for clients that dial an address) end at the gateway as before, and any
//! other name is refused — it would otherwise be answered with a certificate for another name.

use std::net::SocketAddr;
use std::sync::Arc;

use rampart_events::EventKind;
use rampart_net::Source;
use rampart_net::passthrough::{Decision, PassthroughRefusal, Relays};
use rampart_net::tls::ByServerName;

use crate::State;

/// The decisions of one listener.
pub struct ListenerRelays {
    state: Arc<State>,
    /// The certificates the listener ends TLS with; `None` for a listener that only relays.
    own: Option<ByServerName>,
}

impl std::fmt::Debug for ListenerRelays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerRelays").field("terminates", &self.own.is_some()).finish_non_exhaustive()
    }
}

impl ListenerRelays {
    /// For a listener presenting `own` (by SNI), or relaying only (`None`).
    pub fn new(state: Arc<State>, own: Option<ByServerName>) -> Self {
        ListenerRelays { state, own }
    }

    /// The public listeners of `service`'s nodes in the pool, least loaded first.
    fn targets(&self, service: &str) -> Vec<SocketAddr> {
        let mut live: Vec<_> =
            self.state.nodes.public_of(service).into_iter().filter(|(_, h)| !h.is_ejected()).collect();
        live.sort_by_key(|(_, h)| h.score());
        live.into_iter().map(|(addr, _)| addr).collect()
    }
}

impl Relays for ListenerRelays {
    fn decide(&self, server_name: Option<&str>) -> Decision {
        let Some(name) = server_name else {
            return match self.own {
                Some(_) => Decision::Terminate,
                None => Decision::Refuse(
                    "no server name (SNI): this listener only relays passthrough routes, which are reached by name"
                        .to_owned(),
                ),
            };
        };
        if let Some(service) = self.state.routes.passthrough_service(name) {
            return Decision::Relay(self.targets(service));
        }
        match &self.own {
            Some(own) if own.holds(name) => Decision::Terminate,
            _ => Decision::Refuse(format!(
                "{:?} names no passthrough route here, nor this gateway",
                clip(name)
            )),
        }
    }

    fn refused(&self, source: Source, refusal: &PassthroughRefusal) {
        let kind = match refusal {
            PassthroughRefusal::Hello(_) => EventKind::ClientHelloRefused,
            PassthroughRefusal::Name(_) => EventKind::SniRefused,
            PassthroughRefusal::Unavailable(_) => EventKind::PassthroughUnavailable,
        };
        let why = refusal.to_string();
        tracing::warn!("passthrough: refused {source}: {why}");
        self.state.event(kind, source, None, None, &why);
    }
}

/// A client's server name, cut short for the record.
fn clip(name: &str) -> String {
    name.chars().take(100).collect()
}

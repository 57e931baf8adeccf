//! Turning what the gateway refuses or sees into security events (audit log, metrics, live
//! stream): admission's refusals, failed authentications (which count towards a ban), refused
//! handshakes, cut connections, and what happens to nodes.

use rampart_events::{EventKind, NewEvent};
use rampart_net::{Body, ConnProblem, HandshakeRefusal, Source};

use crate::State;
use crate::admission::Refusal;

impl State {
    /// Records a security event seen by this gateway: the client's address as its source,
    /// and the forwarder's when it came through one.
    pub fn event(
        &self,
        kind: EventKind,
        source: impl Into<Source>,
        principal: Option<String>,
        service: Option<&str>,
        reason: &str,
    ) {
        let source = source.into();
        let mut event = NewEvent::new(kind, source.client.ip().to_string(), reason);
        event.peer = source.forwarder().map(|ip| ip.to_string());
        event.principal = principal;
        event.service = service.map(str::to_owned);
        self.events.record(event);
    }

    /// An event about a node (source: the node's name).
    pub fn node_event(&self, kind: EventKind, node: &str, reason: &str) {
        let mut event = NewEvent::new(kind, node, reason);
        event.node = Some(node.to_owned());
        self.events.record(event);
    }

    /// A failed authentication: an event, and a step towards a ban of the source.
    pub fn auth_failed(
        &self,
        kind: EventKind,
        source: impl Into<Source>,
        service: Option<&str>,
        reason: &str,
    ) {
        let source = source.into();
        self.event(kind, source, None, service, reason);
        self.count_failure(source);
    }

    /// Counts an authentication failure of the client; the failure that starts a ban is an
    /// event.
    fn count_failure(&self, source: Source) {
        if self.admission.bans().failed(source.client.ip()) {
            let why = format!(
                "{} authentication failures within {} s: banned for {} s",
                self.config.ban_after_failures, self.config.ban_window_secs, self.config.ban_secs
            );
            self.event(EventKind::Banned, source, None, None, &why);
        }
    }

    /// A refused TLS handshake, by kind. Every refusal of the client's certificate (or of its
    /// absence) counts towards a ban, as any other failed authentication.
    pub fn handshake_failed(&self, source: Source, refusal: &HandshakeRefusal) {
        let kind = refusal.kind();
        self.metrics.tls_failure(kind.as_str());
        self.event(kind, source, None, None, &refusal.reason());
        if refusal.is_authentication_failure() {
            self.count_failure(source);
        }
    }

    /// A connection cut for a slow, oversized or malformed request head.
    pub fn connection_problem(&self, source: Source, problem: ConnProblem) {
        match problem {
            ConnProblem::HeaderTimeout => {
                self.event(EventKind::SlowClient, source, None, None, "request headers not sent in time")
            }
            // Refused by the HTTP/1.1 parser before a request existed: the same events as
            // when admission refuses them.
            ConnProblem::HeadersTooLarge => self.record_refusal(Refusal::HeadTooLarge, source, None, None),
            ConnProblem::UriTooLong => self.record_refusal(Refusal::UriTooLong, source, None, None),
            ConnProblem::Malformed => self.event(
                EventKind::MalformedRequest,
                source,
                None,
                None,
                "the request did not parse as HTTP/1.1 (answered 400): ambiguous framing or a bad head",
            ),
            ConnProblem::ProtocolAbuse(code) => self.event(
                EventKind::ProtocolAbuse,
                source,
                None,
                None,
                &format!(
                    "HTTP/2 connection closed for breaking or flooding the protocol (GOAWAY, code {code:#x})"
                ),
            ),
            _ => {}
        }
    }

    /// A refusal of admission: its event (if it has one) and its answer. `principal` and
    /// `service` when known.
    pub(crate) fn refused(
        &self,
        refusal: Refusal,
        source: impl Into<Source>,
        principal: Option<String>,
        service: Option<&str>,
    ) -> http::Response<Body> {
        self.record_refusal(refusal, source, principal, service);
        refusal.answer()
    }

    /// The event of a refusal of admission, if it has one.
    fn record_refusal(
        &self,
        refusal: Refusal,
        source: impl Into<Source>,
        principal: Option<String>,
        service: Option<&str>,
    ) {
        if let Some((kind, why)) = refusal.event() {
            self.event(kind, source, principal, service, why);
        }
    }
}

/// What happens to nodes, as events (and the ejection count).
impl crate::upstream::TargetEvents for State {
    fn rejoined(&self, node: &str, why: &str) {
        self.node_event(EventKind::NodeRejoined, node, why);
    }

    fn ejected(&self, node: &str, why: &str) {
        self.metrics.ejections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.node_event(EventKind::NodeEjected, node, why);
    }

    fn certificate_refused(&self, node: &str, why: &str) {
        self.node_event(EventKind::NodeCertificateRefused, node, why);
    }
}

//! Turning refusals into security events (audit log, metrics, live stream) and the admission
//! checks that run before any routing work: bans, rate limits, URI length.

use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use rampart_events::{EventKind, NewEvent};
use rampart_net::{Body, ConnProblem, HandshakeRefusal, Source};

use crate::{State, reply};

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
        if self.bans.failed(source.client.ip()) {
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

    /// A connection cut for a slow or oversized request head.
    pub fn connection_problem(&self, source: Source, problem: ConnProblem) {
        match problem {
            ConnProblem::HeaderTimeout => {
                self.event(EventKind::SlowClient, source, None, None, "request headers not sent in time")
            }
            ConnProblem::HeadersTooLarge => self.header_too_large(source),
            ConnProblem::UriTooLong => self.uri_too_long(source),
            _ => {}
        }
    }

    /// A request URI over the limit: refused while reading the HTTP/1.1 request line, or here.
    fn uri_too_long(&self, source: impl Into<Source>) {
        self.event(EventKind::UriTooLong, source, None, None, "request URI over the limit (414)");
    }

    /// A request head over the limit: refused by the HTTP/1.1 parser or, for HTTP/2, here.
    fn header_too_large(&self, source: impl Into<Source>) {
        let why = "request head over the size or count limit (431)";
        self.event(EventKind::HeaderTooLarge, source, None, None, why);
    }

    /// Admission before authentication: a ban, the per-source rate, the URI length, the head
    /// size. `Some` is the refusal to send.
    /// `past_ban`: the request passes a ban (an admin or node certificate, an admin token, the
    /// dashboard's page): the operator must always be able to reach the admin API to lift a
    /// ban, and a node must not be dropped from the pool because somebody else failed to
    /// authenticate from its address.
    pub fn refuse_early(
        &self,
        source: Source,
        uri_len: usize,
        headers: &http::HeaderMap,
        past_ban: bool,
    ) -> Option<http::Response<Body>> {
        if !past_ban && let Some(left) = self.bans.banned(source.client.ip()) {
            let r = reply::error(
                StatusCode::FORBIDDEN,
                "banned",
                "too many failed authentications from this address",
            );
            return Some(retry_after(r, left));
        }
        if self.source_limit.enabled()
            && let Err(wait) = self.source_limit.check(&source.client.ip().to_string())
        {
            self.event(EventKind::RateLimited, source, None, None, "over the per-source request rate");
            return Some(too_many(wait));
        }
        if uri_len > self.config.max_uri_bytes {
            self.uri_too_long(source);
            return Some(reply::error(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request URI is too long",
            ));
        }
        // The URI is checked first: it is part of the head too, but a long one is a 414.
        // HTTP/1.1 heads over the parser's buffer never get here (it answers 431 and the
        // connection observer records it); the rest, and HTTP/2 header lists, are checked
        // here, counted as RFC 7541 does (name + value + 32 per field).
        let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        if size > self.config.max_header_bytes || headers.len() > self.config.max_headers {
            self.header_too_large(source);
            return Some(reply::error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "the request head is too large",
            ));
        }
        None
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

/// 429 with `Retry-After`.
pub fn too_many(wait: Duration) -> http::Response<Body> {
    retry_after(
        reply::error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down"),
        wait,
    )
}

/// Adds `Retry-After` in whole seconds (at least 1).
fn retry_after(mut r: http::Response<Body>, wait: Duration) -> http::Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

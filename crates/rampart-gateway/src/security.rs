//! Turning refusals into security events (audit log, metrics, live stream) and the admission
//! checks that run before any routing work: bans, rate limits, URI length.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use rampart_events::{NewEvent, Severity};
use rampart_net::{Body, ConnProblem};

use crate::{State, reply};

impl State {
    /// Records a security event seen by this gateway.
    pub fn event(
        &self,
        severity: Severity,
        kind: &str,
        source: SocketAddr,
        principal: Option<String>,
        service: Option<&str>,
        reason: &str,
    ) {
        self.events.record(NewEvent {
            severity: Some(severity),
            kind: kind.to_owned(),
            source: source.ip().to_string(),
            principal,
            service: service.map(str::to_owned),
            reason: reason.to_owned(),
            node: None,
        });
    }

    /// An event about a node (source: the node's name).
    pub fn node_event(&self, severity: Severity, kind: &str, node: &str, reason: &str) {
        self.events.record(NewEvent {
            severity: Some(severity),
            kind: kind.to_owned(),
            source: node.to_owned(),
            principal: None,
            service: None,
            reason: reason.to_owned(),
            node: Some(node.to_owned()),
        });
    }

    /// A failed authentication: an event, and a step towards a ban of the source.
    pub fn auth_failed(&self, kind: &str, source: SocketAddr, service: Option<&str>, reason: &str) {
        self.event(Severity::Warning, kind, source, None, service, reason);
        if self.bans.failed(source.ip()) {
            let why = format!(
                "{} authentication failures within {} s: banned for {} s",
                self.config.ban_after_failures, self.config.ban_window_secs, self.config.ban_secs
            );
            self.event(Severity::Critical, crate::cluster::BANNED, source, None, None, &why);
        }
    }

    /// A failed TLS handshake, classified. A client that merely hung up mid-handshake (a
    /// browser's spare connection, a port scan) is not a security event.
    pub fn handshake_failed(&self, source: SocketAddr, error: &str) {
        let lower = error.to_ascii_lowercase();
        if lower.contains("eof") || lower.contains("reset") || lower.contains("broken pipe") {
            return;
        }
        let (kind, reason) = classify_tls(error);
        self.metrics.tls_failure(kind);
        let severity = if kind == "tls_revoked" || kind == "tls_wrong_role" {
            Severity::Critical
        } else {
            Severity::Warning
        };
        self.event(severity, kind, source, None, None, reason);
        if kind != "tls_handshake_failed" {
            let _ = self.bans.failed(source.ip());
        }
    }

    /// A connection cut for a slow or oversized request head.
    pub fn connection_problem(&self, source: SocketAddr, problem: ConnProblem) {
        match problem {
            ConnProblem::HeaderTimeout => self.event(
                Severity::Warning,
                "slow_client",
                source,
                None,
                None,
                "request headers not sent in time",
            ),
            ConnProblem::HeadersTooLarge => self.header_too_large(source),
        }
    }

    /// A request head over the limit: refused by the HTTP/1.1 parser or, for HTTP/2, here.
    fn header_too_large(&self, source: SocketAddr) {
        let why = "request head over the size or count limit (431)";
        self.event(Severity::Warning, "header_too_large", source, None, None, why);
    }

    /// Admission before authentication: a ban, the per-source rate, the URI length. `Some`
    /// is the refusal to send.
    /// A verified admin certificate is never banned: the operator must always be able to reach
    /// the admin API to lift a ban, even from a banned address.
    pub fn refuse_early(
        &self,
        source: SocketAddr,
        uri_len: usize,
        headers: &http::HeaderMap,
        admin_cert: bool,
    ) -> Option<http::Response<Body>> {
        if !admin_cert && let Some(left) = self.bans.banned(source.ip()) {
            let r = reply::error(
                StatusCode::FORBIDDEN,
                "banned",
                "too many failed authentications from this address",
            );
            return Some(retry_after(r, left));
        }
        if self.source_limit.enabled()
            && let Err(wait) = self.source_limit.check(&source.ip().to_string())
        {
            self.event(
                Severity::Warning,
                "rate_limited",
                source,
                None,
                None,
                "over the per-source request rate",
            );
            return Some(too_many(wait));
        }
        // HTTP/1.1 heads over the limit never get here (the parser refuses them and the
        // connection observer records it); HTTP/2 header lists are checked here, counted as
        // RFC 7541 does (name + value + 32 per field).
        let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        if size > self.config.max_header_bytes || headers.len() > self.config.max_headers {
            self.header_too_large(source);
            return Some(reply::error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "the request head is too large",
            ));
        }
        if uri_len > self.config.max_uri_bytes {
            self.event(
                Severity::Warning,
                "uri_too_long",
                source,
                None,
                None,
                "request URI over the limit (414)",
            );
            return Some(reply::error(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                "the request URI is too long",
            ));
        }
        None
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

/// (event kind, sentence) for a TLS error as rustls words it.
fn classify_tls(error: &str) -> (&'static str, &'static str) {
    if error.contains("peer sent no certificates") || error.contains("NoCertificatesPresented") {
        ("tls_no_certificate", "no client certificate on a listener that requires one")
    } else if error.contains("UnknownIssuer") {
        (
            "tls_unknown_ca",
            "client certificate not issued by this trust domain's CA (unknown CA or another domain)",
        )
    } else if error.contains("Revoked") {
        ("tls_revoked", "client certificate is revoked")
    } else if error.contains("Expired") || error.contains("NotValidYet") {
        ("tls_expired", "client certificate is expired or not yet valid")
    } else if error.contains("is of trust domain") {
        ("tls_other_domain", "client certificate of another trust domain")
    } else if error.contains("has role") {
        ("tls_wrong_role", "client certificate of a role that may not connect here")
    } else if error.contains("timed out") {
        ("slow_client", "TLS handshake not completed in time")
    } else {
        ("tls_handshake_failed", "TLS handshake failed")
    }
}

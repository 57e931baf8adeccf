//! Admission: every limit a request must pass and every ban, decided here, before any routing
//! or forwarding work. The request path asks at two points — [`Admission::screen`] before the
//! caller is known, [`Admission::principal`] after — and turns a [`Refusal`] into its event and
//! answer in one place (`State::refused`). The body's limits are applied while it is read
//! (`forward::body`), with the values [`Admission::body`] gives.

pub mod bans;
pub mod rate;

use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use rampart_events::EventKind;
use rampart_net::Body;

pub use bans::{Ban, Bans};
pub use rate::RateLimiter;

use crate::{GatewayConfig, reply};

/// Most keys a table (rate buckets, ban records) holds; beyond it, idle entries go first.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// Why a request is not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source is banned, for this long still.
    Banned(Duration),
    /// Over the per-source rate; a token comes back after this long.
    SourceRate(Duration),
    /// Over the per-principal rate; a token comes back after this long.
    PrincipalRate(Duration),
    /// The URI is over the limit (414).
    UriTooLong,
    /// The head is over the size or count limit (431).
    HeadTooLarge,
}

impl Refusal {
    /// The event it is recorded as, and why; none for a banned source (its ban was the event,
    /// and a banned flood must not flood the log).
    pub fn event(&self) -> Option<(EventKind, &'static str)> {
        match self {
            Refusal::Banned(_) => None,
            Refusal::SourceRate(_) => Some((EventKind::RateLimited, "over the per-source request rate")),
            Refusal::PrincipalRate(_) => {
                Some((EventKind::RateLimited, "over the per-principal request rate"))
            }
            Refusal::UriTooLong => Some((EventKind::UriTooLong, "request URI over the limit (414)")),
            Refusal::HeadTooLarge => {
                Some((EventKind::HeaderTooLarge, "request head over the size or count limit (431)"))
            }
        }
    }

    /// The answer the caller gets.
    pub fn answer(&self) -> http::Response<Body> {
        match *self {
            Refusal::Banned(left) => retry_after(
                reply::error(
                    StatusCode::FORBIDDEN,
                    "banned",
                    "too many failed authentications from this address",
                ),
                left,
            ),
            Refusal::SourceRate(wait) | Refusal::PrincipalRate(wait) => retry_after(
                reply::error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down"),
                wait,
            ),
            Refusal::UriTooLong => {
                reply::error(StatusCode::URI_TOO_LONG, "uri_too_long", "the request URI is too long")
            }
            Refusal::HeadTooLarge => reply::error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "the request head is too large",
            ),
        }
    }
}

/// Adds `Retry-After` in whole seconds (at least 1).
fn retry_after(mut r: http::Response<Body>, wait: Duration) -> http::Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

/// How a request body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body.
    pub max_bytes: usize,
    /// Longest pause between its frames.
    pub idle: Duration,
}

/// The limits and bans of one gateway.
#[derive(Debug)]
pub struct Admission {
    per_source: RateLimiter,
    per_principal: RateLimiter,
    bans: Bans,
    max_uri_bytes: usize,
    max_header_bytes: usize,
    max_headers: usize,
    body: BodyLimits,
}

impl Admission {
    /// The limits `[gateway]` sets.
    pub fn new(c: &GatewayConfig) -> Self {
        Admission {
            per_source: RateLimiter::new(c.rate_per_source, c.rate_per_source * c.rate_burst_secs),
            per_principal: RateLimiter::new(c.rate_per_principal, c.rate_per_principal * c.rate_burst_secs),
            bans: Bans::new(
                c.ban_after_failures,
                Duration::from_secs(c.ban_window_secs),
                Duration::from_secs(c.ban_secs),
            )
            .with_ipv6_prefix(c.ban_ipv6_prefix),
            max_uri_bytes: c.max_uri_bytes,
            max_header_bytes: c.max_header_bytes,
            max_headers: c.max_headers,
            body: BodyLimits {
                max_bytes: c.max_body_bytes,
                idle: Duration::from_millis(c.body_idle_timeout_ms),
            },
        }
    }

    /// Before the caller is known: a ban of `client` (unless the request passes bans: an admin
    /// or node certificate, an admin token, the dashboard's page — the operator must always
    /// reach the admin API to lift a ban, and a node must not leave the pool because somebody
    /// else failed from its address), the per-source rate, the URI length, the head size.
    pub fn screen(
        &self,
        client: IpAddr,
        uri_len: usize,
        headers: &http::HeaderMap,
        past_ban: bool,
    ) -> Result<(), Refusal> {
        if !past_ban && let Some(left) = self.bans.banned(client) {
            return Err(Refusal::Banned(left));
        }
        if self.per_source.enabled() {
            self.per_source.check(&client.to_string()).map_err(Refusal::SourceRate)?;
        }
        if uri_len > self.max_uri_bytes {
            return Err(Refusal::UriTooLong);
        }
        // The URI is checked first: it is part of the head too, but a long one is a 414.
        // HTTP/1.1 heads over the parser's buffer never get here (it answers 431 and the
        // connection observer records it); the rest, and HTTP/2 header lists, are checked
        // here, counted as RFC 7541 does (name + value + 32 per field).
        let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        if size > self.max_header_bytes || headers.len() > self.max_headers {
            return Err(Refusal::HeadTooLarge);
        }
        Ok(())
    }

    /// Once the caller is known: the per-principal rate.
    pub fn principal(&self, name: &str) -> Result<(), Refusal> {
        if !self.per_principal.enabled() {
            return Ok(());
        }
        self.per_principal.check(name).map_err(Refusal::PrincipalRate)
    }

    /// How request bodies are read.
    pub fn body(&self) -> BodyLimits {
        self.body
    }

    /// The bans (listed, lifted and imposed by the admin API and the other gateways).
    pub fn bans(&self) -> &Bans {
        &self.bans
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn admission(change: impl FnOnce(&mut GatewayConfig)) -> Admission {
        let mut c = GatewayConfig::default();
        change(&mut c);
        Admission::new(&c)
    }

    #[test]
    fn every_limit_is_decided_here_in_order() {
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let none = http::HeaderMap::new();
        let a = admission(|c| {
            (c.max_uri_bytes, c.rate_per_source, c.rate_burst_secs) = (10, 1.0, 2.0);
        });
        assert_eq!(a.screen(ip, 10, &none, false), Ok(()));
        assert_eq!(a.screen(ip, 11, &none, false), Err(Refusal::UriTooLong), "the rate is taken first");
        assert!(matches!(a.screen(ip, 1, &none, false), Err(Refusal::SourceRate(_))));
        assert_eq!(a.screen("127.0.0.10".parse().unwrap(), 1, &none, false), Ok(()), "per source");

        let mut many = http::HeaderMap::new();
        for name in ["a", "b", "c"] {
            many.insert(http::HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        let b = admission(|c| (c.max_headers, c.ban_after_failures, c.rate_per_source) = (2, 1, 0.0));
        assert_eq!(b.screen(ip, 1, &many, false), Err(Refusal::HeadTooLarge));
        assert!(b.bans().failed(ip), "one failure bans here");
        assert!(matches!(b.screen(ip, 1, &none, false), Err(Refusal::Banned(_))));
        assert_eq!(b.screen(ip, 1, &none, true), Ok(()), "an operator passes the ban");

        let c = admission(|c| (c.rate_per_principal, c.rate_burst_secs) = (1.0, 1.0));
        assert_eq!(c.principal("user/alice"), Ok(()));
        assert!(matches!(c.principal("user/alice"), Err(Refusal::PrincipalRate(_))));
        assert_eq!(c.principal("user/bob"), Ok(()));
    }

    #[test]
    fn refusals_answer_with_retry_after_and_a_banned_flood_is_not_logged() {
        let banned = Refusal::Banned(Duration::from_millis(1500));
        assert_eq!(banned.event(), None);
        let r = banned.answer();
        assert_eq!((r.status(), r.headers()[RETRY_AFTER].to_str().unwrap()), (StatusCode::FORBIDDEN, "1"));
        let r = Refusal::PrincipalRate(Duration::from_secs(3)).answer();
        assert_eq!(
            (r.status(), r.headers()[RETRY_AFTER].to_str().unwrap()),
            (StatusCode::TOO_MANY_REQUESTS, "3")
        );
        assert_eq!(Refusal::UriTooLong.answer().status(), StatusCode::URI_TOO_LONG);
        assert_eq!(Refusal::HeadTooLarge.event().map(|e| e.0), Some(EventKind::HeaderTooLarge));
    }
}

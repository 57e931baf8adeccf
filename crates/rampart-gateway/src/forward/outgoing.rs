//! The request a target receives and the answer the caller gets back: the service's segment
//! is removed from the path, hop-by-hop and identity headers from outside are dropped, and the
//! gateway sets `Rampart-Principal`, `Rampart-Service` and the forwarding headers itself.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response};
use rampart_auth::Principal;
use rampart_net::contract::header as wire;
use rampart_net::{Body, full};

use crate::upstream::Target;

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1).
pub(crate) const DROPPED: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What every attempt of one request sends, whichever target it goes to.
pub struct Outgoing<'a> {
    /// The caller's request head.
    pub parts: &'a Parts,
    /// Its body, read whole (so that it can be sent again).
    pub body: Bytes,
    /// The client's address (for the forwarding headers).
    pub client: SocketAddr,
    /// The service.
    pub service: &'a str,
    /// The path after the service's segment, normalised.
    pub rest: &'a str,
    /// Who called.
    pub principal: &'a Principal,
}

impl std::fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("service", &self.service)
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl super::attempt::RequestFor for Outgoing<'_> {
    fn to(&self, target: &Target) -> Request<Body> {
        use std::fmt::Write;
        let parts = self.parts;
        let path = if self.rest.is_empty() { "/" } else { self.rest };
        // One string, parsed in place (no copy): `https://<addr><path>[?<query>]`.
        let mut uri = String::with_capacity(32 + path.len() + parts.uri.query().map_or(0, str::len));
        let _ = write!(uri, "https://{}{path}", target.addr);
        if let Some(q) = parts.uri.query() {
            uri.push('?');
            uri.push_str(q);
        }
        let mut req = Request::new(full(self.body.clone()));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = http::Uri::try_from(uri).unwrap_or_default();
        // Room for the caller's headers and the seven the gateway sets, so that the map is
        // not grown (and copied) while it is filled.
        let headers = req.headers_mut();
        headers.reserve(parts.headers.len() + 7);
        for (name, value) in &parts.headers {
            // Rampart-* (the principal, the service) and where the request came from are the
            // gateway's word alone.
            let skip = DROPPED.contains(name)
                || [header::AUTHORIZATION, header::HOST].contains(name)
                || crate::forwarded::is_forwarding_header(name)
                || wire::is_rampart(name)
                || wire::has_underscore(name);
            if !skip {
                headers.append(name.clone(), value.clone());
            }
        }
        crate::forwarded::set_towards_node(headers, self.client);
        if let Ok(who) = HeaderValue::from_str(&self.principal.name()) {
            headers.insert(wire::PRINCIPAL, who);
        }
        headers.insert(wire::ROLE, HeaderValue::from_static(self.principal.role().as_str()));
        if let Ok(v) = HeaderValue::from_str(self.service) {
            headers.insert(wire::SERVICE, v);
        }
        req
    }
}

/// A target's answer cleaned for the caller: hop-by-hop headers and the node's
/// `Rampart-Served` removed, `Rampart-Attempts` added when it took more than one.
pub fn finish(resp: Response<Body>, attempts: u32) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    clean(&mut parts, attempts);
    Response::from_parts(parts, body)
}

/// [`finish`] on a response head.
pub fn clean(parts: &mut http::response::Parts, attempts: u32) {
    for name in &DROPPED {
        parts.headers.remove(name);
    }
    parts.headers.remove(wire::SERVED);
    if attempts > 1 {
        parts.headers.insert(wire::ATTEMPTS, HeaderValue::from(attempts));
    }
}

//! The request this gateway sends a peer network's gateway for a service that peer exports
//! to us: the caller's method, path, query and body, its headers without credentials,
//! connection headers and anything `Rampart-*`, and a fresh assertion of the caller for each
//! attempt (each has its own one-time id, so a retry is not taken for a replay).

use http::Request;
use http::header::{self, HeaderValue};
use rampart_net::contract::header as wire;
use rampart_net::{Body, full};
use tokio::time::Instant;

use super::Federation;
use crate::forward::attempt::RequestFor;
use crate::forward::outgoing::{DROPPED, Outgoing};
use crate::upstream::Target;

/// The link whose key signed a request's assertion: the one whose client sends it.
#[derive(Clone)]
pub(crate) struct SignedBy(pub(crate) std::sync::Arc<super::Link>);

/// The request of one forwarded call, addressed to a peer's gateway.
pub(crate) struct PeerOutgoing<'a> {
    /// The call as a local target would get it.
    pub(crate) call: &'a Outgoing<'a>,
    /// The caller as this network knows it (`Principal::vouchable`).
    pub(crate) subject: String,
    /// Whom the assertions are signed by.
    pub(crate) federation: &'a Federation,
    /// When the caller's deadline ends.
    pub(crate) deadline: Instant,
}

impl PeerOutgoing<'_> {
    /// The path and query the peer receives: the service's segment kept.
    fn path_and_query(&self) -> String {
        let call = self.call;
        let rest = if call.rest.is_empty() { "/" } else { call.rest };
        let query = call.parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!("/{}{rest}{query}", call.service)
    }
}

impl RequestFor for PeerOutgoing<'_> {
    fn to(&self, target: &Target) -> Request<Body> {
        let call = self.call;
        let path_and_query = self.path_and_query();
        let audience = target.name.split('@').next().and_then(|d| rampart_pki::TrustDomain::new(d).ok());
        let mut req = Request::new(full(call.body.clone()));
        *req.method_mut() = call.parts.method.clone();
        *req.uri_mut() =
            format!("https://{}{path_and_query}", Federation::authority(target)).parse().unwrap_or_default();
        let headers = req.headers_mut();
        for (name, value) in &call.parts.headers {
            let skip = DROPPED.contains(name)
                || [header::AUTHORIZATION, header::HOST, header::COOKIE].contains(name)
                || crate::forwarded::is_forwarding_header(name)
                || wire::is_rampart(name)
                || wire::has_underscore(name);
            if !skip {
                headers.append(name.clone(), value.clone());
            }
        }
        let (Some(audience), Some(link)) = (audience, self.federation.link_of(&target.name)) else {
            return req;
        };
        let assertion = link.signer().sign(
            rampart_federation::assertion::ForRequest {
                subject: &self.subject,
                audience: &audience,
                method: call.parts.method.as_str(),
                path_and_query: &path_and_query,
                deadline: Some(self.deadline.saturating_duration_since(Instant::now())),
            },
            crate::now_secs(),
        );
        match assertion.map(|a| HeaderValue::from_str(&a)) {
            Ok(Ok(value)) => {
                headers.insert(wire::ASSERTION, value);
                // Sent by this link's client whatever a reload does meanwhile: the assertion
                // and the connection's certificate are then of the same key.
                req.extensions_mut().insert(SignedBy(link));
            }
            // Sent without: the peer refuses it (401), which the caller is told.
            Ok(Err(e)) => tracing::error!("an assertion that is not a header value: {e}"),
            Err(e) => tracing::error!("{e}"),
        }
        req
    }
}

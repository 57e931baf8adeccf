//! Forwarding a request to a node over the pooled mutual-TLS client: the service's segment is
//! removed from the path, hop-by-hop and identity headers from outside are dropped, and the
//! gateway sets `Rampart-Principal` and `Rampart-Service` itself.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_auth::Principal;
use rampart_net::{Body, full};

use crate::routes::Endpoint;
use crate::{State, reply};

/// Set by the gateway: who called (any value from outside is removed first).
pub const PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("rampart-principal");
/// Set by the gateway: which service the node should run.
pub const SERVICE_HEADER: HeaderName = HeaderName::from_static("rampart-service");

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus the
/// caller's credentials, which the gateway has consumed.
const DROPPED: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Sends the request to `ep` with `rest` (the path after the service) and returns its answer.
pub async fn forward(
    state: &State,
    req: Request<Incoming>,
    service: &str,
    rest: &str,
    principal: &Principal,
    ep: &Endpoint,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("request bodies are limited to {limit} bytes"),
            );
        }
    };
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = format!("https://{}{}{}", ep.addr, if rest.is_empty() { "/" } else { rest }, query);
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", "the path cannot be forwarded");
    };
    for name in
        DROPPED.iter().chain([&header::AUTHORIZATION, &header::HOST, &PRINCIPAL_HEADER, &SERVICE_HEADER])
    {
        parts.headers.remove(name);
    }
    let Ok(who) = HeaderValue::from_str(&principal.name()) else {
        return reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "principal not representable");
    };
    parts.headers.insert(PRINCIPAL_HEADER, who);
    if let Ok(v) = HeaderValue::from_str(service) {
        parts.headers.insert(SERVICE_HEADER, v);
    }
    parts.uri = uri;
    parts.version = http::Version::HTTP_11; // the client picks HTTP/2 by ALPN
    let outgoing = Request::from_parts(parts, full(body));
    let timeout = Duration::from_millis(state.config.request_timeout_ms);
    match tokio::time::timeout(timeout, state.client.request(outgoing)).await {
        Ok(Ok(resp)) => {
            let (mut parts, body) = resp.into_parts();
            for name in &DROPPED {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, rampart_net::serve::incoming(body))
        }
        Ok(Err(e)) => {
            tracing::warn!("forwarding to {} ({}): {e:#}", ep.node, ep.addr);
            reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                &format!("node {} could not be reached or failed mid-request", ep.node),
            )
        }
        Err(_) => reply::error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            &format!("node {} did not answer in time", ep.node),
        ),
    }
}

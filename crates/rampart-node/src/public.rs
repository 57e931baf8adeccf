//! The public listener (`--public-listen`): the client TLS that gateways relay, untouched, on
//! passthrough routes. The node ends it with its own certificate (which carries the routes'
//! names), sees the client's certificate, and serves the route its server name (SNI) names:
//!
//! - a connection must come from a gateway, with its PROXY protocol header first (the client's
//!   address); no one else may send one, and a connection without one is not served;
//! - a request whose Host is not the connection's server name is answered 421 (HTTP/2
//!   coalescing would otherwise send one route's requests down another's connection);
//! - the caller is authenticated and admitted by the gateway (`POST /_rampart/internal/admit`:
//!   the same code, users, tokens, rates and policy as for the gateway's own requests), and
//!   a refusal passed on as the gateway made it;
//! - then the request runs as an internal one does ([`crate::dispatch`]).
//!
//! Every refusal is an event in the gateway's audit log.

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_events::EventKind;
use rampart_net::contract::internal::{AdmitRequest, Admitted, Endpoint};
use rampart_net::contract::{header, media};
use rampart_net::proxy_header::ProxyProtocol;
use rampart_net::{Body, ConnInfo, ServeLimits};

use crate::registration::{Membership, Report};
use crate::{Answer, Caller, Node, answer};

/// Serves passthrough routes of `node` on `listener` until `shutdown` completes, then
/// drains; only the gateways `proxy` trusts may relay to it. `identity` is what `tls`
/// presents: a route's name it does not carry is said in the log (clients would refuse it).
pub async fn serve(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    (tls, identity): (rustls::ServerConfig, rampart_net::tls::LiveIdentity),
    proxy: ProxyProtocol,
    shutdown: impl Future<Output = ()>,
) {
    if let Some(membership) = node.reporter.clone() {
        tokio::spawn(warn_of_missing_names(membership, identity));
    }
    let observers = crate::refusals_reported(node.reporter.clone());
    let from = proxy.clone();
    let handler: rampart_net::Handler = Arc::new(move |req, conn| {
        let (node, from) = (node.clone(), from.clone());
        Box::pin(async move { handle(&node, &from, req, &conn).await })
    });
    let limits = ServeLimits { proxy_protocol: proxy, ..ServeLimits::default() };
    rampart_net::serve(listener, Arc::new(tls), handler, limits, observers, shutdown).await;
}

async fn handle(
    node: &Node,
    from: &ProxyProtocol,
    req: Request<Incoming>,
    conn: &ConnInfo,
) -> Response<Body> {
    let Some(membership) = node.reporter.as_deref() else {
        return answer(Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node has no gateway",
        ));
    };
    let refuse = |status, kind: EventKind, code, why: String, service: Option<&str>| {
        report(membership, conn, kind, service, &why);
        answer(Answer::error(status, code, &why))
    };
    // A gateway's relay says whom it relays; a connection straight from a client does not.
    if !from.trusts(conn.peer.ip()) {
        let why = "a passthrough route is reached through a gateway".to_owned();
        return refuse(StatusCode::FORBIDDEN, EventKind::NodeRefusedCaller, "forbidden", why, None);
    }
    let sni = conn.server_name.as_deref().unwrap_or_default();
    let Some(service) = membership.passthrough_service(sni) else {
        let why = format!("this node serves no passthrough route named {:?}", clip(sni));
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            EventKind::MisdirectedRequest,
            "misdirected",
            why,
            None,
        );
    };
    match host(&req) {
        Some(h) if h.eq_ignore_ascii_case(sni) => {}
        other => {
            let asked = clip(other.as_deref().unwrap_or_default());
            let why = format!("this connection is for {sni:?}; the request asks for {asked:?}");
            let (code, kind) = ("misdirected", EventKind::MisdirectedRequest);
            return refuse(StatusCode::MISDIRECTED_REQUEST, kind, code, why, Some(&service));
        }
    }
    let ask = AdmitRequest {
        service: service.clone(),
        method: req.method().as_str().to_owned(),
        client: conn.remote,
        authorization: req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
        certificate: conn.certificate.as_ref().map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
    };
    let admitted = match membership.post(Endpoint::Admit, &ask).await {
        Ok((StatusCode::OK, body)) => match serde_json::from_value::<Admitted>(body) {
            Ok(a) => a,
            Err(_) => return unavailable("the gateway's admission answer did not parse"),
        },
        // The gateway's refusal (it recorded the event), as the gateway would have answered.
        Ok((status, body)) => {
            let mut r = Response::new(rampart_net::full(serde_json::to_vec(&body).unwrap_or_default()));
            *r.status_mut() = status;
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(media::JSON));
            return r;
        }
        Err(e) => return unavailable(&format!("no gateway could admit the caller: {e}")),
    };
    let headers = own_headers(req.headers());
    let client = conn.remote.ip().to_string();
    let Admitted { principal, role } = admitted;
    crate::dispatch(node, req, headers, conn, Caller { principal, role, service, client }).await
}

/// Says in the log, once per change, which of the routes' names the certificate lacks.
async fn warn_of_missing_names(membership: Arc<Membership>, identity: rampart_net::tls::LiveIdentity) {
    let mut said = Vec::new();
    loop {
        let held =
            rampart_pki::inspect::cert_from_der(identity.leaf().as_ref()).map(|c| c.dns).unwrap_or_default();
        let missing: Vec<String> = membership
            .passthrough_names()
            .into_iter()
            .filter(|n| !held.iter().any(|h| h.eq_ignore_ascii_case(n)))
            .collect();
        if !missing.is_empty() && missing != said {
            tracing::warn!(
                "this node's certificate does not carry {} (its passthrough routes' names): clients will refuse it. \
                 Issue it with --dns for each (rampart pki issue --role node --name NAME --dns HOST)",
                missing.join(", ")
            );
        }
        said = missing;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

/// The request's own headers: without its credential (the gateway's to judge) and without
/// what only a gateway may say (`Rampart-*`, where the request came from), nor a name with an
/// underscore (which reads as one of those to a CGI-style service).
fn own_headers(headers: &HeaderMap) -> HeaderMap {
    let mut own = headers.clone();
    let only_gateways: Vec<_> = own
        .keys()
        .filter(|n| {
            header::is_rampart(n)
                || header::has_underscore(n)
                || *n == "forwarded"
                || n.as_str().starts_with("x-forwarded-")
        })
        .cloned()
        .collect();
    for name in only_gateways {
        own.remove(name);
    }
    own.remove(AUTHORIZATION);
    own
}

/// The host a request asks for (HTTP/2's `:authority`, else `Host`), without its port.
fn host(req: &Request<Incoming>) -> Option<String> {
    if let Some(h) = req.uri().host() {
        return Some(h.to_owned());
    }
    let value = req.headers().get(HOST)?.to_str().ok()?;
    Some(value.parse::<http::uri::Authority>().ok()?.host().to_owned())
}

fn unavailable(why: &str) -> Response<Body> {
    answer(Answer::error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why))
}

/// A refusal of this listener, for the gateway's audit log (sent beside the answer).
fn report(membership: &Membership, conn: &ConnInfo, kind: EventKind, service: Option<&str>, why: &str) {
    tracing::warn!("refused a request from {}: {why}", conn.remote);
    let (m, source, service, why) =
        (membership.clone(), conn.remote.ip().to_string(), service.map(str::to_owned), why.to_owned());
    let principal = conn.principal.as_ref().map(|p| p.name());
    tokio::spawn(async move {
        let r = Report {
            kind,
            source: &source,
            principal: principal.as_deref(),
            service: service.as_deref(),
            reason: &why,
        };
        m.report_event(r).await;
    });
}

/// A client's words, cut short for the record.
fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

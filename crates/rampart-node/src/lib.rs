//! The rampart node: hosts services behind a gateway. Its internal listener accepts only
//! mutual TLS from `gateway` certificates of its own trust domain (checked in the handshake),
//! so clients can never bypass the gateway. It serves the built-in services (`hello`, `echo`,
//! `data`) and forwards to upstream apps (`--upstream NAME=URL`) with the principal header,
//! opening and sealing payload envelopes with the keyring.
//!
//! # Layout
//! - [`service`]: the [`Service`] trait every hosted service implements, its call and answer;
//! - [`services`]: the built-in services; [`upstream`]: an app on loopback as a service;
//! - [`registration`]: lease, heartbeat, deregistration, event reports, envelope claims;
//!   [`renewal`]: the node's certificate renewed by itself through a gateway, and read again
//!   when its files change;
//! - [`envelope`]: Fernet envelopes (TTL; claimed in the network-wide replay guard);
//! - [`health`]: plain-HTTP readiness for orchestrators, on a listener of its own;
//! - [`jobs`]: distributed histogram jobs as a service, and the node's worker;
//! - [`public`]: the listener for the client TLS a gateway relays on passthrough routes;
//! - [`program`]: executables as services, run CGI-style under limits, from a services folder
//!   followed live (`program/folder.rs`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod envelope;
pub mod health;
pub mod jobs;
pub mod program;
pub mod public;
pub mod registration;
pub mod renewal;
pub mod service;
pub mod services;
pub mod upstream;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::envelope::{Envelopes, FERNET};
pub use crate::service::{Answer, Call, Service};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_crypto::CryptoError;
use rampart_events::EventKind;
use rampart_net::contract::{header, path};
use rampart_net::{Body, ConnInfo, ServeLimits, full};

/// Largest request body a node accepts.
const MAX_BODY: usize = 8 << 20;
/// The longest pause allowed between a request body's frames.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Services by name.
pub type Services = BTreeMap<String, Arc<dyn Service>>;

/// What a node serves.
pub struct Node {
    /// Its name.
    pub name: String,
    /// The services it hosts, by name (replaced when a services folder changes).
    services: arc_swap::ArcSwap<Services>,
    /// Payload envelopes; `None` when the node has no keyring.
    pub envelopes: Option<Envelopes>,
    /// Where refusals are reported (the gateway).
    pub reporter: Option<Arc<registration::Membership>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("services", &self.services())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node hosting `services` (by name).
    pub fn new(name: String, services: Services, envelopes: Option<Envelopes>) -> Self {
        Node { name, services: arc_swap::ArcSwap::from_pointee(services), envelopes, reporter: None }
    }

    /// The names of the services it hosts, in order: what it registers.
    pub fn services(&self) -> Vec<String> {
        self.services.load().keys().cloned().collect()
    }

    /// How long its services that bound their answers may take, in milliseconds: registered.
    pub fn timeouts_ms(&self) -> BTreeMap<String, u64> {
        let services = self.services.load();
        services
            .iter()
            .filter_map(|(name, s)| {
                Some((name.clone(), u64::try_from(s.takes()?.as_millis()).unwrap_or(u64::MAX)))
            })
            .collect()
    }

    /// The services it hosts now.
    pub fn hosted(&self) -> Services {
        Services::clone(&self.services.load())
    }

    /// Hosts `services` from the next request on (requests under way finish with what they
    /// had), and registers the new list.
    pub fn replace_services(&self, services: Services) {
        self.services.store(Arc::new(services));
        if let Some(membership) = &self.reporter {
            membership.set_services(self.services(), self.timeouts_ms());
        }
    }
}

/// Serves `node` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let observers = refusals_reported(node.reporter.clone());
    let handler: rampart_net::Handler = Arc::new(move |req, conn| {
        let node = node.clone();
        Box::pin(async move { handle(&node, req, &conn).await })
    });
    rampart_net::serve(listener, Arc::new(tls), handler, ServeLimits::default(), observers, shutdown).await;
}

/// Observers for which a refused caller is a security event: logged here and reported to the
/// gateway.
pub(crate) fn refusals_reported(reporter: Option<Arc<registration::Membership>>) -> rampart_net::Observers {
    let observer: rampart_net::serve::HandshakeObserver = Arc::new(move |source, refusal| {
        let remote = source.client;
        tracing::warn!("refused a connection from {source} ({}): {refusal}", refusal.kind());
        let reason = format!("{} ({})", refusal.reason(), refusal.kind());
        if let Some(r) = reporter.clone() {
            tokio::spawn(async move {
                r.report(EventKind::NodeRefusedCaller, &remote.to_string(), &reason).await
            });
        }
    });
    rampart_net::Observers { handshake: Some(observer), connection: None }
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn answer(a: Answer) -> Response<Body> {
    let down = a.registry_down;
    let mut r = respond(a.status, &a.content_type, a.body);
    with_headers(&mut r, a.headers);
    if down {
        r.headers_mut().insert(header::REGISTRY, HeaderValue::from_static("unavailable"));
    }
    r
}

/// A service's own headers on its answer: never the node's (`Rampart-*`), nor what describes the
/// connection or the body's framing, which hyper sets.
fn with_headers(r: &mut Response<Body>, headers: http::HeaderMap) {
    use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    for (name, value) in headers.iter() {
        let own = header::is_rampart(name)
            || [CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, CONTENT_TYPE].contains(name);
        if !own {
            r.headers_mut().append(name.clone(), value.clone());
        }
    }
}

async fn handle(node: &Node, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
    // The handshake admitted only gateways of our domain; the caller's principal is the one
    // the gateway vouches for.
    if conn.principal.is_none() {
        return answer(Answer::error(StatusCode::FORBIDDEN, "forbidden", "only gateways may call a node"));
    }
    if req.uri().path() == path::HEALTH && !req.headers().contains_key(header::SERVICE) {
        return with_node(node, respond(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec()));
    }
    let headers = req.headers();
    let principal = header::text(headers, &header::PRINCIPAL).unwrap_or("anonymous").to_owned();
    let role = header::text(headers, &header::ROLE).unwrap_or("").to_owned();
    let Some(service) = header::text(headers, &header::SERVICE).map(str::to_owned) else {
        return answer(Answer::error(StatusCode::BAD_REQUEST, "bad_request", "no Rampart-Service header"));
    };
    // The client the gateway named (the connection is the gateway's).
    let client = header::text(headers, &header::CLIENT).unwrap_or("").to_owned();
    let headers = headers.clone();
    dispatch(node, req, headers, conn, Caller { principal, role, service, client }).await
}

/// Who a request is for and from, as the node knows it: from the gateway's headers on the
/// internal listener, from the connection and the gateway's admission on the public one.
pub(crate) struct Caller {
    /// The principal's name.
    principal: String,
    /// Its role, as the gateway says (empty when it says none).
    role: String,
    /// The service.
    service: String,
    /// The client's address (empty when unknown).
    client: String,
}

/// A request's body whole, up to [`MAX_BODY`] ([`rampart_net::body`]: one over it gets its
/// 413 read by the client).
async fn read_body(
    version: http::Version,
    headers: &http::HeaderMap,
    mut body: Incoming,
) -> Result<Vec<u8>, Answer> {
    use rampart_net::body::{self, BodyError};
    let waits = body::waits_for_continue(version, headers);
    match body::read_request(&mut body, MAX_BODY, BODY_IDLE, waits).await {
        Ok(b) => Ok(b.to_vec()),
        Err(BodyError::TooLarge) => {
            let why = format!("request bodies are limited to {MAX_BODY} bytes");
            Err(Answer::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &why))
        }
        Err(BodyError::Idle) => {
            Err(Answer::error(StatusCode::REQUEST_TIMEOUT, "slow_client", "the request body stalled"))
        }
        Err(BodyError::Broken | BodyError::Malformed) => {
            Err(Answer::error(StatusCode::BAD_REQUEST, "bad_request", "the request body could not be read"))
        }
    }
}

/// Runs a request of `caller` (its own headers `headers`, the request's less what only the
/// gateway may say) on the service it is for.
pub(crate) async fn dispatch(
    node: &Node,
    req: Request<Incoming>,
    headers: http::HeaderMap,
    conn: &ConnInfo,
    caller: Caller,
) -> Response<Body> {
    let Caller { principal, role, service, client } = caller;
    if let Err(e) = rampart_net::wire::check_method(req.method()) {
        return answer(Answer::error(StatusCode::BAD_REQUEST, "bad_method", &e.to_string()));
    }
    // The gateway normalised the path already; a node checks again (defence in depth).
    let path = match rampart_net::wire::normalize_path(req.uri().path()) {
        Ok(p) => p.into_owned(),
        Err(e) => return answer(Answer::error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string())),
    };
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_owned);
    let sealed_in = envelope::is_sealed(&headers);
    let seal_out = sealed_in || envelope::wants_sealed(&headers);
    let version = req.version();
    let body = match read_body(version, &headers, req.into_body()).await {
        Ok(b) => b,
        Err(refused) => return answer(refused),
    };
    if seal_out && node.envelopes.is_none() {
        return answer(Answer::error(
            StatusCode::BAD_REQUEST,
            "no_keyring",
            "this node has no payload keyring",
        ));
    }
    let body = if sealed_in {
        match open(node, body, &headers, (conn, &client), (&principal, &service)).await {
            Ok(plain) => plain,
            Err(refused) => return refused,
        }
    } else {
        body
    };
    let hosted = node.services.load().get(&service).cloned();
    let a = match hosted {
        Some(hosted) => {
            let idempotency_key = header::text(&headers, &header::IDEMPOTENCY_KEY);
            let call = Call {
                method: &method,
                path: &path,
                query: query.as_deref(),
                headers: &headers,
                principal: &principal,
                role: &role,
                client: &client,
                idempotency_key,
                body,
            };
            hosted.call(call).await
        }
        None => Answer::error(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("{service:?} is not hosted on this node"),
        ),
    };
    let resp = match (&node.envelopes, seal_out) {
        (Some(env), true) => match env.seal(&a.body) {
            Ok(token) => {
                let mut r = respond(a.status, FERNET, token.into_bytes());
                with_headers(&mut r, a.headers);
                r
            }
            Err(e) => answer(Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e.to_string())),
        },
        _ => answer(a),
    };
    let mut resp = with_node(node, resp);
    resp.headers_mut().insert(header::SERVED, HeaderValue::from_static("1"));
    resp
}

/// Opens a sealed body (and claims its envelope in the network-wide replay guard), or the
/// answer refusing it.
async fn open(
    node: &Node,
    body: Vec<u8>,
    headers: &http::HeaderMap,
    (conn, client): (&ConnInfo, &str),
    (principal, service): (&str, &str),
) -> Result<Vec<u8>, Response<Body>> {
    let (Some(env), Some(guard)) = (&node.envelopes, &node.reporter) else {
        return Err(answer(Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node has no gateway to check envelopes for replays with",
        )));
    };
    let key = header::text(headers, &header::IDEMPOTENCY_KEY);
    let scope = key.map(|k| envelope::scope(principal, service, k));
    env.open(&body, guard, scope.as_deref()).await.map_err(|e| {
        let source = if client.is_empty() { conn.remote.ip().to_string() } else { client.to_owned() };
        refused_envelope(guard, source, principal, service, e)
    })
}

/// The answer to an envelope that was not opened; a refused token is a security event.
fn refused_envelope(
    guard: &Arc<registration::Membership>,
    source: String,
    principal: &str,
    service: &str,
    e: envelope::EnvelopeError,
) -> Response<Body> {
    use envelope::EnvelopeError as E;
    let (status, kind, event) = match &e {
        E::Token(CryptoError::TooLarge { .. }) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
        E::Token(_) => (StatusCode::BAD_REQUEST, "bad_envelope", Some(EventKind::EnvelopeRefused)),
        E::Replayed => (StatusCode::BAD_REQUEST, "envelope_replayed", Some(EventKind::EnvelopeReplayed)),
        E::Full => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
        E::Unavailable(_) => {
            let mut a =
                Answer::error(StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable", &e.to_string());
            a.registry_down = true;
            return answer(a);
        }
    };
    let reason = e.to_string();
    if let Some(kind) = event {
        let guard = guard.clone();
        let (principal, service, reason) = (principal.to_owned(), service.to_owned(), reason.clone());
        tokio::spawn(async move {
            let report = registration::Report {
                kind,
                source: &source,
                principal: Some(&principal),
                service: Some(&service),
                reason: &reason,
            };
            guard.report_event(report).await;
        });
    }
    answer(Answer::error(status, kind, &reason))
}

/// Names the node that answered (`Rampart-Node`), for operators and the demo's per-node counts.
fn with_node(node: &Node, mut resp: Response<Body>) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&node.name) {
        resp.headers_mut().insert(header::NODE, v);
    }
    resp
}

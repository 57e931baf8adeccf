//! Forwarding a request to a node, with safe retries.
//!
//! The service's segment is removed from the path, hop-by-hop and identity headers from
//! outside are dropped, and the gateway sets `Rampart-Principal` and `Rampart-Service` itself.
//! A request that never reached a node (connect refused, TLS failure) is retried on another
//! node whatever its method. Once a node may have acted on it (it failed or hung after the
//! request was sent, or answered 502/503/504), it is retried only if its method is idempotent
//! or it carries an `Idempotency-Key`; otherwise the caller is told the outcome is unknown.
//! Retries draw on a budget, are jittered, and stop at the deadline. The outcome of a request
//! with an `Idempotency-Key` is kept in the registry and replayed to duplicates: only the
//! service's own answer (marked by the node), never a refusal made before the service ran.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_auth::Principal;
use rampart_events::Severity;
use rampart_net::{Body, ConnInfo, full};
use serde::{Deserialize, Serialize};

use crate::routes::Endpoint;
use crate::{State, health, reply};

/// Set by the gateway: who called (any value from outside is removed first).
pub const PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("rampart-principal");
/// Set by the gateway: which service the node should run.
pub const SERVICE_HEADER: HeaderName = HeaderName::from_static("rampart-service");
/// Set by the gateway on answers that took more than one attempt.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("rampart-attempts");
/// The client's key making a non-idempotent request safe to retry.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed from a recorded outcome.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Where outcomes of requests with an `Idempotency-Key` are kept.
pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";
/// Largest answer body kept for replay.
const MAX_RECORDED_BODY: usize = 64 << 10;

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1).
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

/// A recorded outcome.
#[derive(Serialize, Deserialize)]
struct Outcome {
    status: u16,
    content_type: Option<String>,
    body: String,
    expires: u64,
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Sends the request to a node of `service` with `rest` (the path after the service).
pub async fn forward(
    state: &State,
    req: Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
    rest: &str,
    principal: &Principal,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let body = match read_body(body, limit, Duration::from_millis(state.config.body_idle_timeout_ms)).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let why = format!("request bodies are limited to {limit} bytes");
            state.event(Severity::Warning, "too_large", conn, Some(principal.name()), Some(service), &why);
            return reply::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &why);
        }
        Err(BodyError::Idle) => {
            let why = "the request body stalled";
            state.event(Severity::Warning, "slow_client", conn, Some(principal.name()), Some(service), why);
            return reply::error(StatusCode::REQUEST_TIMEOUT, "slow_client", why);
        }
        Err(BodyError::Broken) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            );
        }
    };
    let key = match parts.headers.get(&IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
        Some(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            );
        }
    };
    let record = key.as_ref().map(|k| {
        let scope = format!("{}\0{service}\0{k}", principal.name());
        format!(
            "{IDEMPOTENCY_PREFIX}{}",
            hex(ring::digest::digest(&ring::digest::SHA256, scope.as_bytes()).as_ref())
        )
    });
    if let Some(r) = &record
        && let Some(resp) = replay(state, r).await
    {
        return resp;
    }
    let retry_after_send = idempotent(&parts.method) || key.is_some();
    state.budget.request();
    let deadline = Instant::now() + Duration::from_millis(state.config.deadline_ms);
    let mut tried: Vec<String> = Vec::new();
    let mut last: Option<Response<Body>> = None;
    loop {
        let ep = state.routes.load().pick(service, &tried).cloned();
        let Some(ep) = ep else {
            return last
                .unwrap_or_else(|| reply::unavailable(&format!("no live node hosts {service:?} right now")));
        };
        tried.push(ep.node.clone());
        let attempt = tried.len() as u32;

        let left = deadline.saturating_duration_since(Instant::now());
        let try_timeout = Duration::from_millis(state.config.try_timeout_ms).min(left);
        let outgoing = build(&parts, body.clone(), (&ep, conn.remote), service, rest, principal);
        let in_flight = ep.health.start();
        let result = tokio::time::timeout(try_timeout, state.client.request(outgoing)).await;
        match result {
            // The node could not reach the registry: not its fault, and no other node would do
            // better (they share it). Pass the 503 on, without blaming the node.
            Ok(Ok(resp)) if resp.headers().contains_key(rampart_net::REGISTRY_HEADER) => {
                drop(in_flight);
                return finish(resp, attempt);
            }
            Ok(Ok(resp)) if retry_after_send && matches!(resp.status().as_u16(), 502..=504) => {
                failed(state, &ep, in_flight, &format!("answered {}", resp.status()));
                last = Some(finish(resp, attempt));
                if !may_retry(state, attempt, deadline) {
                    return last.unwrap_or_else(|| reply::unavailable("no node could answer"));
                }
            }
            Ok(Ok(resp)) => {
                if in_flight.ok() {
                    state.node_event(Severity::Info, "node_rejoined", &ep.node, "answered again");
                }
                return match &record {
                    Some(r) => keep(state, r, resp, attempt).await,
                    None => finish(resp, attempt),
                };
            }
            Ok(Err(e)) => {
                let never_sent = e.is_connect();
                if let Some(why) = node_certificate_refusal(&e) {
                    state.node_certificate_refused(&ep.health, &why);
                }
                failed(state, &ep, in_flight, &error_chain(&e));
                if (never_sent || retry_after_send) && may_retry(state, attempt, deadline) {
                    tokio::time::sleep(health::retry_backoff(attempt)).await;
                    continue;
                }
                return if never_sent {
                    reply::error(
                        StatusCode::BAD_GATEWAY,
                        "upstream_unreachable",
                        &format!("node {} could not be reached", ep.node),
                    )
                } else {
                    reply::error(
                        StatusCode::BAD_GATEWAY,
                        "outcome_unknown",
                        &format!(
                            "node {} failed after receiving the request; it may or may not have acted on it, so it was not \
                             repeated (send an Idempotency-Key to make such requests safe to retry)",
                            ep.node
                        ),
                    )
                };
            }
            Err(_) => {
                failed(state, &ep, in_flight, "timed out");
                if retry_after_send && may_retry(state, attempt, deadline) {
                    continue;
                }
                return reply::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "outcome_unknown",
                    &format!(
                        "node {} did not answer in time; the outcome is unknown and the request was not repeated",
                        ep.node
                    ),
                );
            }
        }
    }
}

/// Whether another attempt is allowed: under the attempt cap, before the deadline, and within
/// the retry budget (which this call draws on).
fn may_retry(state: &State, attempt: u32, deadline: Instant) -> bool {
    attempt < state.config.max_attempts && Instant::now() < deadline && state.budget.try_retry()
}

/// An error and its causes on one line (hyper's own message hides the TLS refusal inside).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Why the node's certificate was refused, when that is what failed the attempt (read from the
/// typed TLS error inside the connector's `io::Error`): somebody answers at a registered
/// address without being the node registered there, or with a certificate that no longer holds.
pub(crate) fn node_certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rampart_net::refusal::HandshakeRefusal as R;
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(refusal) = c.downcast_ref::<std::io::Error>().and_then(R::from_io) {
            return match refusal {
                R::OtherDomain(why) | R::WrongRole(why) | R::BadIdentity(why) => Some(why),
                R::TimedOut | R::Protocol(_) => None,
                other => Some(other.kind().to_owned()),
            };
        }
        cause = c.source();
    }
    None
}

fn failed(state: &State, ep: &Endpoint, in_flight: health::InFlight, why: &str) {
    tracing::warn!("attempt on node {} ({}) failed: {why}", ep.node, ep.addr);
    if in_flight.failed() {
        let peers = state.routes.load().peers_of(&ep.node);
        if state.health.maybe_eject(&ep.health, &peers, why) {
            state.ejected(&ep.node, &format!("consecutive failures: {why}"));
        }
    }
}

enum BodyError {
    TooLarge,
    Idle,
    Broken,
}

/// Reads a request body whole, refusing more than `limit` bytes or a pause longer than `idle`
/// between frames (a slow client must not hold a worker).
async fn read_body(mut body: Incoming, limit: usize, idle: Duration) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Idle),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

fn build(
    parts: &Parts,
    body: Bytes,
    (ep, client): (&Endpoint, SocketAddr),
    service: &str,
    rest: &str,
    principal: &Principal,
) -> Request<Body> {
    let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let uri = format!("https://{}{}{}", ep.addr, if rest.is_empty() { "/" } else { rest }, query);
    let mut req = Request::new(full(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri.parse().unwrap_or_default();
    let headers = req.headers_mut();
    for (name, value) in &parts.headers {
        // Rampart-* (the principal, the service) and where the request came from are the
        // gateway's word alone.
        let skip = DROPPED.contains(name)
            || [header::AUTHORIZATION, header::HOST].contains(name)
            || crate::forwarded::is_forwarding_header(name);
        if !skip {
            headers.append(name.clone(), value.clone());
        }
    }
    crate::forwarded::set_towards_node(headers, client);
    if let Ok(who) = HeaderValue::from_str(&principal.name()) {
        headers.insert(PRINCIPAL_HEADER, who);
    }
    if let Ok(v) = HeaderValue::from_str(service) {
        headers.insert(SERVICE_HEADER, v);
    }
    req
}

fn finish(resp: Response<Incoming>, attempts: u32) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    for name in &DROPPED {
        parts.headers.remove(name);
    }
    parts.headers.remove(rampart_net::SERVED_HEADER);
    if attempts > 1 {
        parts.headers.insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
    }
    Response::from_parts(parts, rampart_net::serve::incoming(body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The recorded answer to an earlier request with the same key, if any.
async fn replay(state: &State, record: &str) -> Option<Response<Body>> {
    let kv = state.store.get(record).await.ok()??;
    let o: Outcome = serde_json::from_slice(&kv.value).ok()?;
    if o.expires < crate::now_secs() {
        return None;
    }
    let body = base64::engine::general_purpose::STANDARD.decode(o.body).ok()?;
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(o.status).ok()?;
    if let Some(ct) = o.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Some(resp)
}

/// Records the answer under the key, if it is the service's own (not a refusal the node made
/// before the service ran) and not a server error; returns it.
async fn keep(state: &State, record: &str, resp: Response<Incoming>, attempts: u32) -> Response<Body> {
    if resp.status().is_server_error() || !resp.headers().contains_key(rampart_net::SERVED_HEADER) {
        return finish(resp, attempts);
    }
    let (mut parts, body) = resp.into_parts();
    for name in &DROPPED {
        parts.headers.remove(name);
    }
    parts.headers.remove(rampart_net::SERVED_HEADER);
    if attempts > 1 {
        parts.headers.insert(ATTEMPTS_HEADER, HeaderValue::from(attempts));
    }
    let bytes = match http_body_util::Limited::new(body, MAX_RECORDED_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the answer was cut or too large to keep for replay",
            );
        }
    };
    let outcome = Outcome {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: base64::engine::general_purpose::STANDARD.encode(&bytes),
        expires: crate::now_secs() + state.config.idempotency_window_secs,
    };
    if let Ok(v) = serde_json::to_vec(&outcome)
        && let Err(e) = state.store.put(record, v, None).await
    {
        tracing::warn!("recording an idempotent outcome: {e}");
    }
    Response::from_parts(parts, full(bytes))
}

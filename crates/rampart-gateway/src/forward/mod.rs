//! Forwarding an admitted request to its service: the body read under limits ([`body`]), a
//! duplicate of a keyed request answered from its record ([`idempotency`]), then attempts on
//! the service's targets until one answers ([`attempt`], under [`retry`]'s limits), each sent
//! as [`outgoing`] builds it.

pub mod attempt;
pub mod idempotency;
pub mod outgoing;
pub mod retry;

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_auth::Principal;
use rampart_events::EventKind;
use rampart_net::{Body, ConnInfo};

use self::attempt::{Attempts, Finished};
use self::outgoing::Outgoing;
use crate::federation::outbound::PeerOutgoing;
use crate::federation::{Federation, PeerGateways};
use crate::upstream::Upstreams;
use crate::{State, reply};
use rampart_net::body::{self, BodyError};

/// Whether a method may be repeated without changing the outcome (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Sends the request to a target of `service` with `rest` (the path after the service): a
/// local node when one is live, else a peer network that exports it to us. `deadline`, when
/// the caller's own is shorter than ours (a peer's request carries what is left of it).
pub async fn forward(
    state: &State,
    req: Request<Incoming>,
    conn: &ConnInfo,
    (service, rest): (&str, &str),
    principal: &Principal,
    deadline: Option<Duration>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let c = &state.config;
    let limits = state.admission.body();
    let waits = body::waits_for_continue(parts.version, &parts.headers);
    let mut body = body;
    let body = match body::read_request(&mut body, limits.max_bytes, limits.idle, waits).await {
        Ok(b) => b,
        Err(e) => return body_refused(state, e, conn, principal, service),
    };
    let Ok(key) = idempotency::key(&parts.headers) else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", idempotency::BadKey::REASON);
    };
    let record = key.map(|k| idempotency::record_key(&principal.name(), service, k));
    if let Some(r) = &record
        && let Some(resp) = idempotency::replay(state.store.as_ref(), r).await
    {
        return resp;
    }
    let outgoing = Outgoing { parts: &parts, body, client: conn.remote, service, rest, principal };
    // A service that says it may take longer (a program's timeout, and a second for its
    // answer to come back) is waited for that long, within a deadline at least as long.
    let try_timeout = Duration::from_millis(c.try_timeout_ms)
        .max(state.nodes.takes(service).map_or(Duration::ZERO, |t| t + Duration::from_secs(1)));
    let deadline =
        Duration::from_millis(c.deadline_ms).max(try_timeout).min(deadline.unwrap_or(Duration::MAX));
    let retry_limits = retry::RetryLimits { max_attempts: c.max_attempts, try_timeout, deadline };
    let replay_safe = idempotent(&parts.method) || key.is_some();
    let local = Attempts {
        upstreams: state.nodes.as_ref(),
        transport: &state.client,
        events: state,
        budget: &state.budget,
        limits: retry_limits,
    };
    let finished = match route(state, service, principal) {
        Route::Edge(edge, client) => {
            let attempts = Attempts { upstreams: edge, transport: client, ..local };
            attempts.run(service, replay_safe, &crate::routes::edge::EdgeOutgoing(&outgoing)).await
        }
        Route::Peer(federation, subject) => {
            let call = PeerOutgoing {
                call: &outgoing,
                subject,
                federation,
                deadline: tokio::time::Instant::now() + deadline,
            };
            let events = PeerGateways(state);
            let attempts =
                Attempts { upstreams: federation, transport: federation, events: &events, ..local };
            attempts.run(service, replay_safe, &call).await
        }
        Route::PeerDown => {
            let why =
                format!("no live replica of {service:?} here, and every peer network exporting it is down");
            state.event(EventKind::PeerUnavailable, conn, Some(principal.name()), Some(service), &why);
            return reply::unavailable(&why);
        }
        Route::Local => local.run(service, replay_safe, &outgoing).await,
    };
    match finished {
        Finished::Answered(resp, n) => match record {
            Some(r) => {
                idempotency::keep(state.store.as_ref(), &r, c.idempotency_window_secs, resp, (n, limits.idle))
                    .await
            }
            None => outgoing::finish(resp, n),
        },
        Finished::Reply(resp) => resp,
    }
}

/// Where a request goes.
enum Route<'a> {
    /// To the app of an edge route, in plain HTTP on loopback.
    Edge(&'a crate::routes::edge::EdgeRoute, &'a rampart_net::client::HttpClient),
    /// To a local replica (or the local "no live replica" answer).
    Local,
    /// To a peer network that exports the service, vouching for the caller as this.
    Peer(&'a Federation, String),
    /// Only peers could serve it, and none is up.
    PeerDown,
}

/// Where a request for `service` goes: an edge route's app when it has one; else local replicas
/// first, unless the service is one of `prefer_peers`; a peer only when one that exports it is
/// up and the caller is ours (a caller a peer vouched for is never passed on to another).
fn route<'a>(state: &'a State, service: &str, principal: &Principal) -> Route<'a> {
    if let Some((edge, client)) = state.routes.edge(service) {
        return Route::Edge(edge, client);
    }
    let Some(federation) = state.federation.as_deref().filter(|f| f.imports(service)) else {
        return Route::Local;
    };
    let local_live = !state.nodes.targets(service).is_empty();
    let peer_live = !federation.targets(service).is_empty();
    let prefer_peer = state.config.prefer_peers.iter().any(|s| s == service);
    match (local_live, peer_live) {
        (true, true) if !prefer_peer => Route::Local,
        (true, false) => Route::Local,
        (_, true) => principal.vouchable().map_or(Route::Local, |subject| Route::Peer(federation, subject)),
        (false, false) if principal.vouchable().is_none() => Route::Local,
        (false, false) => Route::PeerDown,
    }
}

/// The refusal of a body that could not be read, and its event.
fn body_refused(
    state: &State,
    e: BodyError,
    conn: &ConnInfo,
    principal: &Principal,
    service: &str,
) -> Response<Body> {
    let (kind, status, why) = match e {
        BodyError::TooLarge => (
            EventKind::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are limited to {} bytes", state.admission.body().max_bytes),
        ),
        BodyError::Idle => {
            (EventKind::SlowClient, StatusCode::REQUEST_TIMEOUT, "the request body stalled".to_owned())
        }
        BodyError::Malformed => (
            EventKind::MalformedRequest,
            StatusCode::BAD_REQUEST,
            "the request body's framing does not parse (a bad chunk)".to_owned(),
        ),
        BodyError::Broken => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            );
        }
    };
    state.event(kind.clone(), conn, Some(principal.name()), Some(service), &why);
    reply::error(status, kind.as_str(), &why)
}

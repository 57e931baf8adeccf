//! Forwarding an admitted request to its service: the body read under limits ([`body`]), a
//! duplicate of a keyed request answered from its record ([`idempotency`]), then attempts on
//! the service's targets until one answers ([`attempt`], under [`retry`]'s limits), each sent
//! as [`outgoing`] builds it.

pub mod attempt;
pub mod body;
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
use self::body::BodyError;
use self::outgoing::Outgoing;
use crate::federation::Federation;
use crate::federation::outbound::PeerOutgoing;
use crate::upstream::Upstreams;
use crate::{State, reply};

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
    let body = match body::read(body, limits.max_bytes, limits.idle).await {
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
    let deadline = Duration::from_millis(c.deadline_ms).min(deadline.unwrap_or(Duration::MAX));
    let retry_limits = retry::RetryLimits {
        max_attempts: c.max_attempts,
        try_timeout: Duration::from_millis(c.try_timeout_ms),
        deadline,
    };
    let replay_safe = idempotent(&parts.method) || key.is_some();
    let local = Attempts {
        upstreams: state.nodes.as_ref(),
        transport: &state.client,
        events: state,
        budget: &state.budget,
        limits: retry_limits,
    };
    let finished = match to_peer(state, service, principal) {
        Some((federation, subject)) => {
            let call = PeerOutgoing {
                call: &outgoing,
                subject,
                federation,
                deadline: tokio::time::Instant::now() + deadline,
            };
            let attempts = Attempts { upstreams: federation, transport: federation, ..local };
            attempts.run(service, replay_safe, &call).await
        }
        None => local.run(service, replay_safe, &outgoing).await,
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

/// The federation and the caller to vouch for, when `service` goes to a peer: no local replica
/// is live, a peer exports it to us, and the caller is ours (a caller a peer vouched for is
/// never passed on to another).
fn to_peer<'a>(state: &'a State, service: &str, principal: &Principal) -> Option<(&'a Federation, String)> {
    let federation = state.federation.as_deref()?;
    if !state.nodes.targets(service).is_empty() || !federation.imports(service) {
        return None;
    }
    Some((federation, principal.vouchable()?))
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

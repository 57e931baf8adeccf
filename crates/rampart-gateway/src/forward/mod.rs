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
use crate::{State, reply};

/// Whether a method may be repeated without changing the outcome (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Sends the request to a target of `service` with `rest` (the path after the service).
pub async fn forward(
    state: &State,
    req: Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
    rest: &str,
    principal: &Principal,
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
    let attempts = Attempts {
        upstreams: state.nodes.as_ref(),
        transport: &state.client,
        events: state,
        budget: &state.budget,
        limits: retry::RetryLimits {
            max_attempts: c.max_attempts,
            try_timeout: Duration::from_millis(c.try_timeout_ms),
            deadline: Duration::from_millis(c.deadline_ms),
        },
    };
    let replay_safe = idempotent(&parts.method) || key.is_some();
    match attempts.run(service, replay_safe, &outgoing).await {
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

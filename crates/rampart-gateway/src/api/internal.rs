//! The internal API nodes call: registration, heartbeats, deregistration, event reports and
//! envelope claims (`crate::envelopes`).

use std::net::SocketAddr;

use http::{Response, StatusCode};
use rampart_events::{EventKind, NewEvent};
use rampart_net::Body;
use rampart_net::contract::internal::{Endpoint, HeartbeatAnswer, Registered, Registration};

use super::Caller;
use crate::{State, reply};

/// The kinds of event a node may report: what it refused, its jobs, its programs that failed or were
/// not taken, and its certificate's renewal failing where no gateway could say so.
/// Nothing else — a node must not be able to ban an address network-wide, or speak for the
/// gateway.
pub(super) const NODE_REPORTS: [EventKind; 12] = [
    EventKind::NodeRefusedCaller,
    EventKind::MisdirectedRequest,
    EventKind::EnvelopeRefused,
    EventKind::EnvelopeReplayed,
    EventKind::ProgramFailed,
    EventKind::ProgramRefused,
    EventKind::CertificateRenewalFailed,
    EventKind::JobSubmitted,
    EventKind::JobTaskReclaimed,
    EventKind::JobDone,
    EventKind::JobFailed,
    EventKind::JobRefused,
];

/// An event a node reports (a caller it refused).
pub(super) async fn node_reported(caller: &Caller<'_>, node: &str, body: &[u8]) -> Response<Body> {
    let Ok(mut ev) = serde_json::from_slice::<NewEvent>(body) else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not an event");
    };
    if !NODE_REPORTS.contains(&ev.kind) {
        let why = format!(
            "a node may not report {:?} events",
            ev.kind.as_str().chars().take(64).collect::<String>()
        );
        return caller.refuse(StatusCode::FORBIDDEN, EventKind::InternalForbidden, &why);
    }
    ev.node = Some(node.to_owned());
    caller.state.events.record(ev.bounded());
    reply::json(StatusCode::OK, &serde_json::json!({"result": "ok"}))
}

/// A node's call of the internal API.
pub(super) async fn internal(
    caller: &Caller<'_>,
    endpoint: Endpoint,
    node: &str,
    body: &[u8],
) -> Response<Body> {
    let state = caller.state;
    match endpoint {
        Endpoint::Register => register(caller, node, body).await,
        Endpoint::Heartbeat => heartbeat(state, node).await,
        Endpoint::Deregister => deregister(state, node).await,
        Endpoint::Events => node_reported(caller, node, body).await,
        Endpoint::Envelopes => crate::envelopes::claim(state, node, body).await,
        Endpoint::Renew => renew(caller, node, body).await,
        Endpoint::Admit => {
            let asker =
                crate::routes::admit::Asker { node, principal: caller.principal, source: caller.source };
            crate::routes::admit::admit(state, &asker, body).await
        }
    }
}

/// A node's certificate renewed for the key of its CSR (see `crate::certs`).
async fn renew(caller: &Caller<'_>, node: &str, csr: &[u8]) -> Response<Body> {
    use crate::certs::RenewalError;
    let state = caller.state;
    let signed = match &state.certificates {
        Some(certs) => crate::certs::sign_renewal(state, certs, caller.certificate, csr).await,
        None => Err(RenewalError::NoCa),
    };
    match signed {
        Ok((pem, not_after)) => {
            let name = format!("node/{node}");
            state.metrics.expires(&name, not_after.unix_timestamp());
            let why = format!("{name} renewed its certificate (valid until {not_after})");
            caller.record(EventKind::CertificateRenewed, &why);
            let mut answer = Response::new(rampart_net::full(pem));
            answer.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(rampart_net::contract::media::PEM_CERTIFICATES),
            );
            answer
        }
        Err(e @ (RenewalError::NoCa | RenewalError::Failed(_) | RenewalError::Interrupted)) => {
            let why = e.to_string();
            caller.record(EventKind::CertificateRenewalFailed, &why);
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "renewal_failed", &why)
        }
        Err(e) => caller.refuse(StatusCode::FORBIDDEN, EventKind::CertificateRenewalRefused, &e.to_string()),
    }
}

pub(super) async fn register(caller: &Caller<'_>, node: &str, body: &[u8]) -> Response<Body> {
    let state = caller.state;
    let Ok(reg) = serde_json::from_slice::<Registration>(body) else {
        return caller.refuse(
            StatusCode::BAD_REQUEST,
            EventKind::BadRegistration,
            "expected {\"addr\": \"ip:port\", \"services\": [...]}",
        );
    };
    // No service is allowed: a node whose services folder is empty yet (it registers again
    // when programs come).
    if reg.services.len() > 1024 || reg.services.iter().any(|s| rampart_auth::ServiceName::parse(s).is_err())
    {
        return caller.refuse(
            StatusCode::BAD_REQUEST,
            EventKind::BadRegistration,
            "services must be valid service names (at most 1024)",
        );
    }
    // A node listening on every address (0.0.0.0:7001 in a container) is reached at the
    // address it registered from.
    let reached = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            SocketAddr::new(caller.source.client.ip(), addr.port())
        } else {
            addr
        }
    };
    let (addr, public) = (reached(reg.addr), reg.public.map(reached));
    let passthrough = state.routes.passthrough_of_services(&reg.services);
    match state.join(node, (addr, public), (reg.services, reg.timeouts_ms)).await {
        Ok(lease) => {
            let c = &state.config;
            let answer = Registered {
                lease: lease.0,
                lease_ttl_ms: c.lease_ttl_ms,
                heartbeat_ms: c.heartbeat_ms,
                passthrough,
            };
            reply::json(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default())
        }
        Err(e) => reply::unavailable(&format!("registry: {e}")),
    }
}

/// Renews the node's lease: 404 when it has lapsed (register again), 503 when the registry
/// cannot be reached (keep serving, try again).
pub(super) async fn heartbeat(state: &State, node: &str) -> Response<Body> {
    match state.renew(node).await {
        Ok(Some(ttl)) => {
            let answer = HeartbeatAnswer { ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX) };
            reply::json(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default())
        }
        Ok(None) => reply::error(StatusCode::NOT_FOUND, "not_registered", "lease expired: register again"),
        Err(e) => reply::unavailable(&format!("registry: {e}")),
    }
}

/// The node leaves the pool and drains.
pub(super) async fn deregister(state: &State, node: &str) -> Response<Body> {
    state.leave(node).await;
    reply::json(StatusCode::OK, &serde_json::json!({"result": "ok"}))
}

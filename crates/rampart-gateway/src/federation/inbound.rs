//! A request a peer network's gateway forwards to us. Its connection's certificate was
//! verified against that network's bundle alone (the front door's per-domain trust); here its
//! assertion of the caller is checked, the caller becomes `peer:<domain>/<principal>`, and the
//! service must be one we export to that peer and host. Then **our** policy decides, as for
//! any caller. Every refusal is an event on this side.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_auth::Principal;
use rampart_events::EventKind;
use rampart_federation::assertion::{Received, Refusal};
use rampart_net::contract::header;
use rampart_net::{Body, ConnInfo};
use rampart_pki::TrustDomain;

use super::Federation;
use crate::upstream::Upstreams;
use crate::{State, reply};

/// The caller a peer's gateway vouches for, and what is left of its deadline; or the refusal.
// The refusal is the answer itself, as in `request::admit`: made once, on the refused path.
#[allow(clippy::result_large_err)]
pub(crate) fn admit(
    state: &State,
    federation: &Federation,
    req: &Request<Incoming>,
    conn: &ConnInfo,
    (peer, gateway): (&TrustDomain, &Principal),
    service: &str,
) -> Result<(Principal, Option<Duration>), Response<Body>> {
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let received = match (&conn.certificate, gateway.credential()) {
        (Some(cert), rampart_auth::Credential::Certificate(client)) => {
            Received { client, client_cert: cert.as_ref(), method: req.method().as_str(), path_and_query }
        }
        _ => return Err(refuse(state, conn, gateway, service, &Refusal::Missing)),
    };
    let token = header::text(req.headers(), &header::ASSERTION).ok_or(Refusal::Missing);
    let vouched = token
        .and_then(|t| federation.verifier.verify(t, received, crate::now_secs()))
        .map_err(|r| refuse(state, conn, gateway, service, &r))?;
    let caller = Principal::vouched(gateway, &state.domain, &vouched.subject).map_err(|e| {
        let why = format!("{gateway}: {e}");
        state.event(EventKind::AssertionRefused, conn, Some(gateway.name()), Some(service), &why);
        reply::error(StatusCode::UNAUTHORIZED, "assertion_refused", &e.to_string())
    })?;
    if let Err(refusal) = state.admission.principal(&caller.name()) {
        return Err(state.refused(refusal, conn, Some(caller.name()), Some(service)));
    }
    let exported = federation.exports_to(peer, service);
    if !exported || !Upstreams::knows(state.nodes.as_ref(), service) {
        let why = format!("{caller} asked for {service:?}, which this network does not export to {peer}");
        state.event(EventKind::PeerNotExported, conn, Some(caller.name()), Some(service), &why);
        return Err(reply::error(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("no service named {service:?} is exported to {peer}"),
        ));
    }
    let method = req.method().as_str();
    if let Err(denied) = state.policy.load().authorize(&caller, service, method) {
        state.event(EventKind::PolicyDenied, conn, Some(caller.name()), Some(service), &denied.reason);
        return Err(reply::error(StatusCode::FORBIDDEN, "forbidden", &denied.reason));
    }
    Ok((caller, vouched.deadline))
}

/// The event and answer of a refused assertion: 508 for a loop, 503 while the replay guard is
/// full, else 401.
fn refuse(
    state: &State,
    conn: &ConnInfo,
    gateway: &Principal,
    service: &str,
    refusal: &Refusal,
) -> Response<Body> {
    let (kind, status, code) = match refusal {
        Refusal::Replayed => (EventKind::AssertionReplayed, StatusCode::UNAUTHORIZED, "assertion_refused"),
        r if r.is_loop() => (EventKind::FederationLoop, StatusCode::LOOP_DETECTED, "loop_detected"),
        Refusal::GuardFull => (EventKind::AssertionRefused, StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (EventKind::AssertionRefused, StatusCode::UNAUTHORIZED, "assertion_refused"),
    };
    let why = format!("from {gateway}: {refusal}");
    state.event(kind, conn, Some(gateway.name()), Some(service), &why);
    reply::error(status, code, &refusal.to_string())
}

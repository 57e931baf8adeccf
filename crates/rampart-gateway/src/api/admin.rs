//! The admin API: status, metrics, bans; and the CA bundle, which is public.

use http::{Response, StatusCode};
use rampart_events::{EventKind, NewEvent};
use rampart_net::Body;

use crate::{State, reply};

pub(super) fn metrics_token_ok(state: &State, headers: &http::HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(expected) = &state.config.metrics_token else { return false };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

pub(super) fn metrics(state: &State) -> Response<Body> {
    let mut r = Response::new(rampart_net::full(state.metrics.render(&state.events.counts())));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// Lifts the ban of an address (`ADDR`, or `ADDR/PREFIX` as the ban list shows an IPv6
/// network: the ban of the address's network is lifted either way).
pub(super) fn lift_ban(state: &State, source: &str) -> Response<Body> {
    let address = source.split_once('/').map_or(source, |(a, _)| a);
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not an IP address");
    };
    if state.admission.bans().lift(ip) {
        // An event, so that the other gateways of the network lift it too.
        state.events.record(NewEvent::new(
            EventKind::BanLifted,
            ip.to_string(),
            "lifted by an administrator",
        ));
        reply::json(StatusCode::OK, &serde_json::json!({"result": "ok", "lifted": source}))
    } else {
        reply::error(StatusCode::NOT_FOUND, "not_found", "no ban on that address")
    }
}

/// The newest jobs of the `jobs` service, read from the registry (for the dashboard).
pub(super) async fn jobs(state: &State) -> Response<Body> {
    let jobs = rampart_jobs::Jobs::new(state.store.clone(), rampart_jobs::Limits::default());
    match jobs.list(50).await {
        Ok(list) => reply::json(StatusCode::OK, &serde_json::json!({"jobs": list})),
        Err(e) => reply::unavailable(&format!("registry: {e}")),
    }
}

pub(super) fn status(state: &State) -> Response<Body> {
    let nodes: Vec<_> = state
        .nodes
        .list()
        .iter()
        .map(|n| serde_json::json!({"name": n.name, "addr": n.addr.to_string(), "services": n.services}))
        .collect();
    reply::json(StatusCode::OK, &serde_json::json!({"domain": state.domain.as_str(), "nodes": nodes}))
}

/// `GET /_rampart/bundle`: this network's CA bundle as PEM (public: it holds no secret, and a
/// peer's operator checks it against the fingerprint they were given).
pub(super) fn bundle(state: &State) -> Response<Body> {
    let Some(bundle) = state.bundle.current() else {
        return reply::error(StatusCode::NOT_FOUND, "not_found", "this gateway serves no CA bundle");
    };
    let mut r = Response::new(rampart_net::full(bundle.to_pem()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(rampart_net::contract::media::PEM_CERTIFICATES),
    );
    r
}

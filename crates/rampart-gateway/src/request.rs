//! The request path, in the order it runs: [`handle`] (health answer, the client behind
//! trusted proxies), `screen` (admission before anything is routed, the wire rules), then
//! `_rampart/…` to the API, or `route` → `admit` (who, how often, known service, policy) →
//! [`crate::forward`].

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_events::EventKind;
use rampart_net::contract::path;
use rampart_net::{Body, ConnInfo};

use crate::{State, api, authn, dashboard, federation, forward, forwarded, reply, upstream};

/// `/<service>/<rest>` → (service, rest); `rest` keeps its leading `/`. Public for the fuzz
/// targets (`fuzz/`), not an API.
#[doc(hidden)]
pub fn split(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    }
}

/// Answers one request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>, conn: Arc<ConnInfo>) -> Response<Body> {
    // Liveness and readiness for orchestrators and load balancers (Kubernetes probes): no
    // credentials, no admission (a ban on the prober's address must not restart the
    // gateway), and nothing said but that this gateway serves.
    if req.method() == http::Method::GET && req.uri().path() == path::HEALTH {
        return reply::json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    }
    let started = std::time::Instant::now();
    // Behind a trusted HTTP proxy, the client it names (one address for admission, bans,
    // events and the node).
    let conn = match state.config.trusted_proxies.as_slice() {
        [] => conn,
        trusted => match forwarded::client_of(conn.remote, req.headers(), trusted) {
            client if client == conn.remote => conn,
            client => Arc::new(ConnInfo { remote: client, ..ConnInfo::clone(&conn) }),
        },
    };
    let (service, rest) = match screen(&state, &req, &conn).await {
        Ok(routed) => routed,
        Err(refused) => return reply::after_body(req, refused).await,
    };
    if service == path::API_SEGMENT {
        return api::handle(state.clone(), req, conn, &rest).await;
    }
    let resp = route(&state, req, &conn, &service, &rest).await;
    state.metrics.request(&service, resp.status().as_u16(), started.elapsed());
    resp
}

/// Admission and the wire rules, before anything is routed: the service and the normalised
/// path after it, or the refusal to send.
async fn screen(
    state: &Arc<State>,
    req: &Request<Incoming>,
    conn: &ConnInfo,
) -> Result<(String, String), Response<Body>> {
    // A ban must not lock the network's own out: an admin or node certificate verified in
    // the handshake, a valid admin token (looked at only when the source is banned), and the
    // dashboard's page (its API calls still need an admin credential) pass it.
    let member_cert = conn
        .principal
        .as_ref()
        .is_some_and(|p| matches!(p.role(), rampart_pki::Role::Admin | rampart_pki::Role::Node));
    let past_ban = member_cert
        || (req.method() == http::Method::GET && dashboard::is_page(req.uri().path()))
        || (state.admission.bans().banned(conn.remote.ip()).is_some()
            && req.headers().contains_key(http::header::AUTHORIZATION)
            && authn::authenticate(state, req.headers(), conn, None).await.is_ok_and(|p| p.is_admin()));
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if let Err(refusal) = state.admission.screen(conn.remote.ip(), uri_len, req.headers(), past_ban) {
        return Err(state.refused(refusal, conn, None, None));
    }
    if let Err(e) = rampart_net::wire::check_method(req.method()) {
        state.event(EventKind::BadMethod, conn, None, None, &e.to_string());
        return Err(reply::error(StatusCode::BAD_REQUEST, "bad_method", &e.to_string()));
    }
    let (service, rest) = split(req.uri().path());
    // The path after the service, normalised: no request can leave the service it is routed
    // to, and what the node receives is what policy judged.
    let rest = match rampart_net::wire::normalize_path(if rest.is_empty() { "/" } else { rest }) {
        Ok(r) => r.into_owned(),
        Err(e) => {
            let why = format!("{e} ({})", e.name());
            state.event(EventKind::BadPath, conn, None, Some(service), &why);
            return Err(reply::error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string()));
        }
    };
    Ok((service.to_owned(), rest))
}

async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
    rest: &str,
) -> Response<Body> {
    // A passthrough route's service is reached by its name, with TLS ending at its node: not
    // through the gateway's own TLS (a client following HTTP/2 connection coalescing could
    // otherwise send it here).
    if let Some(names) = state.routes.passthrough_names(service) {
        let why = format!("{service:?} is a passthrough route: reach it at https://{}/", names[0]);
        state.event(EventKind::MisdirectedRequest, conn, None, Some(service), &why);
        return reply::after_body(req, reply::error(StatusCode::MISDIRECTED_REQUEST, "misdirected", &why))
            .await;
    }
    // A peer network's gateway, verified against that network's bundle: its assertion names
    // the caller.
    let peer = conn.principal.as_ref().and_then(|p| Some((federation::catalog::peer_gateway(state, p)?, p)));
    let admitted = match (&state.federation, peer) {
        (Some(federation), Some((domain, gateway))) => {
            federation::inbound::admit(state, federation, &req, conn, (&domain, gateway), service)
        }
        _ => admit(state, &req, conn, service).await.map(|p| (p, None)),
    };
    match admitted {
        Ok((principal, deadline)) => {
            forward::forward(state, req, conn, (service, rest), &principal, deadline).await
        }
        Err(refused) => reply::after_body(req, refused).await,
    }
}

/// Who is calling, and whether they may call `service` now: the principal, or the refusal.
async fn admit(
    state: &State,
    req: &Request<Incoming>,
    conn: &ConnInfo,
    service: &str,
) -> Result<rampart_auth::Principal, Response<Body>> {
    admit_call(state, (req.method(), req.headers()), conn, service).await
}

/// [`admit`] for a request known by its method and headers (a passthrough route's, which its
/// node asks about).
pub(crate) async fn admit_call(
    state: &State,
    (method, headers): (&http::Method, &http::HeaderMap),
    conn: &ConnInfo,
    service: &str,
) -> Result<rampart_auth::Principal, Response<Body>> {
    let principal = match authn::authenticate(state, headers, conn, Some(service)).await {
        Ok(p) => p,
        Err(failure) => {
            let answer = failure.answer();
            state.auth_failed(failure.kind, conn, Some(service), &failure.reason);
            return Err(answer);
        }
    };
    if let Err(refusal) = state.admission.principal(&principal.name()) {
        return Err(state.refused(refusal, conn, Some(principal.name()), Some(service)));
    }
    let known = !service.is_empty()
        && (state.routes.knows(service)
            || state.routes.passthrough_names(service).is_some()
            || upstream::Upstreams::knows(state.nodes.as_ref(), service)
            || state.federation.as_ref().is_some_and(|f| f.imports(service)));
    if !known {
        return Err(reply::error(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("no service named {service:?} in this network"),
        ));
    }
    if let Err(denied) = state.policy.load().authorize(&principal, service, method.as_str()) {
        state.event(EventKind::PolicyDenied, conn, Some(principal.name()), Some(service), &denied.reason);
        return Err(reply::error(StatusCode::FORBIDDEN, "forbidden", &denied.reason));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths_split_into_service_and_rest() {
        assert_eq!(split("/data"), ("data", ""));
        assert_eq!(split("/data/"), ("data", "/"));
        assert_eq!(split("/data/x/y"), ("data", "/x/y"));
        assert_eq!(split("/"), ("", ""));
        assert_eq!(split("/_rampart/status"), ("_rampart", "/status"));
    }
}

//! `/_rampart/…`: the gateway's own API. This file routes and checks who may call what
//! (`Caller`); `admin`, `internal`, `registry` and `token` answer.
//!
//! | path | who | what |
//! |---|---|---|
//! | `GET /_rampart/health` | anyone (answered before admission, in `request.rs`) | alive and serving |
//! | `POST /_rampart/internal/register` | a node (certificate) | join the pool under a lease |
//! | `POST /_rampart/internal/heartbeat` | a node | renew its lease |
//! | `POST /_rampart/internal/deregister` | a node | leave the pool (drain) |
//! | `POST /_rampart/internal/envelopes` | a node | claim an envelope network-wide (replay guard) |
//! | `POST /_rampart/internal/renew` | a node | a CSR → its current certificate renewed for the CSR's key |
//! | `POST /_rampart/store` | an admin; a node | the registry, under the caller's ACL |
//! | `GET /_rampart/status` | an admin | nodes and services |
//! | `POST /_rampart/token` | a user, by basic auth | a token for a password |
//! | `GET /_rampart/bundle` | anyone | this network's CA bundle (public; a peer pins its fingerprint) |
//! | `GET /_rampart/federation/catalog` | a peer network's gateway (certificate) | what we export to it |
//! | `GET /_rampart/federation/peers` | an admin | each peer now: up, catalog age, imports, exports |
//! | `GET /_rampart/jobs` | an admin | the 50 newest jobs of the `jobs` service: state, progress, nodes |

use std::future::Future;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_auth::{Credential, Principal};
use rampart_net::contract::internal::Endpoint;
use rampart_net::{Body, ConnInfo};
use rampart_pki::Role;

use crate::{State, authn, reply};
use rampart_events::EventKind;

mod admin;
mod internal;
mod registry;
mod token;

/// Largest API request body (the store API carries values up to 1 MiB, in base64).
const MAX_API_BODY: usize = 2 << 20;

/// Answers a request under `/_rampart`; `rest` is the path after it. Every answer carries
/// the admin security headers.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    rest: &str,
) -> Response<Body> {
    let mut resp = dispatch(state, req, conn, rest).await;
    secure(resp.headers_mut());
    resp
}

/// Headers that keep the admin API and dashboard out of frames, sniffing and referrers.
fn secure(h: &mut http::HeaderMap) {
    use http::header::{self, HeaderValue};
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
               frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn dispatch(
    state: Arc<State>,
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
    rest: &str,
) -> Response<Body> {
    let method = req.method().clone();
    if (method.clone(), rest) == (Method::POST, "/token") {
        return token::token_for_password(&state, req, &conn).await;
    }
    if method == Method::GET
        && let Some(asset) = crate::dashboard::asset(rest)
    {
        return asset;
    }
    if (method.clone(), rest) == (Method::GET, "/bundle") {
        return admin::bundle(&state);
    }
    if (method.clone(), rest) == (Method::GET, "/metrics") && admin::metrics_token_ok(&state, req.headers()) {
        return admin::metrics(&state);
    }
    let principal = match authn::authenticate(&state, req.headers(), &conn, None).await {
        Ok(p) => p,
        Err(failure) => {
            let answer = failure.answer();
            state.auth_failed(failure.kind, &*conn, None, &failure.reason);
            return reply::after_body(req, answer).await;
        }
    };
    let admin_only =
        matches!(rest, "/status" | "/metrics" | "/events" | "/bans" | "/federation/peers" | "/jobs")
            || rest.starts_with("/bans/");
    if admin_only && !principal.is_admin() {
        let why = format!("{principal} is not an administrator");
        state.event(EventKind::AdminForbidden, &*conn, Some(principal.name()), None, &why);
        let refused = reply::error(StatusCode::FORBIDDEN, "forbidden", "the admin API is for administrators");
        return reply::after_body(req, refused).await;
    }
    if (method.clone(), rest) == (Method::GET, "/events") {
        return crate::stream::events(&state, req.headers(), req.uri().query());
    }
    if (method.clone(), rest) == (Method::GET, "/federation/catalog") {
        let peer = crate::federation::catalog::peer_gateway(&state, &principal);
        return match (&state.federation, peer) {
            (Some(federation), Some(peer)) => crate::federation::catalog::serve(&state, federation, &peer),
            _ => {
                let why = format!("{principal} is not a peer network's gateway");
                state.event(EventKind::InternalForbidden, &*conn, Some(principal.name()), None, &why);
                reply::error(StatusCode::FORBIDDEN, "forbidden", "the catalog is for peer networks' gateways")
            }
        };
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let caller = Caller {
        state: &state,
        principal: &principal,
        source: conn.as_ref().into(),
        path: rest,
        certificate: conn.certificate.as_ref().map(|c| c.as_ref()),
    };
    match (method, rest) {
        (Method::POST, "/store") => registry::store_api(&caller, &body).await,
        (Method::POST, path) if let Some(endpoint) = Endpoint::at(path) => {
            caller.as_node(|n| internal::internal(&caller, endpoint, n, &body)).await
        }
        (Method::GET, "/status") => admin::status(&state),
        (Method::GET, "/jobs") => admin::jobs(&state).await,
        (Method::GET, "/federation/peers") => match &state.federation {
            Some(federation) => crate::federation::catalog::peers(federation),
            None => reply::json(StatusCode::OK, &serde_json::json!({"peers": []})),
        },
        (Method::GET, "/metrics") => admin::metrics(&state),
        (Method::GET, "/bans") => {
            reply::json(StatusCode::OK, &serde_json::json!({"bans": state.admission.bans().list()}))
        }
        (Method::DELETE, path) if path.starts_with("/bans/") => {
            admin::lift_ban(&state, &path["/bans/".len()..])
        }
        _ => reply::error(StatusCode::NOT_FOUND, "not_found", "no such gateway API"),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, Response<Body>> {
    match http_body_util::Limited::new(req.into_body(), MAX_API_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => {
            Err(reply::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "API bodies are limited to 2 MiB"))
        }
    }
}

/// Who is calling an internal API, for its checks and for the events of its refusals.
struct Caller<'a> {
    state: &'a State,
    principal: &'a Principal,
    source: rampart_net::Source,
    path: &'a str,
    /// The client certificate of the connection (DER), if any.
    certificate: Option<&'a [u8]>,
}

impl Caller<'_> {
    /// A refusal of the registry or an internal API: always a security event naming the
    /// principal, the path and why.
    pub(super) fn refuse(&self, status: StatusCode, kind: EventKind, reason: &str) -> Response<Body> {
        self.record(kind, reason);
        reply::error(
            status,
            if status == StatusCode::FORBIDDEN { "forbidden" } else { "bad_request" },
            reason,
        )
    }

    /// The event of a refusal.
    pub(super) fn record(&self, kind: EventKind, reason: &str) {
        let why = format!("{} /_rampart{}: {reason}", self.principal, self.path);
        self.state.event(kind, self.source, Some(self.principal.name()), None, &why);
    }

    /// Runs `f` with the node name of a node certificate; everything else is refused.
    async fn as_node<'a, F, Fut>(&'a self, f: F) -> Response<Body>
    where
        F: FnOnce(&'a str) -> Fut,
        Fut: Future<Output = Response<Body>>,
    {
        match self.principal.credential() {
            Credential::Certificate(id) if id.role == Role::Node => f(id.name.as_str()).await,
            _ => self.refuse(
                StatusCode::FORBIDDEN,
                EventKind::InternalForbidden,
                "only node certificates may use this API",
            ),
        }
    }
}

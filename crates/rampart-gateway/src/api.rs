//! `/_rampart/…`: the gateway's own API.
//!
//! | path | who | what |
//! |---|---|---|
//! | `GET /_rampart/health` | anyone (answered before admission, in `request.rs`) | alive and serving |
//! | `POST /_rampart/internal/register` | a node (certificate) | join the pool under a lease |
//! | `POST /_rampart/internal/heartbeat` | a node | renew its lease |
//! | `POST /_rampart/internal/deregister` | a node | leave the pool (drain) |
//! | `POST /_rampart/internal/envelopes` | a node | claim an envelope network-wide (replay guard) |
//! | `POST /_rampart/store` | an admin; a node | the registry, under the caller's ACL |
//! | `GET /_rampart/status` | an admin | nodes and services |
//! | `POST /_rampart/token` | a user, by basic auth | a token for a password |

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_auth::{AuthError, Credential, Principal, tokens};
use rampart_net::contract::internal::{Endpoint, HeartbeatAnswer, Registered, Registration};
use rampart_net::contract::store::{self, StoreRequest};
use rampart_net::{Body, ConnInfo};
use rampart_pki::Role;
use rampart_store::{AclStore, Grants, LeaseAccess, LeaseId, Store, StoreError};

use crate::upstream::nodes::{NODES_PREFIX, NodeRecord};
use crate::{State, authn, reply};
use rampart_events::{EventKind, NewEvent};

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
        return token_for_password(&state, req, &conn).await;
    }
    if method == Method::GET
        && let Some(asset) = crate::dashboard::asset(rest)
    {
        return asset;
    }
    if (method.clone(), rest) == (Method::GET, "/metrics") && metrics_token_ok(&state, req.headers()) {
        return metrics(&state);
    }
    let principal = match authn::authenticate(&state, req.headers(), &conn, None).await {
        Ok(p) => p,
        Err(failure) => {
            state.auth_failed(failure.kind, &*conn, None, &failure.reason);
            return reply::after_body(req, reply::unauthenticated(&failure.reason)).await;
        }
    };
    let admin_only =
        matches!(rest, "/status" | "/metrics" | "/events" | "/bans") || rest.starts_with("/bans/");
    if admin_only && !principal.is_admin() {
        let why = format!("{principal} is not an administrator");
        state.event(EventKind::AdminForbidden, &*conn, Some(principal.name()), None, &why);
        let refused = reply::error(StatusCode::FORBIDDEN, "forbidden", "the admin API is for administrators");
        return reply::after_body(req, refused).await;
    }
    if (method.clone(), rest) == (Method::GET, "/events") {
        return crate::stream::events(&state, req.headers(), req.uri().query());
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let caller = Caller { state: &state, principal: &principal, source: conn.as_ref().into(), path: rest };
    match (method, rest) {
        (Method::POST, "/store") => store_api(&caller, &body).await,
        (Method::POST, path) if let Some(endpoint) = Endpoint::at(path) => {
            caller.as_node(|n| internal(&caller, endpoint, n, &body)).await
        }
        (Method::GET, "/status") => status(&state),
        (Method::GET, "/metrics") => metrics(&state),
        (Method::GET, "/bans") => {
            reply::json(StatusCode::OK, &serde_json::json!({"bans": state.bans.list()}))
        }
        (Method::DELETE, path) if path.starts_with("/bans/") => lift_ban(&state, &path["/bans/".len()..]),
        _ => reply::error(StatusCode::NOT_FOUND, "not_found", "no such gateway API"),
    }
}

fn metrics_token_ok(state: &State, headers: &http::HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    let Some(expected) = &state.config.metrics_token else { return false };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn metrics(state: &State) -> Response<Body> {
    let mut r = Response::new(rampart_net::full(state.metrics.render(&state.events.counts())));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// Lifts the ban of an address (`ADDR`, or `ADDR/PREFIX` as the ban list shows an IPv6
/// network: the ban of the address's network is lifted either way).
fn lift_ban(state: &State, source: &str) -> Response<Body> {
    let address = source.split_once('/').map_or(source, |(a, _)| a);
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not an IP address");
    };
    if state.bans.lift(ip) {
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

/// The kinds of event a node may report: what it refused. Nothing else — a node must not be
/// able to ban an address network-wide, or speak for the gateway.
const NODE_REPORTS: [EventKind; 3] =
    [EventKind::NodeRefusedCaller, EventKind::EnvelopeRefused, EventKind::EnvelopeReplayed];

/// An event a node reports (a caller it refused).
async fn node_reported(caller: &Caller<'_>, node: &str, body: &[u8]) -> Response<Body> {
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
    ev.reason.truncate(512);
    ev.source.truncate(128);
    caller.state.events.record(ev);
    reply::json(StatusCode::OK, &serde_json::json!({"result": "ok"}))
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
}

impl Caller<'_> {
    /// A refusal of the registry or an internal API: always a security event naming the
    /// principal, the path and why.
    fn refuse(&self, status: StatusCode, kind: EventKind, reason: &str) -> Response<Body> {
        self.record(kind, reason);
        reply::error(
            status,
            if status == StatusCode::FORBIDDEN { "forbidden" } else { "bad_request" },
            reason,
        )
    }

    /// The event of a refusal.
    fn record(&self, kind: EventKind, reason: &str) {
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

/// A node's call of the internal API.
async fn internal(caller: &Caller<'_>, endpoint: Endpoint, node: &str, body: &[u8]) -> Response<Body> {
    let state = caller.state;
    match endpoint {
        Endpoint::Register => register(caller, node, body).await,
        Endpoint::Heartbeat => heartbeat(state, node).await,
        Endpoint::Deregister => deregister(state, node).await,
        Endpoint::Events => node_reported(caller, node, body).await,
        Endpoint::Envelopes => crate::envelopes::claim(state, node, body).await,
    }
}

async fn register(caller: &Caller<'_>, node: &str, body: &[u8]) -> Response<Body> {
    let state = caller.state;
    let Ok(reg) = serde_json::from_slice::<Registration>(body) else {
        return caller.refuse(
            StatusCode::BAD_REQUEST,
            EventKind::BadRegistration,
            "expected {\"addr\": \"ip:port\", \"services\": [...]}",
        );
    };
    if reg.services.is_empty()
        || reg.services.iter().any(|s| rampart_auth::policy::check_service_name(s).is_err())
    {
        return caller.refuse(
            StatusCode::BAD_REQUEST,
            EventKind::BadRegistration,
            "services must be valid service names",
        );
    }
    // A node listening on every address (0.0.0.0:7001 in a container) is reached at the
    // address it registered from.
    let addr = if reg.addr.ip().is_unspecified() {
        SocketAddr::new(caller.source.client.ip(), reg.addr.port())
    } else {
        reg.addr
    };
    state.stop_draining(node).await; // back (a restart): not leaving any more
    let store = state.store.as_ref();
    let key = format!("{NODES_PREFIX}{node}");
    let old: Option<NodeRecord> =
        store.get(&key).await.ok().flatten().and_then(|kv| serde_json::from_slice(&kv.value).ok());
    let ttl = Duration::from_millis(state.config.lease_ttl_ms);
    let result = async {
        let lease = store.grant_lease(ttl).await?;
        let record = NodeRecord { name: node.to_owned(), addr, services: reg.services, lease: lease.0 };
        store.put(&key, serde_json::to_vec(&record).unwrap_or_default(), Some(lease)).await?;
        if let Some(old) = old.filter(|o| o.lease != lease.0) {
            let _ = store.revoke_lease(LeaseId(old.lease)).await; // holds nothing any more
        }
        Ok::<_, StoreError>(lease)
    }
    .await;
    match result {
        Ok(lease) => {
            tracing::info!("node {node} registered at {addr}");
            let c = &state.config;
            let answer =
                Registered { lease: lease.0, lease_ttl_ms: c.lease_ttl_ms, heartbeat_ms: c.heartbeat_ms };
            reply::json(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default())
        }
        Err(e) => reply::unavailable(&format!("registry: {e}")),
    }
}

async fn node_record(state: &State, node: &str) -> Option<NodeRecord> {
    try_node_record(state, node).await.ok().flatten()
}

async fn try_node_record(state: &State, node: &str) -> Result<Option<NodeRecord>, StoreError> {
    let kv = state.store.get(&format!("{NODES_PREFIX}{node}")).await?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// Renews the node's lease: 404 when it has lapsed (register again), 503 when the registry
/// cannot be reached (keep serving, try again).
async fn heartbeat(state: &State, node: &str) -> Response<Body> {
    let expired = || reply::error(StatusCode::NOT_FOUND, "not_registered", "lease expired: register again");
    let rec = match try_node_record(state, node).await {
        Ok(Some(rec)) => rec,
        Ok(None) => return expired(),
        Err(e) => return reply::unavailable(&format!("registry: {e}")),
    };
    match state.store.keep_alive(LeaseId(rec.lease)).await {
        Ok(ttl) => {
            let answer = HeartbeatAnswer { ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX) };
            reply::json(StatusCode::OK, &serde_json::to_value(answer).unwrap_or_default())
        }
        Err(StoreError::LeaseNotFound(_)) => expired(),
        Err(e) => reply::unavailable(&format!("registry: {e}")),
    }
}

async fn deregister(state: &State, node: &str) -> Response<Body> {
    if let Some(rec) = node_record(state, node).await {
        state.start_draining(node, rec.services.clone());
        state.announce_leaving(node, &rec.services).await;
        let _ = state.store.revoke_lease(LeaseId(rec.lease)).await;
        tracing::info!("node {node} deregistered");
    }
    reply::json(StatusCode::OK, &serde_json::json!({"result": "ok"}))
}

/// The registry through the caller's ACL: admins everything; a node its services' state.
/// Every refusal is an event; a registry that cannot be reached is said to be so (503), never
/// taken for an empty grant.
async fn store_api(caller: &Caller<'_>, body: &[u8]) -> Response<Body> {
    let (state, principal) = (caller.state, caller.principal);
    let grants = if principal.is_admin() {
        Grants::all()
    } else if let Credential::Certificate(id) = principal.credential()
        && id.role == Role::Node
    {
        let name = id.name.as_str();
        let services = match try_node_record(state, name).await {
            Ok(Some(r)) => r.services,
            // Deregistered and draining: its in-flight requests may still finish their work.
            Ok(None) => state.draining_services(name).unwrap_or_default(),
            Err(e) => return store_error(&e),
        };
        let prefixes: Vec<String> = services.iter().map(|s| format!("services/{s}/")).collect();
        Grants { read: prefixes.clone(), write: prefixes, leases: LeaseAccess::None }
    } else {
        return caller.refuse(
            StatusCode::FORBIDDEN,
            EventKind::RegistryForbidden,
            "the registry is for administrators and nodes",
        );
    };
    let Ok(req) = serde_json::from_slice::<StoreRequest>(body) else {
        return caller.refuse(StatusCode::BAD_REQUEST, EventKind::RegistryBadRequest, "not a store request");
    };
    let store = AclStore::new(state.store.clone(), grants);
    match rampart_net::remote_store::execute(&store as &dyn Store, req).await {
        Ok(out) => reply::json(StatusCode::OK, &serde_json::to_value(out).unwrap_or_default()),
        Err(e @ StoreError::Forbidden { .. }) => {
            caller.record(EventKind::RegistryForbidden, &e.to_string());
            store_error(&e)
        }
        Err(e) => store_error(&e),
    }
}

/// The store API's answer for a store error (the node's remote store reads it back as the
/// same typed error).
fn store_error(e: &StoreError) -> Response<Body> {
    let (status, out) = store::error_response(e);
    reply::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        &serde_json::to_value(out).unwrap_or_default(),
    )
}

fn status(state: &State) -> Response<Body> {
    let nodes: Vec<_> = state
        .nodes
        .list()
        .iter()
        .map(|n| serde_json::json!({"name": n.name, "addr": n.addr.to_string(), "services": n.services}))
        .collect();
    reply::json(StatusCode::OK, &serde_json::json!({"domain": state.domain.as_str(), "nodes": nodes}))
}

/// `POST /_rampart/token` with `Authorization: Basic` → a token for the user's password.
async fn token_for_password(state: &State, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
    let creds = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return reply::unauthenticated("send the user name and password with HTTP basic authentication");
    };
    let policy = rampart_auth::TokenPolicy::default();
    match tokens::issue_for_password(
        state.store.as_ref(),
        user,
        password.as_bytes(),
        None,
        &[],
        policy,
        crate::now_secs(),
    )
    .await
    {
        Ok(issued) => reply::json(
            StatusCode::OK,
            &serde_json::json!({"token": issued.token.as_str(), "id": issued.record.id, "expires": issued.record.expires}),
        ),
        Err(AuthError::BadCredentials) => {
            state.auth_failed(
                EventKind::BadPassword,
                conn,
                None,
                &format!("wrong password for user {user:?}"),
            );
            reply::unauthenticated("wrong user name or password")
        }
        Err(e @ AuthError::TokenLimit { .. }) => {
            reply::error(StatusCode::FORBIDDEN, "token_limit", &e.to_string())
        }
        Err(e) => {
            tracing::error!("issuing a token: {e}");
            reply::unavailable("could not issue a token")
        }
    }
}

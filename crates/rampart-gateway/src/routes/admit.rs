//! `POST /_rampart/internal/admit`: a node asks whether the caller of one of its passthrough
//! routes may call it now. The node ended the client's TLS (and verified its certificate);
//! the gateway holds the users, tokens, rates, bans and policy, and runs the very code that
//! admits its own requests ([`crate::request::admit_call`]), recording each refusal as it would
//! its own. The node passes a refusal on as it came (its status and body).

use std::net::SocketAddr;

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use rampart_auth::Principal;
use rampart_events::EventKind;
use rampart_net::contract::internal::{AdmitRequest, Admitted};
use rampart_net::{Body, ConnInfo, Source};

use crate::{State, reply};

/// The largest client certificate a node may pass on (DER): more is not a certificate.
const MAX_CERTIFICATE: usize = 16 << 10;

/// Who asks: a node of this network, by its certificate.
pub(crate) struct Asker<'a> {
    /// The node's name.
    pub node: &'a str,
    /// Its certificate's principal.
    pub principal: &'a Principal,
    /// Where its connection comes from.
    pub source: Source,
}

/// Answers a node's [`AdmitRequest`] (the body): 200 [`Admitted`], or the refusal.
pub(crate) async fn admit(state: &State, asker: &Asker<'_>, body: &[u8]) -> Response<Body> {
    let Ok(req) = serde_json::from_slice::<AdmitRequest>(body) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"service\", \"method\", \"client\", \"authorization\"?, \"certificate\"?}",
        );
    };
    // A node speaks only for the passthrough routes it hosts.
    if state.routes.passthrough_names(&req.service).is_none() || !state.nodes.hosts(asker.node, &req.service)
    {
        let why = format!(
            "node {} asked to admit a caller of {:?}, which is not a passthrough route it hosts",
            asker.node,
            req.service.chars().take(64).collect::<String>()
        );
        state.event(EventKind::InternalForbidden, asker.source, Some(asker.principal.name()), None, &why);
        return reply::error(StatusCode::FORBIDDEN, "forbidden", &why);
    }
    let Ok(method) = http::Method::from_bytes(req.method.as_bytes()) else {
        return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not an HTTP method");
    };
    let mut headers = HeaderMap::new();
    if let Some(value) = &req.authorization {
        match HeaderValue::from_str(value) {
            Ok(v) => drop(headers.insert(http::header::AUTHORIZATION, v)),
            Err(_) => return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not a header value"),
        }
    }
    let principal = match req.certificate.as_deref().map(|c| relayed(state, asker, c)).transpose() {
        Ok(p) => p,
        Err(why) => {
            state.event(
                EventKind::TlsBadIdentity,
                client(&req.client, asker),
                None,
                Some(&req.service),
                &why,
            );
            return reply::unauthenticated(&why);
        }
    };
    // The client, by the address the gateway's PROXY header gave the node; the node as the
    // peer it came through (so the record says "via" the node).
    let conn = ConnInfo {
        remote: req.client,
        peer: asker.source.client,
        principal,
        certificate: None,
        server_name: None,
    };
    // Bans and the per-source rate, as for a request to the gateway itself.
    if let Err(refusal) = state.admission.screen(req.client.ip(), 0, &headers, false) {
        return state.refused(refusal, &conn, None, Some(&req.service));
    }
    match crate::request::admit_call(state, (&method, &headers), &conn, &req.service).await {
        Ok(p) => reply::json(
            StatusCode::OK,
            &serde_json::json!(Admitted { principal: p.name(), role: p.role().as_str().to_owned() }),
        ),
        Err(refused) => refused,
    }
}

/// The principal of a client certificate the node passed on, or why it is not one.
fn relayed(state: &State, asker: &Asker<'_>, base64: &str) -> Result<Principal, String> {
    if base64.len() > MAX_CERTIFICATE * 4 / 3 + 4 {
        return Err("the relayed client certificate is too large".to_owned());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|_| "the relayed client certificate is not base64".to_owned())?;
    // A node vouches that the client holds the key (its handshake proved it); the certificate
    // itself is checked here again, so that a node cannot make up a caller.
    let check =
        state.relayed_certificates.as_ref().ok_or("this gateway takes no relayed client certificate")?;
    check
        .check(&der.as_slice().into())
        .map_err(|e| format!("the relayed client certificate was refused: {e}"))?;
    Principal::relayed_certificate(asker.principal, &state.domain, &der).map_err(|e| e.to_string())
}

/// The client, reached through the node.
fn client(addr: &SocketAddr, asker: &Asker<'_>) -> Source {
    Source { client: *addr, peer: asker.source.client }
}

//! Who is calling: a bearer token if the request carries one, else the connection's client
//! certificate, else nobody (401).

use http::header::AUTHORIZATION;
use rampart_auth::{AuthError, Principal};
use rampart_events::EventKind;
use rampart_net::ConnInfo;

use crate::State;

/// Why there is no caller: the event kind and the 401 reason.
#[derive(Debug)]
pub struct AuthFailure {
    /// The security event's kind (`token_expired`, `unauthenticated`, …).
    pub kind: EventKind,
    /// The sentence for the caller.
    pub reason: String,
}

impl AuthFailure {
    /// The answer: 401 with the challenge, or 403 for a valid token used beyond its scope
    /// (RFC 6750 `insufficient_scope`: another token is needed, not another try).
    pub fn answer(&self) -> http::Response<rampart_net::Body> {
        if self.kind == EventKind::TokenOutOfScope {
            let mut r = crate::reply::error(http::StatusCode::FORBIDDEN, "forbidden", &self.reason);
            let challenge = http::HeaderValue::from_static("Bearer error=\"insufficient_scope\"");
            r.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge);
            return r;
        }
        crate::reply::unauthenticated(&self.reason)
    }
}

fn fail(kind: EventKind, reason: impl Into<String>) -> AuthFailure {
    AuthFailure { kind, reason: reason.into() }
}

/// The bearer token of a request, if it carries an `Authorization` header, or why that header
/// is refused. Public for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, AuthFailure> {
    let mut given = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = given.next() else { return Ok(None) };
    // Two credentials are one too many: a proxy and a service could each believe another.
    if given.next().is_some() {
        return Err(fail(EventKind::TokenMalformed, "more than one Authorization header"));
    }
    let text =
        value.to_str().map_err(|_| fail(EventKind::TokenMalformed, "malformed Authorization header"))?;
    let Some(token) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) else {
        return Err(fail(EventKind::TokenMalformed, "the Authorization header must be 'Bearer <token>'"));
    };
    Ok(Some(token))
}

/// The caller of a request, or why there is none.
pub async fn authenticate(
    state: &State,
    headers: &http::HeaderMap,
    conn: &ConnInfo,
    service: Option<&str>,
) -> Result<Principal, AuthFailure> {
    if let Some(token) = bearer(headers)? {
        // The generation first: what is read after it is kept only while it holds.
        let generation = state.auth.generation();
        let now = crate::now_secs();
        return match state
            .tokens
            .verify(state.auth.as_ref(), generation, token, service, &state.domain, now)
            .await
        {
            Ok(p) => Ok(p),
            Err(AuthError::Token(refusal)) => Err(fail(refusal.kind(), refusal.to_string())),
            Err(e) => {
                tracing::error!("token verification failed: {e}");
                Err(fail(EventKind::TokenUnverifiable, "token could not be verified"))
            }
        };
    }
    conn.principal.clone().ok_or_else(|| {
        fail(EventKind::Unauthenticated, "present a client certificate or an Authorization: Bearer token")
    })
}

//! Who is calling: a bearer token if the request carries one, else the connection's client
//! certificate, else nobody (401).

use http::header::AUTHORIZATION;
use rampart_auth::{AuthError, Principal, tokens};
use rampart_net::ConnInfo;

use crate::State;

/// The caller of a request, or why there is none (the 401 reason).
pub async fn authenticate(
    state: &State,
    headers: &http::HeaderMap,
    conn: &ConnInfo,
    service: Option<&str>,
) -> Result<Principal, String> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().map_err(|_| "malformed Authorization header".to_owned())?;
        let Some(token) = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")) else {
            return Err("the Authorization header must be 'Bearer <token>'".into());
        };
        return match tokens::verify(state.store.as_ref(), token, service, &state.domain, crate::now_secs())
            .await
        {
            Ok(p) => Ok(p),
            Err(AuthError::Token(refusal)) => Err(refusal.to_string()),
            Err(e) => {
                tracing::error!("token verification failed: {e}");
                Err("token could not be verified".into())
            }
        };
    }
    conn.principal
        .clone()
        .ok_or_else(|| "present a client certificate or an Authorization: Bearer token".to_owned())
}

//! `POST /_rampart/token`: a token for a password.

use base64::Engine as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rampart_auth::{AuthError, tokens};
use rampart_events::EventKind;
use rampart_net::{Body, ConnInfo};

use crate::{State, reply};

/// `POST /_rampart/token` with `Authorization: Basic` → a token for the user's password.
pub(super) async fn token_for_password(
    state: &State,
    req: Request<Incoming>,
    conn: &ConnInfo,
) -> Response<Body> {
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

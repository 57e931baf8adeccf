//! Requests with an `Idempotency-Key`: the outcome is kept in the registry and replayed to
//! duplicates, for the key's window. Only the service's own answer (marked `Rampart-Served` by
//! the node) is kept, never a refusal made before the service ran, nor a server error.

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use rampart_net::{Body, full};
use rampart_store::Store;
use serde::{Deserialize, Serialize};

use super::outgoing;
use crate::reply;

/// Where outcomes of requests with an `Idempotency-Key` are kept.
pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";
/// Largest answer body kept for replay.
const MAX_RECORDED_BODY: usize = 64 << 10;

/// A recorded outcome.
#[derive(Serialize, Deserialize)]
struct Outcome {
    status: u16,
    content_type: Option<String>,
    body: String,
    expires: u64,
}

/// An `Idempotency-Key` that is not 1 to 255 visible ASCII characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKey;

impl BadKey {
    /// What the caller is told.
    pub const REASON: &str = "Idempotency-Key must be 1 to 255 visible ASCII characters";
}

/// The key a request carries, if any.
pub fn key(headers: &http::HeaderMap) -> Result<Option<&str>, BadKey> {
    match headers.get(&rampart_net::contract::header::IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Ok(Some(k)),
        Some(_) => Err(BadKey),
    }
}

/// Where the outcome of `key` for this principal and service is kept: the key is the
/// client's, so it is scoped to who sent it and where.
pub fn record_key(principal: &str, service: &str, key: &str) -> String {
    let scope = format!("{principal}\0{service}\0{key}");
    let digest = ring::digest::digest(&ring::digest::SHA256, scope.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{IDEMPOTENCY_PREFIX}{hex}")
}

/// The recorded answer to an earlier request with the same key, if any.
pub async fn replay(store: &dyn Store, record: &str) -> Option<Response<Body>> {
    let kv = store.get(record).await.ok()??;
    let o: Outcome = serde_json::from_slice(&kv.value).ok()?;
    if o.expires < crate::now_secs() {
        return None;
    }
    let body = base64::engine::general_purpose::STANDARD.decode(o.body).ok()?;
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(o.status).ok()?;
    if let Some(ct) = o.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert(rampart_net::contract::header::REPLAYED, HeaderValue::from_static("true"));
    Some(resp)
}

/// Records the answer under the key for `window_secs`, if it is the service's own (not a
/// refusal the node made before the service ran) and not a server error; returns it cleaned.
/// `idle`: the longest pause allowed between the answer's frames.
pub async fn keep(
    store: &dyn Store,
    record: &str,
    window_secs: u64,
    resp: Response<Body>,
    (attempts, idle): (u32, std::time::Duration),
) -> Response<Body> {
    if resp.status().is_server_error() || !resp.headers().contains_key(rampart_net::contract::header::SERVED)
    {
        return outgoing::finish(resp, attempts);
    }
    let (mut parts, mut body) = resp.into_parts();
    outgoing::clean(&mut parts, attempts);
    let bytes = match rampart_net::body::read(&mut body, MAX_RECORDED_BODY, idle).await {
        Ok(b) => b,
        Err(_) => {
            return reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "the answer was cut or too large to keep for replay",
            );
        }
    };
    let outcome = Outcome {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: base64::engine::general_purpose::STANDARD.encode(&bytes),
        expires: crate::now_secs() + window_secs,
    };
    if let Ok(v) = serde_json::to_vec(&outcome)
        && let Err(e) = store.put(record, v, None).await
    {
        tracing::warn!("recording an idempotent outcome: {e}");
    }
    Response::from_parts(parts, full(bytes))
}

//! Error answers: JSON `{"error": kind, "reason": sentence}` that say why without internals.

use http::{HeaderValue, Response, StatusCode, header};
use rampart_net::{Body, full};

/// A JSON error answer.
pub fn error(status: StatusCode, kind: &str, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": kind, "reason": reason });
    json(status, &body)
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 401 with the challenge a client needs.
pub fn unauthenticated(reason: &str) -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, "unauthenticated", reason);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// 503 with `Retry-After`.
pub fn unavailable(reason: &str) -> Response<Body> {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

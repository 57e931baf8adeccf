//! Error answers: JSON `{"error": kind, "reason": sentence}` that say why without internals.

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use rampart_net::{Body, full};

/// Most of an unread request body read before an answer that did not need it.
const DRAIN_BYTES: usize = 64 << 10;
/// And for how long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// `resp`, after reading what is left of the request's body (up to 64 KiB, for up to a
/// second): a refusal decided before the body was read. Over HTTP/2 a stream whose body is
/// dropped unread ends in a reset, which clients such as curl report instead of the answer;
/// past the bound it is dropped anyway (the answer is then best effort, the cost bounded).
pub async fn after_body(req: Request<Incoming>, resp: Response<Body>) -> Response<Body> {
    let mut body = req.into_body();
    if body.is_end_stream() {
        return resp;
    }
    let drain = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    resp
}

/// A JSON error answer.
pub fn error(status: StatusCode, kind: &str, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": kind, "reason": reason });
    json(status, &body)
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(rampart_net::contract::media::JSON));
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

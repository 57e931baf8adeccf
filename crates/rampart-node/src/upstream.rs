//! Forwarding to an app on loopback (`--upstream NAME=http://127.0.0.1:PORT`), plain HTTP,
//! with the principal in `Rampart-Principal`.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderMap, HeaderName};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_net::contract::header;
use rampart_net::{Body, full};

use crate::services::Answer;

pub type PlainClient = Client<HttpConnector, Body>;

pub fn client() -> PlainClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(http)
}

/// Headers the gateway sets about the client, passed on to the app.
const FROM_GATEWAY: [HeaderName; 4] = [
    header::CLIENT,
    http::header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
];

#[allow(clippy::too_many_arguments)]
pub async fn forward(
    client: &PlainClient,
    base: &str,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    principal: &str,
    body: Vec<u8>,
) -> Answer {
    let uri = format!(
        "{}{}{}",
        base.trim_end_matches('/'),
        if path.is_empty() { "/" } else { path },
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    let mut builder =
        Request::builder().method(method.clone()).uri(&uri).header(header::PRINCIPAL, principal);
    if let Some(ct) = headers.get(CONTENT_TYPE).filter(|v| v.to_str().is_ok_and(|s| !s.contains("fernet"))) {
        builder = builder.header(CONTENT_TYPE, ct);
    }
    // Where the request came from, as the gateway decided (it removed the client's own
    // versions of these): the app behind a node sees the real client, as behind any proxy.
    for name in FROM_GATEWAY {
        if let Some(v) = headers.get(&name) {
            builder = builder.header(name, v);
        }
    }
    let Ok(req) = builder.body(full(body)) else {
        return Answer::error(StatusCode::BAD_REQUEST, "bad_request", "cannot forward this request");
    };
    let resp = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Answer::error(StatusCode::BAD_GATEWAY, "upstream_failed", &format!("upstream app: {e}"));
        }
        Err(_) => {
            return Answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "upstream app did not answer in time",
            );
        }
    };
    let status = resp.status();
    let content_type = match resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.starts_with("application/json") => "application/json",
        Some(ct) if ct.starts_with("text/html") => "text/html; charset=utf-8",
        Some(ct) if ct.starts_with("text/") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    match http_body_util::Limited::new(resp.into_body(), 8 << 20).collect().await {
        Ok(b) => Answer { status, content_type, body: b.to_bytes().to_vec(), registry_down: false },
        Err(_) => {
            Answer::error(StatusCode::BAD_GATEWAY, "upstream_failed", "upstream answer too large or cut")
        }
    }
}

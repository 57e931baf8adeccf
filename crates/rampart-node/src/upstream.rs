//! An app on loopback as a service (`--upstream NAME=http://127.0.0.1:PORT`): plain HTTP,
//! with the principal in `Rampart-Principal` and the gateway's forwarding headers.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_net::contract::header;
use rampart_net::{Body, full};

use crate::service::{Answer, Answering, Call, Service};

type PlainClient = Client<HttpConnector, Body>;

/// Why an `--upstream` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Not `NAME=URL`.
    #[error("--upstream {0:?}: expected NAME=http://127.0.0.1:PORT")]
    NotAPair(String),
    /// The name is not a service name.
    #[error("--upstream {spec:?}: {source}")]
    BadName {
        /// What was given.
        spec: String,
        /// Why the name was refused.
        #[source]
        source: rampart_auth::AuthError,
    },
    /// The URL does not parse.
    #[error("--upstream {0:?}: not a URL")]
    NotAUrl(String),
    /// Not plain HTTP on loopback: the hop from node to app is not encrypted, so it must not
    /// leave the machine.
    #[error("--upstream {0:?}: plain HTTP upstreams must be on loopback (http://127.0.0.1:PORT)")]
    NotLoopback(String),
}

/// An app behind the node.
pub struct App {
    base: String,
    client: PlainClient,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("base", &self.base).finish_non_exhaustive()
    }
}

impl App {
    /// The app of `--upstream NAME=URL`: its service name, and the app.
    pub fn parse(spec: &str) -> Result<(String, App), UpstreamError> {
        let Some((name, url)) = spec.split_once('=') else {
            return Err(UpstreamError::NotAPair(spec.to_owned()));
        };
        rampart_auth::ServiceName::parse(name)
            .map_err(|source| UpstreamError::BadName { spec: spec.to_owned(), source })?;
        let uri: http::Uri = url.parse().map_err(|_| UpstreamError::NotAUrl(spec.to_owned()))?;
        // An IPv6 host comes bracketed (`[::1]`).
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if uri.scheme_str() != Some("http") || !loopback {
            return Err(UpstreamError::NotLoopback(spec.to_owned()));
        }
        Ok((name.to_owned(), App { base: url.to_owned(), client: client() }))
    }
}

impl Service for App {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(forward(&self.client, &self.base, call))
    }
}

fn client() -> PlainClient {
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

/// Sends the call to the app at `base`.
async fn forward(client: &PlainClient, base: &str, call: Call<'_>) -> Answer {
    let Call { method, path, query, headers, principal, role, body, .. } = call;
    let uri = format!(
        "{}{}{}",
        base.trim_end_matches('/'),
        if path.is_empty() { "/" } else { path },
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    let mut builder =
        Request::builder().method(method.clone()).uri(&uri).header(header::PRINCIPAL, principal);
    if !role.is_empty() {
        builder = builder.header(header::ROLE, role);
    }
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
        Ok(b) => Answer::new(status, content_type, b.to_bytes().to_vec()),
        Err(_) => {
            Answer::error(StatusCode::BAD_GATEWAY, "upstream_failed", "upstream answer too large or cut")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_service_name_and_plain_http_on_loopback_are_taken() {
        assert!(App::parse("app=http://127.0.0.1:8000").is_ok_and(|(name, _)| name == "app"));
        assert!(App::parse("app=http://localhost:8000/base").is_ok());
        assert!(App::parse("app=http://[::1]:8000").is_ok());
        let refused = |spec: &str| App::parse(spec).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused("app").contains("expected NAME="));
        assert!(
            refused("*=http://127.0.0.1:9").contains("service name"),
            "the policy wildcard is no service"
        );
        assert!(refused("_x=http://127.0.0.1:9").contains("service name"));
        assert!(refused("app=http://10.0.0.1:8000").contains("loopback"));
        assert!(refused("app=https://127.0.0.1:8000").contains("loopback"));
        assert!(refused("app=http://127.0.0.1:8000/a b").contains("not a URL"));
    }
}

//! A plain-HTTP listener that serves nothing in clear: every request is answered `308
//! Permanent Redirect` to the same host and path over HTTPS (308 rather than 301, so that a
//! client keeps its method and body). It runs under the accept layer's cap, deadline and drain
//! like the TLS listeners, reads one request head per connection, and closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::accept::{Accepted, Protocol, Serving};
use crate::serve::{Body, full};

/// The redirecting protocol: to `https://HOST:https_port/…`.
#[derive(Debug)]
pub struct Redirect {
    https_port: u16,
    header_timeout: Duration,
}

impl Redirect {
    /// Redirects to the HTTPS listener on `https_port`; a request head must come within
    /// `header_timeout`.
    pub fn new(https_port: u16, header_timeout: Duration) -> Arc<Self> {
        Arc::new(Redirect { https_port, header_timeout })
    }

    /// The answer to `req`.
    fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).and_then(host_of);
        let Some(host) = host else {
            return plain(
                StatusCode::BAD_REQUEST,
                "a Host header naming this server is needed to redirect to HTTPS\n",
            );
        };
        let port = if self.https_port == 443 { String::new() } else { format!(":{}", self.https_port) };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{path}");
        let Ok(value) = HeaderValue::from_str(&location) else {
            return plain(StatusCode::BAD_REQUEST, "not a path that can be redirected\n");
        };
        let mut resp = plain(StatusCode::PERMANENT_REDIRECT, "");
        resp.headers_mut().insert(header::LOCATION, value);
        resp
    }
}

/// The host of a `Host` header without its port: a DNS name or an address (IPv6 in brackets),
/// nothing else (the header is the client's word, and goes into a header of ours).
fn host_of(value: &str) -> Option<&str> {
    let host = match value.strip_prefix('[') {
        Some(v6) => &value[..v6.find(']')? + 2],
        None => value.split(':').next()?,
    };
    let fine = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    (!host.is_empty() && host.len() <= 253 && host.chars().all(fine)).then_some(host)
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(text.to_owned()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

impl Protocol for Redirect {
    fn serve(&self, conn: Accepted) -> Serving<'_> {
        Box::pin(async move {
            let service =
                service_fn(|req: Request<Incoming>| async move { Ok::<_, Infallible>(self.answer(&req)) });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(self.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(conn.tcp), service);
            // A client that never finishes its head is dropped at the deadline.
            let _ = tokio::time::timeout(self.header_timeout * 2, served).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts_lose_their_port_and_nothing_odd_passes() {
        assert_eq!(host_of("example.test:8080"), Some("example.test"));
        assert_eq!(host_of("example.test"), Some("example.test"));
        assert_eq!(host_of("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_of("127.0.0.1:80"), Some("127.0.0.1"));
        for bad in ["", ":80", "evil.test/x", "a b", "[::1", "x\r\nSet-Cookie: y"] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }
}

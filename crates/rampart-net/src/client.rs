//! The pooled HTTPS client of the rampart hops other than a gateway's requests to its nodes
//! (those go through [`crate::pool`]): mutual TLS with our certificate, the peer's role checked
//! at the handshake, HTTP/2 or HTTP/1.1 by ALPN, connections kept and reused.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::serve::Body;

/// A pooled HTTPS client.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// A client over `config` (see [`crate::tls::client_config`]), with a connect timeout:
/// HTTP/2 when the server offers it, else HTTP/1.1.
pub fn https_client(config: rustls::ClientConfig, connect_timeout: Duration) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// A pooled plain-HTTP client (HTTP/1.1), for apps on loopback only: an edge route's app.
pub type HttpClient = Client<HttpConnector, Body>;

/// A plain-HTTP client with a connect timeout.
pub fn http_client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(http)
}

/// An error and its causes on one line: hyper's own message ("client error (Connect)") hides
/// the reason inside, such as the TLS refusal of a certificate.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

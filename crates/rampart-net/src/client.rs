//! The pooled HTTPS client every rampart hop uses: mutual TLS with our certificate, the peer's
//! role checked at the handshake, HTTP/2 or HTTP/1.1 by ALPN (or HTTP/1.1 alone), connections
//! kept and reused.

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
    https_client_over(config, connect_timeout, true)
}

/// [`https_client`] speaking HTTP/1.1 alone, a pool of keep-alive connections: the gateway's
/// client towards its nodes. Over loopback or a LAN, many HTTP/1.1 connections cost less CPU
/// per request than one multiplexed HTTP/2 connection (no stream state, no HPACK, no shared
/// connection task every request wakes), as nginx's upstream keep-alive does; see
/// docs/benchmarks.md.
pub fn https_client_http1(config: rustls::ClientConfig, connect_timeout: Duration) -> HttpsClient {
    https_client_over(config, connect_timeout, false)
}

fn https_client_over(config: rustls::ClientConfig, connect_timeout: Duration, h2: bool) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let builder =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config).https_only().enable_http1();
    let connector =
        if h2 { builder.enable_http2().wrap_connector(http) } else { builder.wrap_connector(http) };
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

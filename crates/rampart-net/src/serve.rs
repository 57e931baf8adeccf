//! Serving HTTP/1.1 and HTTP/2 over TLS: an accept loop that takes a bound listener and a
//! shutdown signal, caps connections, bounds the handshake and header-read time, hands each
//! request to a handler with the connection's [`Principal`], and drains on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_auth::Principal;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// The error type of bodies passed around (boxed: bodies come from hyper and from memory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response or request body.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body from bytes in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A body streamed from hyper.
pub fn incoming(body: Incoming) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

/// What a handler knows about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The principal of the client certificate, if one was presented and verified.
    pub principal: Option<Principal>,
}

/// A request handler: it always answers (errors are responses too).
pub type Handler = Arc<
    dyn Fn(Request<Incoming>, Arc<ConnInfo>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// Called with the client's address and the reason whenever a TLS handshake fails.
pub type HandshakeObserver = Arc<dyn Fn(SocketAddr, String) + Send + Sync>;

/// Why a connection was cut before a request could be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnProblem {
    /// The client did not send its request headers in time (a slow client).
    HeaderTimeout,
    /// The request head was over the size or count limit (answered 431).
    HeadersTooLarge,
}

/// Called with the client's address and the problem when a connection is cut.
pub type ConnObserver = Arc<dyn Fn(SocketAddr, ConnProblem) + Send + Sync>;

/// Who hears about connections that fail.
#[derive(Clone, Default)]
pub struct Observers {
    /// Failed TLS handshakes.
    pub handshake: Option<HandshakeObserver>,
    /// Connections cut for a slow or oversized request head.
    pub connection: Option<ConnObserver>,
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers").finish_non_exhaustive()
    }
}

/// Limits of a listener.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the kernel's backlog. Default 10,000.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers (HTTP/1.1). Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request head (HTTP/1.1 buffer; HTTP/2 header list), bytes. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Most request headers (HTTP/1.1). Default 100.
    pub max_headers: usize,
    /// Time in-flight requests get to finish after shutdown begins. Default 30 s.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 8 << 10,
            max_headers: 100,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish (up to `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Handler,
    limits: ServeLimits,
    observers: Observers,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let limits = limits.clone();
        let observers = observers.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    if let Some(o) = &observers.handshake {
                        o(remote, e.to_string());
                    }
                    return;
                }
                Err(_) => {
                    if let Some(o) = &observers.handshake {
                        o(remote, "handshake timed out".into());
                    }
                    return;
                }
            };
            let principal = Principal::from_tls(tls.get_ref().1).ok().flatten();
            let info = Arc::new(ConnInfo { remote, principal });
            let service = service_fn(move |req| {
                let fut = handler(req, info.clone());
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .max_headers(limits.max_headers);
            // HTTP/2 header lists may be up to 4× the limit at the protocol level, so that the
            // handler sees (and records) what is over the limit instead of h2 refusing silently.
            let h2_list = u32::try_from(limits.max_header_bytes.saturating_mul(4)).unwrap_or(u32::MAX);
            builder.http2().timer(TokioTimer::new()).max_header_list_size(h2_list);
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await
                && let (Some(o), Some(e)) = (&observers.connection, e.downcast_ref::<hyper::Error>())
            {
                if e.is_timeout() {
                    o(remote, ConnProblem::HeaderTimeout);
                } else if e.is_parse_too_large() {
                    o(remote, ConnProblem::HeadersTooLarge);
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {:?}", limits.drain_timeout);
    }
}

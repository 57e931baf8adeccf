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

/// Limits of a listener.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the kernel's backlog. Default 10,000.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers (HTTP/1.1). Default 10 s.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown begins. Default 30 s.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
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
    on_handshake_error: Option<HandshakeObserver>,
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
        let observer = on_handshake_error.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    if let Some(o) = observer {
                        o(remote, e.to_string());
                    }
                    return;
                }
                Err(_) => {
                    if let Some(o) = observer {
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
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            let _ = watcher.watch(conn.into_owned()).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {:?}", limits.drain_timeout);
    }
}

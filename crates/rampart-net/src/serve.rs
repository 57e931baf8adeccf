//! Serving HTTP/1.1 and HTTP/2 over TLS: the [`Https`] protocol of the accept layer
//! ([`crate::accept`]: the connection cap, the PROXY header, the drain). It bounds the
//! handshake, the request head and the idle time between requests ([`crate::conn`]) and hands
//! each request to a handler with the connection's [`Principal`].

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
use hyper::server::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rampart_auth::Principal;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::accept::{AcceptLimits, Accepted, Protocol, Serving, accept};
use crate::conn::{ConnClock, Watched, linger_close, uri_too_long_answer};
use crate::proxy_header::ProxyProtocol;
use crate::refusal::HandshakeRefusal;
use crate::rewind::Rewind;
use crate::watchdog::{Round, round};

/// A served TLS connection.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<Rewind<tokio::net::TcpStream>>;

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
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The client's address: the peer's, or the one a trusted forwarder's PROXY protocol
    /// header gave.
    pub remote: SocketAddr,
    /// The immediate peer (a forwarder, when it differs from `remote`).
    pub peer: SocketAddr,
    /// The principal of the client certificate, if one was presented and verified.
    pub principal: Option<Principal>,
    /// That certificate (DER), for what is checked against its key (a peer gateway's
    /// assertions).
    pub certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    /// The server name the client asked for in its ClientHello (SNI), if it sent one: what a
    /// request's Host must match where a certificate serves several names.
    pub server_name: Option<String>,
}

/// Where a connection or request comes from: the client, and the immediate peer (a load
/// balancer or proxy, when one stands between; else the client itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The client.
    pub client: SocketAddr,
    /// The peer of the TCP connection.
    pub peer: SocketAddr,
}

impl Source {
    /// The peer's address when it is not the client's (a forwarder's), for the record.
    pub fn forwarder(&self) -> Option<std::net::IpAddr> {
        (self.peer.ip() != self.client.ip()).then_some(self.peer.ip())
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.forwarder() {
            Some(via) => write!(f, "{} (via {via})", self.client),
            None => write!(f, "{}", self.client),
        }
    }
}

impl From<SocketAddr> for Source {
    fn from(addr: SocketAddr) -> Self {
        Source { client: addr, peer: addr }
    }
}

impl From<&ConnInfo> for Source {
    fn from(conn: &ConnInfo) -> Self {
        Source { client: conn.remote, peer: conn.peer }
    }
}

/// A request handler: it always answers (errors are responses too).
pub type Handler = Arc<
    dyn Fn(Request<Incoming>, Arc<ConnInfo>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// Called with where it came from and the refusal whenever a TLS handshake is refused (not
/// when the client merely hung up).
pub type HandshakeObserver = Arc<dyn Fn(Source, HandshakeRefusal) + Send + Sync>;

/// Why a connection was cut before a request could be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnProblem {
    /// The client started a request head and did not finish it in time (a slow client).
    HeaderTimeout,
    /// The request head was over the size or count limit (answered 431).
    HeadersTooLarge,
    /// The HTTP/1.1 request line was over the URI limit (answered 414).
    UriTooLong,
    /// The request did not parse as HTTP/1.1 (answered 400 by the parser): ambiguous framing
    /// (a smuggling attempt), a bad header or version, a broken client.
    Malformed,
    /// The HTTP/2 connection was closed (GOAWAY) for breaking the protocol or flooding it:
    /// rapid resets, a header block that never ends, frames out of order. Its reason code.
    ProtocolAbuse(u32),
}

/// The reason of the GOAWAY we sent, if `e` is h2 closing a connection for what the client did.
fn goaway_sent(e: &(dyn std::error::Error + 'static)) -> Option<u32> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<h2::Error>() {
            return (h.is_library() && h.is_go_away()).then(|| h.reason().map(u32::from)).flatten();
        }
        cause = c.source();
    }
    None
}

/// Called with where it came from and the problem when a connection is cut.
pub type ConnObserver = Arc<dyn Fn(Source, ConnProblem) + Send + Sync>;

/// Who hears about connections that fail.
#[derive(Clone, Default)]
pub struct Observers {
    /// Refused TLS handshakes.
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
    /// Time allowed for a request head once its first byte came (HTTP/1.1). Default 10 s.
    pub header_read_timeout: Duration,
    /// Time a connection may idle with no request in flight before it is closed quietly
    /// (keep-alive). Default 60 s.
    pub idle_timeout: Duration,
    /// Largest request head (HTTP/1.1 buffer; HTTP/2 header list), bytes. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Longest request URI, bytes: an HTTP/1.1 request line past it is answered 414 before
    /// the head limit applies. Default 8 KiB.
    pub max_uri_bytes: usize,
    /// Most request headers (HTTP/1.1). Default 100.
    pub max_headers: usize,
    /// Time in-flight requests get to finish after shutdown begins. Default 30 s.
    pub drain_timeout: Duration,
    /// Which peers send a PROXY protocol header before TLS (and only they may). Default: none.
    pub proxy_protocol: ProxyProtocol,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 8 << 10,
            max_uri_bytes: 8 << 10,
            max_headers: 100,
            drain_timeout: Duration::from_secs(30),
            proxy_protocol: ProxyProtocol::default(),
        }
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish (up to `drain_timeout`): the accept layer ([`crate::accept`]) with the
/// [`Https`] protocol.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Handler,
    limits: ServeLimits,
    observers: Observers,
    shutdown: impl Future<Output = ()>,
) {
    let accept_limits = AcceptLimits {
        max_connections: limits.max_connections,
        handshake_timeout: limits.handshake_timeout,
        drain_timeout: limits.drain_timeout,
        proxy_protocol: limits.proxy_protocol.clone(),
    };
    let refused = observers.handshake.clone();
    let https = Arc::new(Https::new(tls, handler, limits, observers));
    accept(listener, https, accept_limits, refused, shutdown).await;
}

/// The TLS-terminating protocol: the handshake (the client's certificate checked by the
/// server config's verifier), then HTTP/1.1 or HTTP/2 by ALPN, each request handed to the
/// handler with the connection's [`Principal`].
pub struct Https {
    acceptor: TlsAcceptor,
    handler: Handler,
    limits: ServeLimits,
    observers: Observers,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Protocol for Https {
    fn serve(&self, conn: Accepted) -> Serving<'_> {
        Box::pin(self.run(conn, Bytes::new()))
    }
}

impl Https {
    /// HTTPS with `tls`, answering with `handler` under `limits`, telling `observers`.
    pub fn new(
        tls: Arc<rustls::ServerConfig>,
        handler: Handler,
        limits: ServeLimits,
        observers: Observers,
    ) -> Self {
        let (h1, h2) = (http1_builder(&limits), http2_builder(&limits));
        Https { acceptor: TlsAcceptor::from(tls), handler, limits, observers, h1, h2 }
    }

    /// Tells the observer of a refused connection (`None`: the client merely went away).
    fn refused(&self, source: Source, refusal: Option<HandshakeRefusal>) {
        if let (Some(o), Some(r)) = (&self.observers.handshake, refusal) {
            o(source, r);
        }
    }

    /// Serves `conn` whose first bytes, `read` (a ClientHello read to learn its server name:
    /// [`crate::hello`]), were already taken from it: the handshake gets them first.
    pub async fn serve_after_hello(&self, conn: Accepted, read: Bytes) {
        self.run(conn, read).await;
    }

    async fn run(&self, conn: Accepted, read: Bytes) {
        let Accepted { tcp, source, handshake_deadline, mut stop } = conn;
        let limits = &self.limits;
        let (remote, peer) = (source.client, source.peer);
        let tcp = Rewind::new(read, tcp);
        let tls = match Box::pin(tokio::time::timeout_at(handshake_deadline, self.acceptor.accept(tcp))).await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return self.refused(source, HandshakeRefusal::from_io(&e)),
            Err(_) => return self.refused(source, Some(HandshakeRefusal::TimedOut)),
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let session = tls.get_ref().1;
        let principal = Principal::from_tls(session).ok().flatten();
        let certificate = principal
            .as_ref()
            .and_then(|_| session.peer_certificates()?.first().map(|c| c.clone().into_owned()));
        let server_name = session.server_name().map(str::to_owned);
        let info = Arc::new(ConnInfo { remote, peer, principal, certificate, server_name });
        // A request line longer than the URI limit (plus method and version), or longer than
        // the head buffer can hold, is a URI too long: 414, not the parser's 431.
        let max_line = (limits.max_uri_bytes + 16).min(head_buffer(limits) - 1);
        let clock = Arc::new(ConnClock::new(if h2 { 0 } else { max_line }));
        let service = Answer { handler: self.handler.clone(), info, clock: clock.clone() };
        // Boxed: moved whole between hyper and the idle wait, and small to hold while parked.
        let (io, io_back) = Watched::new(Box::new(tls), clock.clone());
        // The connection lives in these calls only: once hyper drops it, the stream comes back
        // through `io_back`.
        let ended = if h2 {
            let mut conn = Box::pin(self.h2.serve_connection(TokioIo::new(io), service));
            round(&mut conn, &clock, limits, &mut stop, false, &mut false).await
        } else {
            crate::http1::serve(&self.h1, Rewind::new(Bytes::new(), io), service, &clock, limits, &mut stop)
                .await
        };
        let (slow, result) = match ended {
            Round::SlowHead => (true, Ok(())),
            Round::Cut => (false, Ok(())),
            Round::Ended { result, .. } => (false, result),
        };
        let problem = if slow {
            Some(ConnProblem::HeaderTimeout)
        } else if clock.uri_too_long() {
            Some(ConnProblem::UriTooLong)
        } else {
            result.err().and_then(|e| {
                if let Some(code) = goaway_sent(&e) {
                    return Some(ConnProblem::ProtocolAbuse(code));
                }
                if e.is_parse_too_large() {
                    Some(ConnProblem::HeadersTooLarge)
                } else {
                    e.is_parse().then_some(ConnProblem::Malformed)
                }
            })
        };
        if let Some(problem) = problem {
            self.cut(source, problem, io_back).await;
        }
    }

    /// A connection cut for `problem`: told to the observer, then closed lingering (so the
    /// client reads the 414 or 431 before the reset).
    async fn cut(&self, source: Source, problem: ConnProblem, io_back: oneshot::Receiver<Box<TlsStream>>) {
        if let Some(o) = &self.observers.connection {
            o(source, problem);
        }
        if let Ok(io) = io_back.await {
            match problem {
                ConnProblem::UriTooLong => linger_close(*io, Some(&uri_too_long_answer())).await,
                // hyper wrote the 431 or the 400.
                ConnProblem::HeadersTooLarge | ConnProblem::Malformed => linger_close(*io, None).await,
                ConnProblem::HeaderTimeout | ConnProblem::ProtocolAbuse(_) => {}
            }
        }
    }
}

/// The HTTP/1.1 read buffer, which bounds a request head.
fn head_buffer(limits: &ServeLimits) -> usize {
    limits.max_header_bytes.max(8192)
}

/// hyper's HTTP/1.1 connection builder under `limits`.
fn http1_builder(limits: &ServeLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    // hyper's own header timer would also run while a keep-alive connection idles: the
    // connection's clock (`crate::conn`) times heads instead.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(head_buffer(limits))
        .max_headers(limits.max_headers);
    builder
}

/// hyper's HTTP/2 connection builder under `limits`.
fn http2_builder(limits: &ServeLimits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    // The HTTP/2 header list may be well over the limit at the protocol level, so that the
    // handler answers (and records) 431 on the stream instead of h2 refusing the stream.
    let h2_list = u32::try_from(limits.max_header_bytes.saturating_mul(16).max(64 << 10)).unwrap_or(u32::MAX);
    builder.timer(TokioTimer::new()).max_header_list_size(h2_list);
    builder
}

/// What answers a connection's requests: its handler, told the connection, timed by its clock.
#[derive(Clone)]
pub(crate) struct Answer {
    handler: Handler,
    info: Arc<ConnInfo>,
    clock: Arc<ConnClock>,
}

impl hyper::service::Service<Request<Incoming>> for Answer {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, req: Request<Incoming>) -> Answering {
        self.clock.request_started();
        if asks_to_close(&req) {
            self.clock.closing();
        }
        Answering { answer: (self.handler)(req, self.info.clone()), clock: self.clock.clone() }
    }
}

/// Whether an HTTP/1 request asks for its connection to end after the answer (HTTP/1.0
/// unless it asks to be kept alive, or `Connection: close`).
fn asks_to_close(req: &Request<Incoming>) -> bool {
    let connection = |token: &str| {
        req.headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    match req.version() {
        http::Version::HTTP_11 => connection("close"),
        http::Version::HTTP_10 | http::Version::HTTP_09 => !connection("keep-alive") || connection("close"),
        _ => false,
    }
}

/// A request being answered (a named future, so that hyper holds it without another box).
pub(crate) struct Answering {
    answer: Pin<Box<dyn Future<Output = Response<Body>> + Send>>,
    clock: Arc<ConnClock>,
}

impl Future for Answering {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let answered = std::task::ready!(self.answer.as_mut().poll(cx));
        self.clock.request_answered();
        std::task::Poll::Ready(Ok(answered))
    }
}

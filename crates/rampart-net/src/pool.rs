//! A pool of HTTP/1.1 keep-alive connections over mutual TLS, for a gateway's requests to
//! its nodes: one pool per connection worker ([`crate::workers::PerWorker`]), so a request, its
//! connection's task and the pool it comes back to all live on one thread.
//!
//! Written over hyper's connection API rather than hyper-util's pooled client, which costs
//! every request a clone of the client and its connector, a pool key hashed twice, a `Host`
//! header formatted, and a task spawned to wait until the connection is ready again (5.8 % of
//! a gateway's CPU in a profile; see docs/benchmarks.md). Here a connection goes back
//! to the pool when its answer's body has been read to the end, and is taken again once hyper
//! says it is ready.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use crate::serve::{Body, BoxError};

/// Most idle connections kept per address: a burst past it opens connections that are closed
/// after their answer.
const MOST_IDLE: usize = 256;

/// An idle connection older than this is not used again (closed): well under a node's own idle
/// timeout (60 s by default), so that a node seldom closes one just as it is reused (and when
/// it does before the request was written, hyper hands the request back to be sent again).
const KEEP_IDLE: Duration = Duration::from_secs(30);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URI names no `IP:port` to connect to.
    #[error("the request's URI names no IP address and port: {0}")]
    NotAnAddress(String),
    /// The TCP connection could not be made (refused, unreachable, or not within the connect
    /// timeout): the request was not sent.
    #[error("connecting to {addr}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The TLS handshake failed (the server's certificate refused, say): the request was not
    /// sent. [`crate::refusal::HandshakeRefusal::from_io`] reads why from `error`.
    #[error("the TLS handshake with {addr} failed")]
    Handshake {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// HTTP failed on the connection: the request may have been sent.
    #[error("HTTP/1.1 to {addr}")]
    Http {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        error: hyper::Error,
    },
}

impl PoolError {
    /// Whether the server may have received the request.
    pub fn maybe_sent(&self) -> bool {
        matches!(self, PoolError::Http { .. })
    }

    /// The handshake's error, when the handshake is what failed.
    pub fn handshake_error(&self) -> Option<&std::io::Error> {
        match self {
            PoolError::Handshake { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The pool (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Http1Pool {
    shared: Arc<Shared>,
}

struct Shared {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    idle: Mutex<IdleConnections>,
}

/// The idle connections by address, and when the closed and expired ones were last let go of
/// at every address (nodes come and go: their addresses must not pile up).
#[derive(Default)]
struct IdleConnections {
    by_addr: HashMap<SocketAddr, Vec<Idle>>,
    swept: Option<Instant>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < KEEP_IDLE
    }
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.shared.idle.lock().map_or(0, |m| m.by_addr.values().map(Vec::len).sum());
        f.debug_struct("Http1Pool").field("idle", &idle).finish_non_exhaustive()
    }
}

impl Http1Pool {
    /// A pool whose connections present and verify as `config` says (its ALPN is set to
    /// HTTP/1.1), each TCP connect given `connect_timeout`.
    pub fn new(mut config: rustls::ClientConfig, connect_timeout: Duration) -> Self {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let shared = Shared {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            connect_timeout,
            idle: Mutex::new(IdleConnections::default()),
        };
        Http1Pool { shared: Arc::new(shared) }
    }

    /// Sends `req`, whose URI is `https://IP:PORT/path?query`, on an idle connection to that
    /// address or a new one; the answer's head comes back as soon as it arrives, its body
    /// streams, and the connection returns to the pool once that body is read to its end.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Body>, PoolError> {
        let authority = req.uri().authority().cloned();
        let addr = match authority.as_ref().map(|a| a.as_str().parse::<SocketAddr>()) {
            Some(Ok(addr)) => addr,
            _ => return Err(PoolError::NotAnAddress(req.uri().to_string())),
        };
        to_origin_form(&mut req, authority.as_ref());
        // Idle connections first, newest first; one that turns out closed gives the request
        // back unsent, and the next is tried.
        while let Some(mut sender) = self.take_idle(addr) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.returning(addr, sender, resp)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(PoolError::Http { addr, error: e.into_error() }),
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        match sender.send_request(req).await {
            Ok(resp) => Ok(self.returning(addr, sender, resp)),
            Err(error) => Err(PoolError::Http { addr, error }),
        }
    }

    /// How many idle connections the pool holds (to all addresses).
    pub fn idle_count(&self) -> usize {
        let idle = self.shared.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.by_addr.values().map(Vec::len).sum()
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        let mut idle = self.shared.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.by_addr.get_mut(&addr)?;
        let now = Instant::now();
        while let Some(idle) = list.pop() {
            if idle.usable(now) {
                return Some(idle.sender);
            }
        }
        None
    }

    fn put_back(&self, addr: SocketAddr, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.shared.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.swept.is_none_or(|at| now.duration_since(at) >= KEEP_IDLE) {
            idle.by_addr.retain(|_, list| {
                list.retain(|i| i.usable(now));
                !list.is_empty()
            });
            idle.swept = Some(now);
        }
        let list = idle.by_addr.entry(addr).or_default();
        if list.len() >= MOST_IDLE {
            list.retain(|i| i.usable(now));
        }
        if list.len() < MOST_IDLE {
            list.push(Idle { sender, since: now });
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Body>, PoolError> {
        let connecting = tokio::net::TcpStream::connect(addr);
        let tcp = match tokio::time::timeout(self.shared.connect_timeout, connecting).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(PoolError::Connect { addr, error }),
            Err(_) => {
                let error = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(PoolError::Connect { addr, error });
            }
        };
        // Requests are written whole in one go: Nagle's delay would only hold back the last
        // segment of each.
        let _ = tcp.set_nodelay(true);
        let tls = self
            .shared
            .tls
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(|error| PoolError::Handshake { addr, error })?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|error| PoolError::Http { addr, error })?;
        // The connection's task runs on the runtime (the worker) that opened it, until the
        // server closes it or the pool drops its sender.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection to {addr} ended: {e}");
            }
        });
        Ok(sender)
    }

    fn returning(
        &self,
        addr: SocketAddr,
        sender: SendRequest<Body>,
        resp: Response<Incoming>,
    ) -> Response<Body> {
        let back = Some(GoingBack { pool: self.clone(), addr, sender });
        resp.map(|body| http_body_util::BodyExt::boxed(Returning { body, back }))
    }
}

/// `https://host:port/p?q` → `/p?q`, with `Host: host:port` unless the request has one: what
/// HTTP/1.1 sends to an origin server.
fn to_origin_form(req: &mut Request<Body>, authority: Option<&Authority>) {
    let origin = match req.uri().path_and_query() {
        Some(pq) => Uri::from(pq.clone()),
        None => Uri::from_static("/"),
    };
    *req.uri_mut() = origin;
    if let Some(host) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
        req.headers_mut().entry(http::header::HOST).or_insert(host);
    }
}

/// A connection to give back once its answer's body is read to the end.
struct GoingBack {
    pool: Http1Pool,
    addr: SocketAddr,
    sender: SendRequest<Body>,
}

/// An answer's body that gives its connection back to the pool at its end. Dropped before its
/// end, it does not: hyper closes a connection whose answer was not read whole.
struct Returning {
    body: Incoming,
    back: Option<GoingBack>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some(GoingBack { pool, addr, sender }) = self.back.take() {
            pool.put_back(addr, sender);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => drop(self.back.take()),
            _ => {}
        }
        polled.map(|frame| frame.map(|f| f.map_err(|e| Box::new(e) as BoxError)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // An answer with no body (or one whose end its reader saw from its length) is never
        // polled to its end.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}

//! Sending one request to a target, behind a trait so the retry loop and the probes can be run
//! in-process against targets that refuse, hang or fail on cue. The real transport to nodes is
//! the pool of HTTP/1.1 mutual-TLS connections of each connection worker
//! ([`rampart_net::pool::Http1Pool`]); a peer network's gateway is reached with the pooled
//! HTTP/2 client ([`rampart_net::client::HttpsClient`]).

use std::future::Future;
use std::pin::Pin;

use http::{Request, Response};
use rampart_net::Body;
use rampart_net::client::{HttpClient, HttpsClient};
use rampart_net::pool::Http1Pool;
use rampart_net::workers::PerWorker;

/// Why one request got no answer.
#[derive(Clone, Debug)]
pub struct SendError {
    /// Whether the target may have received it: false when it never did (the connection or the
    /// TLS handshake was refused), so that any request may be tried elsewhere.
    pub maybe_sent: bool,
    /// Why the target's certificate was refused, when that is what failed: somebody answers at
    /// a registered address without being the target registered there.
    pub refused_certificate: Option<String>,
    /// The error and its causes on one line, for the log.
    pub detail: String,
}

/// The answer to one request.
pub type Sent = Pin<Box<dyn Future<Output = Result<Response<Body>, SendError>> + Send>>;

/// Sends a request (its URI names the target's address) and returns the answer's head as soon
/// as it comes; the body streams.
pub trait Transport: Send + Sync {
    /// Sends `req`.
    fn send(&self, req: Request<Body>) -> Sent;
}

impl Transport for HttpsClient {
    fn send(&self, req: Request<Body>) -> Sent {
        sent(self.request(req))
    }
}

impl Transport for Http1Pool {
    fn send(&self, req: Request<Body>) -> Sent {
        let pool = self.clone();
        Box::pin(async move {
            pool.send(req).await.map_err(|e| SendError {
                maybe_sent: e.maybe_sent(),
                refused_certificate: e.handshake_error().and_then(refusal_in),
                detail: rampart_net::client::error_chain(&e),
            })
        })
    }
}

/// The pool of the connection worker the request runs on
/// ([`rampart_net::workers::PerWorker`]).
impl Transport for PerWorker<Http1Pool> {
    fn send(&self, req: Request<Body>) -> Sent {
        Transport::send(self.get(), req)
    }
}

/// Plain HTTP, for an edge route's app on loopback.
impl Transport for HttpClient {
    fn send(&self, req: Request<Body>) -> Sent {
        sent(self.request(req))
    }
}

/// The answer of a hyper client's request, as a [`Sent`].
fn sent(
    answer: impl Future<Output = Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>>
    + Send
    + 'static,
) -> Sent {
    Box::pin(async move {
        match answer.await {
            Ok(resp) => Ok(resp.map(rampart_net::serve::incoming)),
            Err(e) => Err(SendError {
                maybe_sent: !e.is_connect(),
                refused_certificate: certificate_refusal(&e),
                detail: rampart_net::client::error_chain(&e),
            }),
        }
    })
}

/// Why the target's certificate was refused, read from the typed TLS error inside the
/// connector's `io::Error`: its identity is not the one registered at the address, or its
/// certificate no longer holds (revoked, expired).
fn certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(why) = c.downcast_ref::<std::io::Error>().and_then(refusal_in) {
            return Some(why);
        }
        cause = c.source();
    }
    None
}

/// Why the target's certificate was refused, if the handshake error `e` says it was.
fn refusal_in(e: &std::io::Error) -> Option<String> {
    use rampart_net::refusal::HandshakeRefusal as R;
    match R::from_io(e)? {
        R::OtherDomain(why) | R::WrongRole(why) | R::BadIdentity(why) => Some(why),
        R::TimedOut | R::Protocol(_) => None,
        other => Some(other.kind().to_string()),
    }
}

//! The accept layer: TCP connections taken under a cap, a trusted forwarder's PROXY header
//! read, then each connection handed, unread past that header, to a [`Protocol`]. A protocol
//! may peek at the first bytes (a TLS ClientHello's SNI) before it chooses what to do: end
//! TLS and serve HTTP ([`crate::serve::Https`]), or relay the bytes elsewhere. On shutdown the
//! layer stops accepting, tells every connection to finish, and waits for them (bounded).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::proxy_header::ProxyProtocol;
use crate::refusal::HandshakeRefusal;
use crate::serve::{HandshakeObserver, Source};

/// One accepted connection, for a protocol to serve.
#[derive(Debug)]
pub struct Accepted {
    /// The stream, past any PROXY header: the first byte is the client's.
    pub tcp: TcpStream,
    /// Where it comes from.
    pub source: Source,
    /// When the protocol's own handshake must be done (one deadline with the PROXY header).
    pub handshake_deadline: Instant,
    /// Turns true when the server shuts down: finish what is in flight, take nothing new.
    pub stop: watch::Receiver<bool>,
}

/// The future a protocol serves a connection with.
pub type Serving<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What is spoken on accepted connections.
pub trait Protocol: Send + Sync {
    /// Serves `conn` until it ends, or until `conn.stop` turns true and it has drained.
    fn serve(&self, conn: Accepted) -> Serving<'_>;
}

/// Limits of the accept layer.
#[derive(Clone, Debug)]
pub struct AcceptLimits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time for the PROXY header (if any) and the protocol's handshake together.
    pub handshake_timeout: Duration,
    /// Time connections get to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Which peers send a PROXY protocol header (and only they may).
    pub proxy_protocol: ProxyProtocol,
}

/// Accepts on `listener` and hands each connection to `protocol` until `shutdown` completes;
/// then stops accepting and lets the connections finish (up to `drain_timeout`). A refused
/// PROXY header is told to `refused`.
pub async fn accept(
    listener: TcpListener,
    protocol: Arc<dyn Protocol>,
    limits: AcceptLimits,
    refused: Option<HandshakeObserver>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Connections watch `stop`; each holds a `done` sender, so the drain ends when all are gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
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
        let (protocol, limits, refused, stop, done) =
            (protocol.clone(), limits.clone(), refused.clone(), stop_rx.clone(), done_tx.clone());
        // On a connection worker when the process runs them ([`crate::workers`]).
        crate::workers::spawn_connection(tcp, move |tcp| async move {
            let _held = (permit, done);
            let deadline = Instant::now() + limits.handshake_timeout;
            if let Some(conn) =
                open(tcp, peer, deadline, &limits.proxy_protocol, refused.as_ref(), stop).await
            {
                protocol.serve(conn).await;
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    if tokio::time::timeout(limits.drain_timeout, done_rx.recv()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {:?}", limits.drain_timeout);
    }
}

/// Reads the PROXY header a trusted forwarder sends (refusing one that is missing, untrusted or
/// bad), within the handshake deadline.
async fn open(
    mut tcp: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    proxy: &ProxyProtocol,
    refused: Option<&HandshakeObserver>,
    stop: watch::Receiver<bool>,
) -> Option<Accepted> {
    let refusal = match tokio::time::timeout_at(deadline, proxy.client_addr(&mut tcp, peer)).await {
        Ok(Ok(client)) => {
            return Some(Accepted {
                tcp,
                source: Source { client, peer },
                handshake_deadline: deadline,
                stop,
            });
        }
        Ok(Err(refusal)) => HandshakeRefusal::ProxyHeader(refusal),
        Err(_) => HandshakeRefusal::TimedOut,
    };
    if let Some(o) = refused {
        o(peer.into(), refusal);
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Peeks at the first bytes, answers with what it saw, then reads them for real.
    struct Peek;

    impl Protocol for Peek {
        fn serve(&self, mut conn: Accepted) -> Serving<'_> {
            Box::pin(async move {
                let mut first = [0u8; 5];
                let n = conn.tcp.peek(&mut first).await.unwrap();
                let mut again = vec![0u8; n];
                conn.tcp.read_exact(&mut again).await.unwrap();
                let answer =
                    format!("{}|{}", String::from_utf8_lossy(&first[..n]), String::from_utf8_lossy(&again));
                conn.tcp.write_all(answer.as_bytes()).await.unwrap();
                // Held open until the server stops.
                let _ = conn.stop.wait_for(|stop| *stop).await;
            })
        }
    }

    async fn ask(addr: SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = vec![0u8; 11];
        c.read_exact(&mut buf).await.unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[tokio::test]
    async fn a_protocol_may_peek_the_cap_holds_and_shutdown_drains() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = AcceptLimits {
            max_connections: 1,
            handshake_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            proxy_protocol: ProxyProtocol::default(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(accept(listener, Arc::new(Peek), limits, None, async {
            let _ = stop_rx.await;
        }));
        assert_eq!(ask(addr).await, "hello|hello", "peeked bytes are still there to read");
        // The one permit is held by the first connection: the second waits in the backlog
        // (what is checked is that nothing happens, so this waits a little, bounded).
        let second = tokio::spawn(ask(addr));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "a second connection was served past the cap");
        // Shutting down tells the first to finish; the server returns once it has.
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
        second.abort(); // never served: the listener closed with it in the backlog
    }
}

//! Passthrough: a front listener that reads each ClientHello without ending TLS
//! ([`crate::hello`]) and, by the server name it asks for, relays the connection untouched to
//! a node that terminates it with its own certificate, ends TLS here as any listener does, or
//! refuses it. A relayed connection starts with a PROXY protocol v2 header, so the node knows
//! the client's address; until the node has answered its first byte, nothing has reached the
//! client, so a node that fails before that is replaced by the next one (the buffered
//! ClientHello is sent again, and whatever the client sent after it is still unread).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::accept::{Accepted, Protocol, Serving};
use crate::hello::{HelloError, read_client_hello};
use crate::serve::{Https, Source};

/// The longest a client may take to send its whole ClientHello (when the listener's handshake
/// deadline is not sooner): a browser sends it at once, so longer is an attack on the relay's
/// connection slots.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do with a connection, by the server name of its ClientHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// End TLS here (a name of this listener's own, or none).
    Terminate,
    /// Relay to one of these, in this order (a route's live nodes).
    Relay(Vec<SocketAddr>),
    /// Neither: refused, for this reason.
    Refuse(String),
}

/// Why a connection was not served.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughRefusal {
    /// No whole ClientHello (or none at all) in time.
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// A server name nothing here answers for.
    #[error("{0}")]
    Name(String),
    /// No node of the route could be reached before the client got a byte.
    #[error("no node of the route answered: {0}")]
    Unavailable(String),
}

/// The routes a listener relays, and who hears its refusals.
pub trait Relays: Send + Sync {
    /// What to do with a ClientHello asking for `server_name`.
    fn decide(&self, server_name: Option<&str>) -> Decision;
    /// A connection from `source` was refused (an event for the operator).
    fn refused(&self, source: Source, refusal: &PassthroughRefusal);
}

/// The protocol of a listener with passthrough routes.
pub struct SniRouter {
    https: Arc<Https>,
    relays: Arc<dyn Relays>,
    connect_timeout: Duration,
    drain_timeout: Duration,
}

impl std::fmt::Debug for SniRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniRouter").field("https", &self.https).finish_non_exhaustive()
    }
}

impl SniRouter {
    /// Relays what `relays` says, ends TLS with `https` otherwise; each node gets
    /// `connect_timeout` to accept, and relayed connections `drain_timeout` to end once the
    /// listener stops.
    pub fn new(
        https: Arc<Https>,
        relays: Arc<dyn Relays>,
        connect_timeout: Duration,
        drain_timeout: Duration,
    ) -> Self {
        SniRouter { https, relays, connect_timeout, drain_timeout }
    }

    async fn run(&self, mut conn: Accepted) {
        let deadline = conn.handshake_deadline.min(tokio::time::Instant::now() + HELLO_TIMEOUT);
        let hello = match read_client_hello(&mut conn.tcp, deadline).await {
            Ok(h) => h,
            Err(HelloError::Closed) => return,
            Err(e) => return self.relays.refused(conn.source, &e.into()),
        };
        match self.relays.decide(hello.server_name.as_deref()) {
            Decision::Terminate => self.https.serve_after_hello(conn, hello.bytes).await,
            Decision::Refuse(why) => self.relays.refused(conn.source, &PassthroughRefusal::Name(why)),
            Decision::Relay(targets) => {
                let Some((node, first)) = self.reach(&conn, &hello.bytes, &targets).await else {
                    let name = hello.server_name.as_deref().unwrap_or_default();
                    let why = match targets.len() {
                        0 => format!("{name}: none is in the pool"),
                        n => format!("{name}: {n} tried"),
                    };
                    return self.relays.refused(conn.source, &PassthroughRefusal::Unavailable(why));
                };
                self.relay(conn, node, first).await;
            }
        }
    }

    /// The first node of `targets` that takes the PROXY header and the ClientHello and answers
    /// a first byte before the handshake's deadline, with that byte (or bytes).
    async fn reach(
        &self,
        conn: &Accepted,
        hello: &[u8],
        targets: &[SocketAddr],
    ) -> Option<(TcpStream, Vec<u8>)> {
        let local = conn.tcp.local_addr().ok()?;
        // The header and the ClientHello in one write: one segment, where two would cost the
        // node a wakeup more.
        let mut opening = proxy_v2(conn.source.client, local)?;
        opening.extend_from_slice(hello);
        for &addr in targets {
            let attempt = async {
                let mut node =
                    tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await.ok()?.ok()?;
                let _ = node.set_nodelay(true);
                node.write_all(&opening).await.ok()?;
                let mut first = vec![0u8; 16 * 1024];
                let n = node.read(&mut first).await.ok()?;
                (n > 0).then(|| {
                    first.truncate(n);
                    (node, first)
                })
            };
            match tokio::time::timeout_at(conn.handshake_deadline, attempt).await {
                Ok(Some(reached)) => return Some(reached),
                Ok(None) => {
                    tracing::warn!("passthrough: node {addr} failed before answering; trying the next")
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Relays both ways until either side closes, or the drain after a stop ends.
    async fn relay(&self, conn: Accepted, mut node: TcpStream, first: Vec<u8>) {
        let Accepted { mut tcp, mut stop, .. } = conn;
        if tcp.write_all(&first).await.is_err() {
            return;
        }
        let drain = self.drain_timeout;
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut tcp, &mut node) => {}
            () = async {
                let _ = stop.wait_for(|s| *s).await;
                tokio::time::sleep(drain).await;
            } => {}
        }
    }
}

/// A PROXY protocol v2 header saying the connection comes from `client` to `local`.
fn proxy_v2(client: SocketAddr, local: SocketAddr) -> Option<Vec<u8>> {
    use ppp::v2::{Builder, Command, Protocol as Transport, Version};
    // One family for both ends, as the header requires.
    let local = match (client, local) {
        (SocketAddr::V6(_), SocketAddr::V4(l)) => SocketAddr::from((l.ip().to_ipv6_mapped(), l.port())),
        (SocketAddr::V4(_), SocketAddr::V6(l)) => SocketAddr::from((l.ip().to_ipv4_mapped()?, l.port())),
        _ => local,
    };
    Builder::with_addresses(Version::Two | Command::Proxy, Transport::Stream, (client, local)).build().ok()
}

impl Protocol for SniRouter {
    fn serve(&self, conn: Accepted) -> Serving<'_> {
        Box::pin(self.run(conn))
    }
}

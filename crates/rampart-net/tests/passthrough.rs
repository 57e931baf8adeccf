//! Passthrough in-process, with real TLS on 127.0.0.1: a listener relays a ClientHello naming a
//! route to a stand-in node (its own certificate, the client's address from the PROXY v2
//! header), passing over a dead node first; ends TLS itself for its own name; refuses other
//! names; reads a ClientHello sent one byte at a time and one over 1.5 KB; and gives up on one
//! never finished at the deadline. Each refusal is heard.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_net::accept::{AcceptLimits, accept};
use rampart_net::passthrough::{Decision, PassthroughRefusal, Relays, SniRouter};
use rampart_net::proxy_header::ProxyProtocol;
use rampart_net::serve::{Https, Observers, ServeLimits};
use rampart_net::{Handler, Source, full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

fn certificate(name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (CertificateDer::from(made.cert.der().to_vec()), key)
}

/// HTTPS answering `who` and the client's address as the connection says.
fn https(cert: &(CertificateDer<'static>, PrivateKeyDer<'static>), who: &'static str) -> Arc<Https> {
    let mut tls = rustls::ServerConfig::builder_with_provider(rampart_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0.clone()], cert.1.clone_key())
        .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let handler: Handler = Arc::new(move |_req, conn| {
        Box::pin(async move { http::Response::new(full(format!("{who} {}", conn.remote))) })
    });
    Arc::new(Https::new(Arc::new(tls), handler, ServeLimits::default(), Observers::default()))
}

/// A front listener on loopback relaying by `routes`, ending TLS with `https` otherwise.
async fn front(https: Arc<Https>, routes: Arc<Routes>) -> SocketAddr {
    let router = SniRouter::new(https, routes, Duration::from_millis(500), Duration::from_secs(1));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(accept(listener, Arc::new(router), limits(""), None, std::future::pending()));
    addr
}

fn limits(proxy_from: &str) -> AcceptLimits {
    AcceptLimits {
        max_connections: 16,
        handshake_timeout: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(1),
        proxy_protocol: ProxyProtocol::new(if proxy_from.is_empty() {
            vec![]
        } else {
            vec![proxy_from.parse().unwrap()]
        }),
    }
}

struct Routes {
    targets: Vec<SocketAddr>,
    refused: Mutex<Vec<String>>,
}

impl Relays for Routes {
    fn decide(&self, name: Option<&str>) -> Decision {
        match name {
            Some("hello.example.test") => Decision::Relay(self.targets.clone()),
            None | Some("localhost") => Decision::Terminate,
            Some(other) => Decision::Refuse(format!("no route for {other:?}")),
        }
    }
    fn refused(&self, _source: Source, refusal: &PassthroughRefusal) {
        self.refused.lock().unwrap().push(refusal.to_string());
    }
}

/// Writes at most one byte per write: a ClientHello in as many segments as it has bytes.
struct Trickle(TcpStream);

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let one = &buf[..buf.len().min(1)];
        Pin::new(&mut self.0).poll_write(cx, one)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// GET / over TLS to `addr` asking for `name`, trusting `cert`; the answer's body, or why not.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: S,
    name: &str,
    cert: &CertificateDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(rampart_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = alpn;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = connector.connect(server_name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    // The trickling stream takes the records a byte at a time: flushed, they all go.
    tls.flush().await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[tokio::test]
async fn connections_are_relayed_by_name_terminated_here_or_refused() {
    let (node_cert, gateway_cert) = (certificate("hello.example.test"), certificate("localhost"));
    // The node: its own certificate; the client's address from the gateway's PROXY header.
    let node_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = node_listener.local_addr().unwrap();
    tokio::spawn(accept(
        node_listener,
        https(&node_cert, "node"),
        limits("127.0.0.0/8"),
        None,
        std::future::pending(),
    ));
    // A node that is gone: its port refuses connections.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let routes = Arc::new(Routes { targets: vec![dead, node_addr], refused: Mutex::default() });
    let addr = front(https(&gateway_cert, "gateway"), routes.clone()).await;

    // Relayed: the node's certificate, and the node knows the client's own address.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let seen = get(tcp, "hello.example.test", &node_cert.0, vec![]).await.unwrap();
    assert_eq!(seen, format!("node {client}"));
    // One byte at a time, and a ClientHello over 1.5 KB: relayed all the same.
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let trickled = get(Trickle(tcp), "hello.example.test", &node_cert.0, vec![]).await.unwrap();
    assert!(trickled.starts_with("node "), "{trickled:?}");
    // Twelve made-up protocols of 200 bytes before HTTP/1.1: a ClientHello of about 2.6 KB.
    let big: Vec<Vec<u8>> =
        (0..12).map(|i| vec![b'a' + i; 200]).chain(std::iter::once(b"http/1.1".to_vec())).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(get(tcp, "hello.example.test", &node_cert.0, big).await.unwrap().starts_with("node "));
    // The listener's own name: TLS ends here.
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(get(tcp, "localhost", &gateway_cert.0, vec![]).await.unwrap().starts_with("gateway "));
    assert!(routes.refused.lock().unwrap().is_empty(), "{:?}", routes.refused.lock().unwrap());

    // Another name: refused, and heard.
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(get(tcp, "other.example.test", &gateway_cert.0, vec![]).await.is_err());
    // Half a ClientHello, then nothing: closed at the deadline (2 s), and heard.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), half.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(1500), "closed after {:?}", started.elapsed());
    let refused = routes.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].contains("other.example.test") && refused[1].contains("not finished in time"),
        "{refused:?}"
    );

    // Every node gone: refused as unavailable before the client saw a byte.
    let gone = Arc::new(Routes { targets: vec![dead], refused: Mutex::default() });
    let lonely = front(https(&gateway_cert, "gateway"), gone.clone()).await;
    assert!(
        get(TcpStream::connect(lonely).await.unwrap(), "hello.example.test", &node_cert.0, vec![])
            .await
            .is_err()
    );
    assert!(gone.refused.lock().unwrap()[0].contains("no node of the route answered"));
}

//! A ClientHello read to learn its server name, then handed back: the TLS handshake over the
//! rewound stream completes and HTTP is served, as if nothing had been read (what a listener
//! with passthrough routes does for the names it terminates itself).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_net::accept::{AcceptLimits, Accepted, Protocol, Serving, accept};
use rampart_net::serve::{Https, Observers, ServeLimits};
use rampart_net::{Handler, full};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads the ClientHello, counts the names asked for, then serves HTTPS over the rewound stream.
struct ReadThenServe {
    https: Https,
    named: AtomicUsize,
}

impl Protocol for ReadThenServe {
    fn serve(&self, mut conn: Accepted) -> Serving<'_> {
        Box::pin(async move {
            let hello =
                rampart_net::hello::read_client_hello(&mut conn.tcp, conn.handshake_deadline).await.unwrap();
            if hello.server_name.as_deref() == Some("localhost") {
                self.named.fetch_add(1, Ordering::Relaxed);
            }
            self.https.serve_after_hello(conn, hello.bytes).await;
        })
    }
}

#[tokio::test]
async fn a_handshake_over_the_bytes_put_back_completes_and_serves() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let mut server = rustls::ServerConfig::builder_with_provider(rampart_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let handler: Handler =
        Arc::new(|_req, _conn| Box::pin(async { http::Response::new(full("served after hello")) }));
    let protocol = Arc::new(ReadThenServe {
        https: Https::new(Arc::new(server), handler, ServeLimits::default(), Observers::default()),
        named: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = AcceptLimits {
        max_connections: 8,
        handshake_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(1),
        proxy_protocol: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(accept(listener, protocol.clone(), limits, None, async {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(rampart_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for _ in 0..3 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("served after hello"), "{answer}");
    }
    assert_eq!(protocol.named.load(Ordering::Relaxed), 3);
    stop.send(()).unwrap();
    served.await.unwrap();
}

//! The pool of HTTP/1.1 connections a gateway sends its nodes' requests on, against a real TLS
//! server on loopback that counts the connections it is given: a connection is reused once its
//! answer was read whole, never while the answer is unread, and one its server closed is
//! replaced without the request failing.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rampart_net::full;
use rampart_net::pool::{Http1Pool, PoolError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS server answering `/big` with 1 MiB and anything else with its path; `keep_alive`
/// false closes each connection after its answer.
async fn server(keep_alive: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(rampart_net::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let answer = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = match req.uri().path() {
                        "/big" => Bytes::from(vec![b'x'; 1 << 20]),
                        path => Bytes::from(format!("{path} {}", req.headers()["host"].to_str().unwrap())),
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(body)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(tls), answer)
                    .await;
            });
        }
    });
    (addr, connections)
}

fn pool() -> Http1Pool {
    Http1Pool::new(rampart_net::tls::unverified_client_config().unwrap(), Duration::from_secs(2))
}

async fn get(pool: &Http1Pool, addr: SocketAddr, path: &str) -> Result<String, PoolError> {
    let req = Request::get(format!("https://{addr}{path}")).body(full("")).unwrap();
    let resp = pool.send(req).await?;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another_in_origin_form_with_a_host() {
    let (addr, connections) = server(true).await;
    let pool = pool();
    for i in 0..5 {
        assert_eq!(get(&pool, addr, &format!("/n/{i}?q=1")).await.unwrap(), format!("/n/{i} {addr}"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn a_connection_whose_answer_is_unread_is_not_reused_and_the_next_request_gets_its_own() {
    let (addr, connections) = server(true).await;
    let pool = pool();
    let req = Request::get(format!("https://{addr}/big")).body(full("")).unwrap();
    let unread = pool.send(req).await.unwrap();
    assert_eq!(get(&pool, addr, "/a").await.unwrap(), format!("/a {addr}"));
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    // Dropped before its end: that connection is not given back.
    drop(unread);
    assert_eq!(pool.idle_count(), 1);
    assert_eq!(get(&pool, addr, "/b").await.unwrap(), format!("/b {addr}"));
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_its_server_closed_is_replaced_and_no_request_fails() {
    let (addr, connections) = server(false).await;
    let pool = pool();
    for i in 0..4 {
        assert_eq!(get(&pool, addr, &format!("/{i}")).await.unwrap(), format!("/{i} {addr}"));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn what_cannot_be_reached_is_an_error_that_says_the_request_was_not_sent() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let pool = pool();
    let refused = get(&pool, free, "/").await.unwrap_err();
    assert!(matches!(refused, PoolError::Connect { .. }) && !refused.maybe_sent(), "{refused:?}");
    let req = Request::get("https://localhost:1/").body(full("")).unwrap();
    let named = pool.send(req).await.unwrap_err();
    assert!(matches!(named, PoolError::NotAnAddress(_)) && !named.maybe_sent(), "{named:?}");
    // A server that is not TLS: the handshake fails, and nothing was sent.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = plain.accept().await.unwrap();
        let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let handshake = get(&pool, plain_addr, "/").await.unwrap_err();
    assert!(matches!(handshake, PoolError::Handshake { .. }) && !handshake.maybe_sent(), "{handshake:?}");
    assert!(handshake.handshake_error().is_some());
}

//! Attacks on the HTTP layer: method case against a deny rule, dot segments, an over-long
//! URI, an oversized head, the idle connection that must not count as one, and early refusals
//! of requests with a body over HTTP/2.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Network, ok};
use crate::{curl, events_of, field, wait_events};

#[test]
fn lower_and_mixed_case_methods_cannot_slip_past_a_deny_rule() {
    let net = Network::start(1, &[]);
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    ok(
        &net.home,
        &["policy", "deny", "--service", "echo", "--principal", "user/alice", "--method", "DELETE"],
    );
    let denied = curl(&net, &["-X", "DELETE"], "/echo/x", Some(&token));
    assert_eq!(denied.status, 403, "{denied:?}");
    for method in ["delete", "Delete", "dElEtE"] {
        let r = curl(&net, &["-X", method], "/echo/x", Some(&token));
        assert_eq!((r.status, field(&r.body, "error").as_str()), (400, "bad_method"), "{method}: {r:?}");
    }
    wait_events(&net, "bad_method", 3, |_| true);
    // A well-behaved client: the method the service receives is the one policy judged.
    let r = curl(&net, &[], "/echo/x", Some(&token));
    assert_eq!((r.status, field(&r.body, "method").as_str()), (200, "GET"), "{r:?}");
}

#[test]
fn dot_segments_are_normalised_and_never_leave_the_service() {
    let net = Network::start(1, &[]);
    // (path sent, what the node's echo receives; None: refused with 400)
    let cases: [(&str, Option<&str>); 12] = [
        ("/echo/a/../b", Some("/b")),
        ("/echo/a/./b/%2e%2E/c", Some("/a/c")),
        ("/echo/a/%2E/b/.", Some("/a/b/")),
        ("/echo/../x", None),
        ("/echo/%2e%2e", None),
        ("/echo/%2e%2e/%2E%2E/etc/passwd", None),
        ("/echo/..%2f..%2fetc%2fpasswd", None),
        ("/echo/a%2Fb", None),
        ("/echo/a%5c..%5cb", None),
        ("/echo/a%00b", None),
        ("/echo/a%zzb", None),
        ("/hello/../echo/x", None),
    ];
    let mut refused = 0;
    for proto in ["--http1.1", "--http2"] {
        for (path, expected) in cases {
            let r = curl(&net, &[proto], path, None);
            match expected {
                Some(seen) => {
                    assert_eq!(r.status, 200, "{proto} {path}: {r:?}");
                    assert_eq!(
                        field(&r.body, "path"),
                        seen,
                        "{proto} {path}: the node received another path"
                    );
                }
                None => {
                    assert_eq!(
                        (r.status, field(&r.body, "error").as_str()),
                        (400, "bad_path"),
                        "{proto} {path}: {r:?}"
                    );
                    refused += 1;
                }
            }
        }
    }
    wait_events(&net, "bad_path", refused, |e| e["reason"].as_str().is_some_and(|r| r.contains("path_")));
    let r = curl(&net, &[], "/echo/a/b%20c", None);
    assert_eq!((r.status, field(&r.body, "path").as_str()), (200, "/a/b%20c"), "{r:?}");
}

#[test]
fn a_uri_over_the_limit_is_414_on_both_protocols() {
    let net = Network::start(1, &[]);
    let long = format!("/hello?q={}", "x".repeat(9000));
    for proto in ["--http1.1", "--http2"] {
        let r = curl(&net, &[proto], &long, None);
        assert_eq!((r.exit, r.status), (Some(0), 414), "{proto}: {r:?}");
        assert_eq!(field(&r.body, "error"), "uri_too_long", "{proto}: {r:?}");
    }
    wait_events(&net, "uri_too_long", 2, |_| true);
    assert!(events_of(&net, "header_too_large").is_empty(), "a long URI was counted as a large head");
    assert_eq!(curl(&net, &[], "/hello", None).body, "Hello World!");
}

#[test]
fn a_70_kb_header_is_answered_431_and_the_client_reads_it() {
    let net = Network::start(1, &[]);
    let big = format!("X-Big: {}", "a".repeat(70_000));
    // curl read the answer: exit 0, not a broken pipe (55) or a refused stream (16, 92).
    let r = curl(&net, &["--http1.1", "-H", &big], "/hello", None);
    assert_eq!((r.exit, r.status), (Some(0), 431), "HTTP/1.1: {r:?}");
    // curl (nghttp2) sends no header block over 64 KiB itself; 40 KB is past our limit and past
    // the protocol-level list size h2 would refuse the stream at.
    let r = curl(&net, &["--http2", "-H", &format!("X-Big: {}", "a".repeat(40_000))], "/hello", None);
    assert_eq!((r.exit, r.status), (Some(0), 431), "HTTP/2: {r:?}");
    // 70 KB over HTTP/2 from a client that sends it: a 431 on the stream as well.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = rt.block_on(async {
        let client = crate::support::admin_client(&net.home);
        let req = ::http::Request::get(format!("{}/hello", net.url))
            .header("x-big", "a".repeat(70_000))
            .body(rampart_net::full(""))
            .unwrap();
        client.request(req).await.map(|r| (r.version(), r.status().as_u16())).map_err(|e| format!("{e:#}"))
    });
    assert_eq!(answer, Ok((::http::Version::HTTP_2, 431)));
    wait_events(&net, "header_too_large", 3, |_| true);
    assert_eq!(curl(&net, &["--http2"], "/hello", None).body, "Hello World!");
}

/// A raw HTTP/1.1-over-TLS connection to the gateway with the admin certificate.
async fn connect(net: &Network) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let config = crate::tls_as(net, "admin");
    let addr = net.url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// Sends `GET /hello` on `tls` and reads the answer up to its body.
async fn hello(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    tls.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"Hello World!") {
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn an_idle_keep_alive_connection_is_not_a_slow_client_and_closes_quietly() {
    let net = Network::start_with(1, &[], &[("header_timeout", "\"500ms\""), ("idle_timeout", "\"2500ms\"")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut tls = connect(&net).await;
        assert!(hello(&mut tls).await.starts_with("HTTP/1.1 200"));
        // Idle between requests for longer than the header timeout (the idling is what is
        // under test here, so it is a sleep): still served on the same connection.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(hello(&mut tls).await.starts_with("HTTP/1.1 200"));
        // Idle long enough for the gateway to let go of the connection's buffers, then two
        // requests in one write: both answered, in order, on the same connection.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let two =
            b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";
        tls.write_all(two).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.windows(12).filter(|w| w == b"Hello World!").count() < 2 {
            let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before both answers: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got).matches("HTTP/1.1 200").count(), 2);
        // HTTP/1.0 without keep-alive: answered, then closed by the gateway.
        let mut old = connect(&net).await;
        old.write_all(b"GET /hello HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), old.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "an HTTP/1.0 connection was not closed after its answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.0 200") && answer.ends_with("Hello World!"), "{answer}");
        // Idle past the idle timeout: closed, quietly.
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection was never closed: {read:?}");
    });
    assert!(events_of(&net, "slow_client").is_empty(), "idling was reported as a slow client");
    // A head that trickles is still a slow client.
    rt.block_on(async {
        let mut tls = connect(&net).await;
        tls.write_all(b"GET /hel").await.unwrap();
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
    });
    wait_events(&net, "slow_client", 1, |_| true);
}

#[test]
fn a_ban_on_a_nodes_address_does_not_drop_the_node() {
    let net = Network::start_with(1, &[], &[("ban_after_failures", "5")]);
    // An attacker on the node's machine (here: 127.0.0.1) fails to authenticate five times.
    for _ in 0..5 {
        let r = curl(&net, &[], "/hello", Some("rpt_guessed"));
        assert_eq!(r.status, 401, "{r:?}");
    }
    wait_events(&net, "banned", 1, |e| e["source"] == "127.0.0.1");
    assert_eq!(curl(&net, &[], "/hello", Some("rpt_guessed")).status, 403, "not banned");
    // The node keeps heartbeating through the ban past its 3 s lease: it never leaves the pool.
    let left = net.eventually(Duration::from_secs(5), || {
        !events_of(&net, "lease_expired").is_empty() || net.node_count() != 1
    });
    assert!(!left, "the ban took the node out of the pool");
    assert_eq!(curl(&net, &[], "/hello", None).body, "Hello World!");
}

/// A request with a body refused before the body was read (an unknown service, a bad token, a
/// policy refusal) is answered over HTTP/2 — not reset, which curl reported as a framing error
/// instead of the status — and a large one costs the gateway a bounded read.
#[test]
fn an_early_refusal_of_a_request_with_a_body_is_answered_over_http2() {
    let net = Network::start(1, &[]);
    let alice = net.user("alice");
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, vec![b'x'; 1000]).unwrap();
    let data = format!("@{}", small.display());
    let post = ["--http2", "--data-binary", data.as_str()];
    // Ten times: unread, the stream was reset in a race with the answer (most times, not all).
    for _ in 0..10 {
        let unknown = curl(&net, &post, "/nope/x", None);
        let got = (unknown.exit, unknown.status, field(&unknown.body, "error"));
        assert_eq!(got, (Some(0), 404, "unknown_service".to_owned()));
    }
    let bad_token = curl(&net, &post, "/hello", Some("rpt_wrong"));
    assert_eq!((bad_token.exit, bad_token.status), (Some(0), 401), "{bad_token:?}");
    let denied = curl(&net, &post, "/echo", Some(&alice));
    assert_eq!(
        (denied.exit, denied.status, field(&denied.body, "error").as_str()),
        (Some(0), 403, "forbidden")
    );
    let admin_api = curl(&net, &post, "/_rampart/status", Some(&alice));
    assert_eq!((admin_api.exit, admin_api.status), (Some(0), 403), "{admin_api:?}");
    // 4 MiB to an unknown service: the gateway reads at most 64 KiB of it, and does not hang.
    let large = dir.path().join("large");
    std::fs::write(&large, vec![b'x'; 4 << 20]).unwrap();
    let data = format!("@{}", large.display());
    let started = std::time::Instant::now();
    let _ = curl(&net, &["--http2", "--data-binary", data.as_str()], "/nope/x", None);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(curl(&net, &[], "/hello", None).status, 200, "and others are served");
}

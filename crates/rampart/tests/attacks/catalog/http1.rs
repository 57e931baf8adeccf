//! HTTP/1.1 abuse, as raw bytes over TLS: request smuggling (ambiguous lengths and encodings),
//! malformed heads, oversized and slow heads and bodies.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::{Attack, Case, Cred, Expect, Seen, Target, curl, read_all, run, tls_from};
use crate::support::Network;

/// A raw request, `Connection: close` added, its head ending and then `body`.
fn request(head: &str, body: &str) -> Attack {
    Attack::Raw(format!("{head}\r\nHost: localhost\r\nConnection: close\r\n\r\n{body}").into_bytes())
}

/// A smuggling attempt, as the admin: a POST with `framing` headers and `body`, then a request
/// for `/hello` that only a desynchronised parser would see. One answer comes back at most,
/// and the parser's refusal is an event.
fn smuggle(name: &str, framing: &str, body: &str) -> Case {
    let bytes = format!(
        "POST /echo/ HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n\r\n{body}GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
    );
    Case::new(
        name,
        Attack::Custom(Box::new(move |net, from| {
            let Some(mut tls) = tls_from(net, from, Some(admin(net))) else { return Seen::default() };
            let _ = tls.write_all(bytes.as_bytes()).and_then(|()| tls.flush());
            Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
        })),
        Expect::OneAnswer,
        Some("malformed_request"),
    )
}

/// Bytes sent one at a time, a pause between each: the connection is closed once the head
/// (or body) is overdue.
fn slowly(head: &'static str, pause: Duration) -> Attack {
    Attack::Custom(Box::new(move |net, from| {
        let Some(mut tls) = tls_from(net, from, None) else { return Seen::default() };
        let start = Instant::now();
        for b in head.as_bytes() {
            if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err()
                || start.elapsed() > Duration::from_secs(20)
            {
                break;
            }
            std::thread::sleep(pause); // the slow client itself
        }
        Seen::of_raw(read_all(&mut tls, Duration::from_secs(5)))
    }))
}

#[test]
fn http1() {
    let settings = [("header_timeout", "\"2s\""), ("body_idle_timeout", "\"1s\"")];
    let net = Network::start_with(1, &[], &settings);
    let big = format!("X-Big: {}", "a".repeat(9000));
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = vec![
        // Taken as chunked (RFC 9112 §6.1), and the connection closed after it: no event.
        Case {
            event: None,
            ..smuggle(
                "Content-Length and Transfer-Encoding both",
                "Content-Length: 4\r\nTransfer-Encoding: chunked",
                "0\r\n\r\n",
            )
        },
        smuggle("two different Content-Lengths", "Content-Length: 0\r\nContent-Length: 44", ""),
        smuggle("a Content-Length list", "Content-Length: 0, 44", ""),
        smuggle("a negative Content-Length", "Content-Length: -1", ""),
        smuggle("a Content-Length with a plus sign", "Content-Length: +0", ""),
        smuggle("an obfuscated Transfer-Encoding", "Transfer-Encoding: xchunked", ""),
        smuggle(
            "Transfer-Encoding with a space before the colon",
            "Transfer-Encoding : chunked\r\nContent-Length: 0",
            "",
        ),
        smuggle("a chunked coding that is not last", "Transfer-Encoding: chunked, identity", "0\r\n\r\n"),
        smuggle("a bad chunk size", "Transfer-Encoding: chunked", "zz\r\n\r\n"),
        smuggle("a chunk size with a bare LF", "Transfer-Encoding: chunked", "0\n\n"),
        Case::new(
            "a header without a colon",
            request("GET /hello HTTP/1.1\r\nNoColon", ""),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "an obs-folded header",
            request("GET /hello HTTP/1.1\r\nX-A: a\r\n b", ""),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "a NUL in a header value",
            request("GET /hello HTTP/1.1\r\nX-A: a\0b", ""),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "a bare CR in the request line",
            request("GET /hello\rX HTTP/1.1", ""),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "HTTP/2 by prior knowledge on an HTTP/1.1 connection",
            Attack::Raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
            Expect::NoAnswer,
            None,
        ),
        Case::new(
            "an unknown protocol version",
            request("GET /hello HTTP/9.9", ""),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "a CONNECT tunnel",
            request("CONNECT 127.0.0.1:22 HTTP/1.1", ""),
            Expect::Status(400),
            Some("bad_method"),
        ),
        Case::new(
            "an absolute URI for another host",
            request("GET https://example.com/hello HTTP/1.1", ""),
            Expect::Status(401),
            Some("unauthenticated"),
        ),
        Case::new(
            "a request line over the URI limit",
            request(&format!("GET /echo/{} HTTP/1.1", "a".repeat(9000)), ""),
            Expect::Status(414),
            Some("uri_too_long"),
        ),
        Case::new(
            "a header over the head limit",
            request(&format!("GET /hello HTTP/1.1\r\n{big}"), ""),
            Expect::Status(431),
            Some("header_too_large"),
        ),
        Case::new(
            "150 headers",
            request(&format!("GET /hello HTTP/1.1\r\n{}", many.trim_end()), ""),
            Expect::Status(431),
            Some("header_too_large"),
        ),
        Case::new(
            "a head sent a byte a second",
            slowly("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", Duration::from_millis(700)),
            Expect::NoAnswer,
            Some("slow_client"),
        ),
        Case::new(
            "a body that stops halfway",
            Attack::Custom(Box::new(|net, from| {
                let Some(mut tls) = tls_from(net, from, None) else { return Seen::default() };
                let _ = tls.write_all(b"POST /echo/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer x\r\nContent-Length: 100\r\n\r\nhalf");
                let _ = tls.flush();
                Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
            })),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "a body that stops halfway, authenticated",
            Attack::Custom(Box::new(|net, from| {
                let Some(mut tls) = tls_from(net, from, Some(admin(net))) else { return Seen::default() };
                let _ = tls
                    .write_all(b"POST /echo/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nhalf");
                let _ = tls.flush();
                Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
            })),
            Expect::Status(408),
            Some("slow_client"),
        ),
        Case::new(
            "a declared body over the limit",
            curl(
                Cred::Admin,
                "/echo/",
                &["--http1.1", "-H", "Expect: 100-continue", "-H", "Content-Length: 9000000", "-d", "x"],
            ),
            Expect::Status(413),
            Some("too_large"),
        ),
        Case::new(
            "a chunked body over the limit",
            Attack::Custom(Box::new(|net, from| {
                let Some(mut tls) = tls_from(net, from, Some(admin(net))) else { return Seen::default() };
                let _ = tls.write_all(
                    b"POST /echo/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
                for _ in 0..160 {
                    if tls.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
                let _ = tls.write_all(b"0\r\n\r\n");
                let _ = tls.flush();
                Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
            })),
            Expect::Status(413),
            Some("too_large"),
        ),
    ];
    run("http1", 5, &Target::new(&net, &[]), cases);
}

/// The admin's certificate, as a TLS client presents it.
pub(super) fn admin(net: &Network) -> rampart_net::tls::LiveIdentity {
    let id = crate::tls::from_files(&net.pki_file("admin.pem"), &net.pki_file("admin.key"));
    rampart_net::tls::LiveIdentity::new(id.chain, id.key).unwrap()
}

//! Passthrough: ClientHellos that are not TLS, too large, unfinished, without a name or with an
//! unknown one; a request whose Host is not its SNI (coalescing); the route's service through
//! the gateway's own TLS; a client dialling the node's public listener directly.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use super::{Attack, Case, Expect, Seen, Target, bind_connect, read_all, run};
use crate::support::passthrough::{NAME, Passthrough};

/// `curl https://NAME:PORT/PATH` of `listener` from `from`, as the admin, with `args`.
fn by_name(listener: String, path: &'static str, args: &'static [&'static str]) -> Attack {
    named(Some(NAME), listener, path, args)
}

/// `curl https://HOST:PORT/PATH` of `listener`: `name` as the host (and the SNI), or the
/// address (no SNI).
fn named(
    name: Option<&'static str>,
    listener: String,
    path: &'static str,
    args: &'static [&'static str],
) -> Attack {
    Attack::Custom(Box::new(move |net, from| {
        let port = listener.rsplit(':').next().unwrap_or("0").to_owned();
        let host = name.unwrap_or("127.0.0.1");
        let issued = net.home.join("pki/local/issued");
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--interface", &from.to_string()])
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), "--cacert"])
            .arg(net.home.join("pki/local/ca.pem"))
            .arg("--cert")
            .arg(issued.join("admin.pem"))
            .arg("--key")
            .arg(issued.join("admin.key"))
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(format!("https://{host}:{port}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        Seen { status: code.trim().parse().ok().filter(|s| *s != 0), text: body.to_owned() }
    }))
}

/// `bytes` to `to` over plain TCP from `from`, then what comes back within 10 s.
fn send(to: SocketAddr, bytes: Vec<u8>) -> Attack {
    Attack::Custom(Box::new(move |_, from: IpAddr| {
        let Some(mut tcp) = bind_connect(from, to) else { return Seen::default() };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = tcp.write_all(&bytes);
        Seen::of_raw(read_all(&mut tcp, Duration::from_secs(10)))
    }))
}

/// A TLS record header announcing a handshake of `len` bytes, and `body`.
fn record(len: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x16, 0x03, 0x01];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn passthrough() {
    // A node for the well-behaved client's hello first (Network counts only its own), then the
    // route's node.
    let mut p = Passthrough::start(0);
    p.net.add_node("h1", &["--service", "hello"]);
    p.add_node("n1");
    let main: SocketAddr = p.main.parse().unwrap();
    let relay: SocketAddr = p.relay.parse().unwrap();
    let public: SocketAddr = p.nodes[0].2.parse().unwrap();
    // A ClientHello of 20 KiB across records: over the 16 KiB the gateway reads.
    let mut huge = Vec::new();
    let mut hello = vec![0x01, 0x00, 0x50, 0x00];
    hello.extend(vec![0u8; 16 << 10]);
    for part in hello.chunks(8 << 10) {
        huge.extend(record(u16::try_from(part.len()).unwrap(), part));
    }
    let cases = vec![
        Case::new(
            "the route's name, as it should be",
            by_name(p.main.clone(), "/x", &[]),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "the route's name with another Host (coalescing)",
            by_name(p.main.clone(), "/x", &["-H", "Host: localhost"]),
            Expect::Status(421),
            Some("misdirected_request"),
        ),
        Case::new(
            "a name no route has",
            named(Some("other.example.test"), p.main.clone(), "/x", &[]),
            Expect::NoAnswer,
            Some("sni_refused"),
        ),
        Case::new(
            "no name on the relaying listener",
            named(None, p.relay.clone(), "/x", &[]),
            Expect::NoAnswer,
            Some("sni_refused"),
        ),
        Case::new(
            "a ClientHello that is no handshake",
            send(relay, record(5, &[1, 0, 0, 1, 0])),
            Expect::NoAnswer,
            Some("client_hello_refused"),
        ),
        Case::new(
            "plain HTTP where TLS is read",
            send(main, b"GET /echo/ HTTP/1.1\r\nHost: echo.example.test\r\n\r\n".to_vec()),
            Expect::NoAnswer,
            Some("client_hello_refused"),
        ),
        Case::new(
            "a ClientHello over 16 KiB",
            send(main, huge),
            Expect::NoAnswer,
            Some("client_hello_refused"),
        ),
        Case::new(
            "a ClientHello cut short, then silence",
            send(main, record(512, &[1, 0, 1, 252, 3, 3])),
            Expect::NoAnswer,
            Some("client_hello_refused"),
        ),
        Case::new(
            "the route's service through the gateway's own TLS",
            super::curl(super::Cred::Admin, "/echo/x", &[]),
            Expect::Status(421),
            Some("misdirected_request"),
        ),
        Case::new(
            "the node's public listener dialled directly",
            send(public, record(5, &[1, 0, 0, 1, 0])),
            Expect::NoAnswer,
            Some("node_refused_caller"),
        ),
    ];
    run("passthrough", 11, &Target::new(&p.net, &[]), cases);
}

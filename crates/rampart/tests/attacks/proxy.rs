//! Clients behind a load balancer that speaks the PROXY protocol, or behind an HTTP proxy that
//! sets `X-Forwarded-For`: their own addresses are the ones admission, bans and events see; a
//! PROXY header from anyone but the trusted forwarder, or none from it, or a bad or slow one,
//! is refused within the deadline; forwarding headers from anyone else are ignored and never
//! reach a node.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{Network, ok};
use crate::{events_of, wait_events};

/// The trusted forwarder's address (a loopback alias: Linux answers all of 127/8).
const FORWARDER: &str = "127.0.0.2";

/// A network whose gateway trusts PROXY headers from 127.0.0.2 only.
fn network() -> Network {
    network_with(&format!("proxy_protocol_from = [\"{FORWARDER}/32\"]\n"), 1, &[])
}

/// A network with `gateway` added to `[gateway]` and `nodes` nodes started with `node_args`.
fn network_with(gateway: &str, nodes: usize, node_args: &[&str]) -> Network {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    ok(&home, &["init"]);
    let toml = home.join("rampart.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text = text.replace("ban_after_failures = 20", "ban_after_failures = 3");
    text = text.replace("header_timeout = \"10s\"", "header_timeout = \"1s\"");
    assert!(text.contains("ban_after_failures = 3") && text.contains("header_timeout = \"1s\""));
    // The settings go right under [gateway] (its sections follow).
    text = text.replacen("[gateway]\n", &format!("[gateway]\n{gateway}"), 1);
    std::fs::write(&toml, text).unwrap();
    let mut net = Network::launch(dir, home, 0, &[]);
    for i in 1..=nodes {
        net.add_node(&format!("n{i}"), node_args);
    }
    net
}

fn gateway_addr(net: &Network) -> SocketAddr {
    net.url.trim_start_matches("https://").parse().unwrap()
}

/// A connection to `to` from the forwarder's address (std cannot bind before connecting).
fn connect_from_forwarder(to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{FORWARDER}:0").parse().unwrap()).unwrap();
        s.connect(to).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream
}

/// A connection to the gateway from the forwarder's address.
fn from_forwarder(net: &Network) -> TcpStream {
    connect_from_forwarder(gateway_addr(net))
}

/// A PROXY v2 header saying the connection is `client`'s.
fn v2_header(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(c), SocketAddr::V4(t)) = (client, to) else { panic!("IPv4 only here") };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend(c.ip().octets());
    h.extend(t.ip().octets());
    h.extend(c.port().to_be_bytes());
    h.extend(t.port().to_be_bytes());
    h
}

/// A forwarder on 127.0.0.2 that speaks for `client`: every connection to it reaches the
/// gateway from 127.0.0.2 with a PROXY v2 header naming `client`. Returns its port.
fn forward_as(net: &Network, client: SocketAddr) -> u16 {
    let listener = TcpListener::bind(format!("{FORWARDER}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let gateway = gateway_addr(net);
    std::thread::spawn(move || {
        // Bounded: a test makes a few dozen connections at most.
        for conn in listener.incoming().take(64) {
            let Ok(mut down) = conn else { return };
            let mut up = connect_from_forwarder(gateway);
            up.write_all(&v2_header(client, gateway)).unwrap();
            let (mut down2, mut up2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut down2, &mut up2));
            std::thread::spawn(move || std::io::copy(&mut up, &mut down));
        }
    });
    port
}

/// curl through a forwarder port (the gateway's certificate names localhost).
fn curl_via(net: &Network, port: u16, path: &str, token: &str) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
        .arg(net.home.join("pki/local/ca.pem"))
        .args(["--resolve", &format!("localhost:{port}:{FORWARDER}")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn clients_behind_a_proxy_protocol_forwarder_are_banned_one_by_one() {
    let net = network();
    let alice = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    let (a, b): (SocketAddr, SocketAddr) =
        ("198.51.100.1:40001".parse().unwrap(), "198.51.100.2:40002".parse().unwrap());
    let (via_a, via_b) = (forward_as(&net, a), forward_as(&net, b));
    assert_eq!(curl_via(&net, via_a, "/hello", &alice), 200);
    for _ in 0..3 {
        assert_eq!(curl_via(&net, via_a, "/hello", "rpt_wrong"), 401);
    }
    // A is banned under its own address; B, behind the same forwarder, is served.
    assert_eq!(curl_via(&net, via_a, "/hello", &alice), 403);
    assert_eq!(curl_via(&net, via_b, "/hello", &alice), 200);
    let banned = wait_events(&net, "banned", 1, |_| true);
    assert_eq!(banned[0]["source"], "198.51.100.1", "{banned:?}");
    let refused = events_of(&net, "token_malformed");
    assert!(
        !refused.is_empty()
            && refused.iter().all(|e| e["source"] == "198.51.100.1" && e["peer"] == FORWARDER),
        "{refused:?}"
    );
    assert!(ok(&net.home, &["bans", "list"]).contains("198.51.100.1"));
    assert!(ok(&net.home, &["events"]).contains(&format!("source=198.51.100.1 via {FORWARDER}")));
    assert!(!ok(&net.home, &["bans", "list"]).contains(FORWARDER));
}

#[test]
fn proxy_headers_only_from_the_forwarder_and_always_from_it() {
    let net = network();
    let gateway = gateway_addr(&net);
    let closed_within = |mut s: TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit + Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        n == 0 && start.elapsed() < limit + Duration::from_secs(2)
    };
    // From 127.0.0.1, which is no forwarder: a header forging an address is refused.
    let mut forged = TcpStream::connect(gateway).unwrap();
    forged.write_all(&v2_header("203.0.113.9:1".parse().unwrap(), gateway)).unwrap();
    assert!(closed_within(forged, Duration::from_secs(1)));
    let untrusted = wait_events(&net, "proxy_header_untrusted", 1, |_| true);
    assert_eq!(untrusted[0]["source"], "127.0.0.1");
    let mut v1 = TcpStream::connect(gateway).unwrap();
    v1.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n").unwrap();
    assert!(closed_within(v1, Duration::from_secs(1)));
    wait_events(&net, "proxy_header_untrusted", 2, |_| true);

    // From the forwarder: no header (a TLS ClientHello straight away) is refused.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10", "--interface", FORWARDER, "--cacert"])
        .arg(net.home.join("pki/local/ca.pem"))
        .arg(format!("{}/_rampart/health", net.url))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let missing = wait_events(&net, "proxy_header_missing", 1, |_| true);
    assert_eq!(missing[0]["source"], FORWARDER);

    // Malformed, truncated and slow headers: refused within the deadline (1 s here).
    for bad in [b"PROXY TCP4 nonsense\r\n".to_vec(), [b"PROXY TCP4 ".to_vec(), vec![b'9'; 300]].concat()] {
        let mut s = from_forwarder(&net);
        s.write_all(&bad).unwrap();
        assert!(closed_within(s, Duration::from_secs(1)));
    }
    let mut slow = from_forwarder(&net);
    slow.write_all(b"PROXY TCP4 203.0.113.9").unwrap(); // and nothing more
    assert!(closed_within(slow, Duration::from_secs(1)), "a header that never ends is cut at the deadline");
    let mut cut = from_forwarder(&net);
    cut.write_all(&v2_header("203.0.113.9:1".parse().unwrap(), gateway)[..20]).unwrap();
    assert!(closed_within(cut, Duration::from_secs(1)));
    wait_events(&net, "proxy_header_bad", 2, |_| true);
    wait_events(&net, "slow_client", 2, |e| e["source"] == FORWARDER);
    // None of it bans the forwarder (that would ban every client behind it).
    assert!(!ok(&net.home, &["bans", "list"]).contains(FORWARDER));
    // And a well-behaved client behind it is served.
    let via = forward_as(&net, "198.51.100.3:40003".parse().unwrap());
    let admin = std::fs::read_to_string(net.home.join("admin.token")).unwrap();
    assert_eq!(curl_via(&net, via, "/hello", admin.trim()), 200);
}

/// An app that answers with the request head it received (what reached the service).
fn head_echo_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(32) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let head = head.split("\r\n\r\n").next().unwrap_or("").to_owned();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
        }
    });
    port
}

/// curl to the gateway from `from` (a loopback address) with extra headers (and `--data` when
/// the last one is `@DATA`); (status, body).
fn curl_from(net: &Network, from: &str, path: &str, token: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}", "--max-time", "10", "--interface", from, "--cacert"])
        .arg(net.home.join("pki/local/ca.pem"))
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    for h in headers {
        match h.strip_prefix('@') {
            Some(data) => cmd.args(["--data", data]),
            None => cmd.args(["-H", h]),
        };
    }
    let out = cmd.arg(format!("{}{path}", net.url)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn forwarded_headers_count_from_trusted_proxies_only_and_never_reach_a_node_as_sent() {
    let app = head_echo_app();
    let upstream = format!("app=http://127.0.0.1:{app}");
    let net =
        network_with(&format!("trusted_proxies = [\"{FORWARDER}/32\"]\n"), 1, &["--upstream", &upstream]);
    let admin = std::fs::read_to_string(net.home.join("admin.token")).unwrap();
    let admin = admin.trim();
    let forged = [
        "X-Forwarded-For: 203.0.113.66",
        "Forwarded: for=203.0.113.66",
        "X-Real-IP: 203.0.113.66",
        "Rampart-Client: 203.0.113.66",
        "Rampart-Principal: spiffe://local/admin/root",
    ];
    // From 127.0.0.1, no trusted proxy: the forged headers are ignored, and replaced.
    let (status, head) = curl_from(&net, "127.0.0.1", "/app/x", admin, &forged);
    assert_eq!(status, 200, "{head}");
    assert!(!head.contains("203.0.113.66") && !head.contains("admin/root"), "{head}");
    for line in
        ["x-forwarded-for: 127.0.0.1", "rampart-client: 127.0.0.1", "forwarded: for=127.0.0.1;proto=https"]
    {
        assert!(head.contains(line), "{line} missing from {head}");
    }
    assert_eq!(curl_from(&net, "127.0.0.1", "/app/x", "rpt_wrong", &forged).0, 401);
    let direct = wait_events(&net, "token_malformed", 1, |_| true);
    assert_eq!(direct[0]["source"], "127.0.0.1");
    assert!(direct[0].get("peer").is_none(), "{direct:?}");

    // From the trusted proxy 127.0.0.2: its word is taken, and the event names both.
    let (status, head) = curl_from(&net, FORWARDER, "/app/x", admin, &["X-Forwarded-For: 203.0.113.66"]);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("x-forwarded-for: 203.0.113.66") && head.contains("rampart-client: 203.0.113.66"),
        "{head}"
    );
    assert_eq!(curl_from(&net, FORWARDER, "/app/x", "rpt_wrong", &["X-Forwarded-For: 203.0.113.66"]).0, 401);
    let via = wait_events(&net, "token_malformed", 2, |_| true);
    assert_eq!(via[1]["source"], "203.0.113.66");
    assert_eq!(via[1]["peer"], FORWARDER);
    // What a node refuses is reported under the client too, not under the gateway.
    let sealed = ["X-Forwarded-For: 203.0.113.66", "Content-Type: application/fernet", "@gAAAAAgarbage"];
    let (status, body) = curl_from(&net, FORWARDER, "/app/x", admin, &sealed);
    assert_eq!(status, 400, "{body}");
    let refused = wait_events(&net, "envelope_refused", 1, |_| true);
    assert_eq!(refused[0]["source"], "203.0.113.66", "{refused:?}");
}

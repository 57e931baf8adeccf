//! Catalog poisoning: east's gateway replaced by one that lies in its catalog (it holds east's
//! real gateway certificate, as an attacker who took that machine would). West keeps only
//! service names, never sends its callers of a service it hosts to the liar while its own
//! replicas are up, and takes a catalog that answers for another network, or one of any size,
//! for none at all (the peer goes down, with an event, and nothing is sent to it).

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::federation::{Pair, files, pair};
use crate::support::{Network, ok};

/// A TLS server at `addr` as east's gateway: every request is recorded and answered with the
/// catalog `said` holds at that moment.
struct Liar {
    said: Arc<Mutex<Vec<u8>>>,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Liar {
    fn start(east: &Network, addr: &str) -> Liar {
        let (certs, key) = files(east, "east", "gateway");
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let liar = Liar {
            said: Arc::new(Mutex::new(Vec::new())),
            asked: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (said, asked, stop) = (liar.said.clone(), liar.asked.clone(), liar.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20)); // polling a non-blocking accept
                    continue;
                };
                let _ = tcp.set_nonblocking(false);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
                asked.lock().unwrap().push(line);
                let body = said.lock().unwrap().clone();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).and_then(|()| tls.write_all(&body));
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        liar
    }

    fn say(&self, catalog: Vec<u8>) {
        *self.said.lock().unwrap() = catalog;
    }

    /// The request lines it was sent for services (not a catalog ask, nor east's own node
    /// still calling its gateway's internal API).
    fn served(&self) -> Vec<String> {
        self.asked.lock().unwrap().iter().filter(|l| !l.contains(" /_rampart/")).cloned().collect()
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// East as west's gateway sees it now.
fn east_seen_by(west: &Network) -> serde_json::Value {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&west.home, &["network", "list", "--json"])).unwrap_or_default();
    listed.as_array().and_then(|a| a.first()).cloned().unwrap_or_default()
}

#[test]
fn a_peer_lying_in_its_catalog() {
    let Pair { mut east, west } = pair();
    let west = &west;
    let carol = west.user("carol");
    for service in ["data", "hello"] {
        ok(&west.home, &["policy", "allow", "--service", service, "--principal", "user/carol"]);
    }
    let addr = east.url.trim_start_matches("https://").to_owned();
    east.gateway.signal("KILL");
    let _ = east.gateway.child.wait();
    let liar = Liar::start(&east, &addr);

    // A catalog of names that are no service names, and of west's own `data`.
    let long = "a".repeat(300);
    let poisoned = serde_json::json!({
        "domain": "east",
        "services": ["hello", "data", "../admin", "_rampart", "a b", "x\r\nSet-Cookie: y", long],
        "bundle": "not a fingerprint",
    });
    liar.say(poisoned.to_string().into_bytes());
    let kept = || east_seen_by(west)["imports"] == serde_json::json!(["data", "hello"]);
    assert!(west.eventually(Duration::from_secs(10), kept), "{}", east_seen_by(west));
    assert_eq!(east_seen_by(west)["served_bundle"], serde_json::Value::Null, "no fingerprint kept");
    for _ in 0..10 {
        let out = west.call("/data/", &["--token", &carol]);
        assert!(out.status.success(), "west's own data: {}", String::from_utf8_lossy(&out.stdout));
    }
    assert!(liar.served().is_empty(), "west sent its own callers to the liar: {:?}", liar.served());

    // A catalog that answers for another network, then one past the size west reads: east is
    // down, with an event that says why, and nothing is sent to it.
    for (lie, why) in [
        (serde_json::json!({"domain": "north", "services": ["data"]}).to_string().into_bytes(), "answers as"),
        (format!(r#"{{"domain":"east","services":["{}"]}}"#, "s".repeat(2 << 20)).into_bytes(), "unreadable"),
    ] {
        liar.say(serde_json::json!({"domain": "east", "services": ["hello"]}).to_string().into_bytes());
        assert!(west.eventually(Duration::from_secs(10), || east_seen_by(west)["up"] == true));
        let before = crate::events_of(west, "peer_down").len();
        liar.say(lie);
        let down = || {
            let events = crate::events_of(west, "peer_down");
            events.len() > before && events.iter().any(|e| e["reason"].as_str().unwrap_or("").contains(why))
        };
        assert!(west.eventually(Duration::from_secs(15), down), "{:?}", crate::events_of(west, "peer_down"));
        assert_eq!(east_seen_by(west)["up"], false);
        let out = west.call("/hello/", &["--token", &carol]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"error\""), "nothing served for a peer that is down: {text}");
    }
    assert!(liar.served().is_empty(), "{:?}", liar.served());

    // The control: what west does forward, the liar sees (a service only east offers).
    liar.say(serde_json::json!({"domain": "east", "services": ["hello"]}).to_string().into_bytes());
    assert!(west.eventually(Duration::from_secs(10), || east_seen_by(west)["up"] == true));
    let _ = west.call("/hello/", &["--token", &carol]);
    assert!(liar.served().iter().any(|l| l.starts_with("GET /hello/")), "{:?}", liar.served());
}

//! Passthrough routes: the gateway reads each ClientHello's server name without ending TLS and
//! relays the connection, untouched, to a node of the route, which ends it with its own
//! certificate. The nodes here have homes of their own (their keys made there, their
//! certificates signed from CSRs), so the gateway's home never holds a node's key. `curl` and
//! `openssl s_client` are the outside clients.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::passthrough::{NAME, Passthrough};
use support::{curl, ok, subject_for};

fn strings(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn files_named(dir: &Path, suffix: &str, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_named(&path, suffix, found);
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
}

#[test]
fn a_passthrough_route_ends_tls_at_its_node_which_sees_the_caller_and_refuses_what_it_should() {
    let p = Passthrough::start(2);
    let alice = p.user_cert("alice");
    ok(&p.net.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);

    // The client sees a node's certificate, not the gateway's, on both listeners.
    for listener in [&p.main, &p.relay] {
        let subject = subject_for(listener, Some(NAME));
        assert!(subject.contains("CN=n1") || subject.contains("CN=n2"), "{listener}: {subject}");
    }
    // The gateway's own name (none, for a client dialling its address) still ends at the
    // gateway on the main listener.
    assert!(subject_for(&p.main, None).contains("CN=gateway"), "{}", subject_for(&p.main, None));
    // The gateway's home holds no node's key.
    let mut keys = Vec::new();
    files_named(&p.net.home, ".key", &mut keys);
    assert!(keys.iter().all(|k| !k.ends_with("n1.key") && !k.ends_with("n2.key")), "{keys:?}");

    // The node sees the client's certificate; the gateway admitted the call by policy.
    let mut with_alice = strings(&alice);
    with_alice.push("-i");
    let (fine, said) = p.curl(&p.main, "/hi?x=1", &with_alice);
    assert!(fine && said.contains("HTTP/2 200"), "{said}");
    assert!(said.contains("\"principal\":\"spiffe://local/user/alice\""), "{said}");
    assert!(said.contains("\"path\":\"/hi\"") && said.contains("\"client\":\"127.0.0.1\""), "{said}");
    // A token works too, and a forged principal header reaches nobody.
    let token = p.net.user("bob");
    let auth = format!("Authorization: Bearer {token}");
    let (fine, said) = p.curl(&p.relay, "/", &["-H", &auth, "-H", "Rampart-Principal: admin"]);
    assert!(fine && said.contains("no policy allows user/bob"), "bob is not allowed yet: {said}");
    ok(&p.net.home, &["policy", "allow", "--service", "echo", "--principal", "user/bob"]);
    let (fine, said) = p.curl(&p.relay, "/", &["-H", &auth, "-H", "Rampart-Principal: admin"]);
    assert!(fine && said.contains("\"principal\":\"user/bob\""), "{said}");
    assert!(p.event("policy_denied", "echo"));

    // No credential: 401 from the gateway's admission, and its event.
    let (_, said) = p.curl(&p.main, "/", &["-w", " %{http_code}"]);
    assert!(said.ends_with(" 401"), "{said}");
    assert!(p.event("unauthenticated", "client certificate"));

    // A request for another name on this connection: 421, and an event.
    let (_, said) = p.curl(&p.main, "/", &["-H", "Host: other.example.test", "-w", " %{http_code}"]);
    assert!(said.ends_with(" 421"), "{said}");
    assert!(p.event("misdirected_request", "other.example.test"));
    // The route's service through the gateway's own TLS: 421 too, naming where to go.
    let said = support::stdout(&p.net.call("/echo/", &[]));
    assert!(said.contains("misdirected") && said.contains(NAME), "{said}");

    // On the listener that only relays, no name and an unknown name are refused, each an
    // event; on the main one, an unknown name too.
    let relay_url = format!("https://{}/", p.relay);
    let (fine, said) = curl(&["--cacert", &p.ca, &relay_url]);
    assert!(!fine, "{said}");
    assert!(p.event("sni_refused", "no server name"));
    for listener in [&p.relay, &p.main] {
        assert!(subject_for(listener, Some("nope.example.test")).is_empty());
    }
    assert!(p.event("sni_refused", "nope.example.test"));

    // A client straight to a node's public listener, not through a gateway: refused.
    let (_, _, public) = &p.nodes[0];
    let port = public.rsplit(':').next().unwrap();
    let resolve = format!("{NAME}:{port}:127.0.0.1");
    let (fine, said) = curl(&["--resolve", &resolve, "--cacert", &p.ca, &format!("https://{NAME}:{port}/")]);
    assert!(!fine, "{said}");
    assert!(p.event("node_refused_caller", "PROXY"));

    // A node cannot make up a caller: the certificate it passes on is checked against the CA
    // again. Alice's is taken; one of another CA (its domain named the same) is refused.
    let other = p.net.dir.path().join("other");
    ok(&other, &["init"]);
    ok(&other, &["pki", "issue", "--role", "admin", "--name", "mallory"]);
    let (_, home, _) = &p.nodes[0];
    let as_n1 = |cert: &Path| {
        let pem = std::fs::read_to_string(cert).unwrap();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let ask = serde_json::json!({"service": "echo", "method": "GET", "client": "127.0.0.1:9", "certificate": der});
        let issued = home.join("pki/local/issued");
        let (n1_cert, n1_key) = (issued.join("n1.pem"), issued.join("n1.key"));
        curl(&[
            "--cacert",
            &p.ca,
            "--cert",
            n1_cert.to_str().unwrap(),
            "--key",
            n1_key.to_str().unwrap(),
            "-H",
            "Content-Type: application/json",
            "-d",
            &ask.to_string(),
            "-w",
            " %{http_code}",
            &format!("{}/_rampart/internal/admit", p.net.url),
        ])
        .1
    };
    let said = as_n1(&p.net.home.join("pki/local/issued/alice.pem"));
    assert!(said.ends_with(" 200") && said.contains("spiffe://local/user/alice"), "{said}");
    let said = as_n1(&other.join("pki/local/issued/mallory.pem"));
    assert!(said.ends_with(" 401") && said.contains("refused"), "{said}");
    assert!(p.event("tls_bad_identity", "relayed client certificate was refused"));
}

/// A TCP relay on loopback to `to`, for one connection: the client's first TLS record goes on
/// one byte per write (each its own segment) when `trickle`; the record's length is sent on
/// the channel.
fn relay_once(to: SocketAddr, trickle: bool) -> (String, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else { return };
        let mut server = TcpStream::connect(to).unwrap();
        server.set_nodelay(true).unwrap();
        let mut head = [0u8; 5];
        client.read_exact(&mut head).unwrap();
        let len = 5 + usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut record = vec![0u8; len];
        record[..5].copy_from_slice(&head);
        client.read_exact(&mut record[5..]).unwrap();
        let _ = tx.send(len);
        if trickle {
            for b in &record {
                server.write_all(std::slice::from_ref(b)).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        } else {
            server.write_all(&record).unwrap();
        }
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut s2, &mut c2));
        let _ = std::io::copy(&mut client, &mut server);
    });
    (addr, rx)
}

#[test]
fn client_hellos_in_pieces_large_or_unfinished_and_a_node_killed_before_the_first_byte() {
    let p = Passthrough::start(2);
    let alice = p.user_cert("alice");
    ok(&p.net.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    let main: SocketAddr = p.main.parse().unwrap();

    // One byte at a time: the whole ClientHello is waited for, and the call answered.
    let (trickled, len) = relay_once(main, true);
    let (fine, said) = p.curl(&trickled, "/", &strings(&alice));
    assert!(fine && said.contains("spiffe://local/user/alice"), "{said}");
    assert!(len.recv().unwrap() > 200);

    // A ClientHello over 1.5 KB (long ALPN names, as a post-quantum key share would make it):
    // relayed whole, and the node answers it.
    let (relayed, len) = relay_once(main, false);
    let long: Vec<String> = (b'a'..=b'h').map(|c| String::from(c as char).repeat(200)).collect();
    let alpn = format!("{},http/1.1", long.join(","));
    let shown = Command::new("openssl")
        .args(["s_client", "-connect", &relayed, "-servername", NAME, "-alpn", &alpn])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).replace(' ', "");
    assert!(len.recv().unwrap() > 1536);
    assert!(shown.contains("0s:O=rampart,OU=local,CN=n"), "a node presented its certificate: {shown}");

    // A ClientHello never finished: closed within the deadline (a few seconds), an event.
    let mut hello = Vec::new();
    {
        let capture = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = capture.local_addr().unwrap().to_string();
        let client = std::thread::spawn(move || {
            Command::new("openssl")
                .args(["s_client", "-connect", &at, "-servername", NAME])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        });
        let (mut conn, _) = capture.accept().unwrap();
        let mut buf = [0u8; 64];
        conn.read_exact(&mut buf).unwrap();
        hello.extend_from_slice(&buf);
        drop(conn);
        let _ = client.join();
    }
    let mut stuck = TcpStream::connect(main).unwrap();
    stuck.write_all(&hello).unwrap();
    stuck.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());
    assert!(rest.is_empty(), "nothing is answered to an unfinished ClientHello");
    assert!(p.event("client_hello_refused", "not finished in time"));

    // The node a call goes to is killed; the next calls, before any probe noticed, go to the
    // other one without the client seeing a thing.
    let mut with_alice = strings(&alice);
    with_alice.push("-i");
    let (_, said) = p.curl(&p.main, "/", &with_alice);
    let first = if said.to_ascii_lowercase().contains("rampart-node: n1") { 0 } else { 1 };
    p.nodes[first].0.signal("KILL");
    let other = format!("rampart-node: n{}", 2 - first);
    for _ in 0..10 {
        let (fine, said) = p.curl(&p.main, "/", &with_alice);
        assert!(fine && said.to_ascii_lowercase().contains(&other), "{said}");
    }
    let log = std::fs::read_to_string(p.net.home.join("gateway.log")).unwrap();
    assert!(log.contains("failed before answering"), "the killed node was tried first:\n{log}");
}

//! The data path with real processes on 127.0.0.1: a gateway, nodes, real mutual TLS,
//! `rampart call` as the client; and every refusal, each its own test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use support::{Network, ok, run, stderr, stdout};

#[test]
fn whole_path_with_two_nodes() {
    let net = Network::start(2, &[]);
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
    let echo: serde_json::Value =
        serde_json::from_slice(&net.call("/echo/a/b?x=1", &["-d", "hi"]).stdout).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/a/b");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["principal"], "spiffe://local/admin/admin");
    assert_eq!(echo["client"], "127.0.0.1", "the client address the gateway saw");
    assert_eq!(echo["body"], "hi");

    for (name, n) in [("b", 10), ("a", 2), ("c", 33)] {
        let out = net.call("/data", &["-d", &format!(r#"{{"name":"{name}","n":{n}}}"#)]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(r#""result":"ok""#));
    }
    net.call("/data", &["--encrypt", "-d", r#"{"name":"sealed"}"#]);
    let list = |q: &str, extra: &[&str]| -> Vec<serde_json::Value> {
        let out = net.call(&format!("/data{q}"), extra);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let names =
        |v: &[serde_json::Value], f: &str| v.iter().map(|r| r[f].to_string()).collect::<Vec<_>>().join(",");
    assert_eq!(names(&list("?sort=asc&by=n", &[]), "n"), "2,10,33,null");
    assert_eq!(names(&list("?sort=desc&by=n", &[]), "n"), "33,10,2,null");
    assert_eq!(names(&list("?sort=asc&by=name", &["--encrypt"]), "name"), r#""a","b","c","sealed""#);

    // Any replica serves any record: both nodes are in the pool and round robin reaches both.
    assert_eq!(net.node_count(), 2);
    for _ in 0..4 {
        assert_eq!(list("", &[]).len(), 4);
    }
}

#[test]
fn no_client_certificate_on_a_required_listener() {
    let net = Network::start(1, &["--client-cert", "required"]);
    let token = std::fs::read_to_string(net.home.join("admin.token")).unwrap();
    let out = net.call("/hello", &["--token", token.trim()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("request failed"), "{}", stderr(&out));
    let log = || std::fs::read_to_string(net.home.join("gateway.log")).unwrap();
    let logged = net.eventually(Duration::from_secs(5), || log().contains("(tls_no_certificate)"));
    assert!(logged, "the refusal was not logged: {}", log());
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
}

#[test]
fn a_client_certificate_from_another_trust_domain() {
    let net = Network::start(1, &[]);
    ok(&net.home, &["pki", "init", "--domain", "other"]);
    ok(&net.home, &["pki", "issue", "--domain", "other", "--role", "admin", "--name", "admin"]);
    let dir = net.home.join("pki/other/issued");
    let (cert, key) = (dir.join("admin.pem"), dir.join("admin.key"));
    let out = net.call("/hello", &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "an admin of another domain got in: {}", stdout(&out));
    let log = || std::fs::read_to_string(net.home.join("gateway.log")).unwrap();
    let logged = net.eventually(Duration::from_secs(5), || log().contains("(tls_other_domain)"));
    assert!(logged, "the refusal was not logged: {}", log());
}

#[test]
fn a_user_certificate_presented_directly_to_a_node() {
    let net = Network::start(1, &[]);
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "alice"]);
    let url = format!("https://{}/", net.node_addr(0));
    let out = run(
        &net.home,
        &["call", &url, "--cert", &net.pki_file("alice.pem"), "--key", &net.pki_file("alice.key")],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "a user reached a node: {}", stdout(&out));
    // The admin certificate is no gateway either.
    let out = run(&net.home, &["call", &url], "");
    assert_eq!(out.status.code(), Some(1), "an admin reached a node: {}", stdout(&out));
    let log = || std::fs::read_to_string(net.home.join("n1.log")).unwrap();
    let logged = net.eventually(Duration::from_secs(5), || {
        log().contains("has role user; only gateway may connect here")
    });
    assert!(logged, "the refusal was not logged: {}", log());
}

#[test]
fn a_node_certificate_presented_as_a_gateway() {
    let net = Network::start(2, &[]);
    let url = format!("https://{}/", net.node_addr(1));
    let out = run(
        &net.home,
        &["call", &url, "--cert", &net.pki_file("n1.pem"), "--key", &net.pki_file("n1.key")],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "a node acted as a gateway: {}", stdout(&out));
    let log = || std::fs::read_to_string(net.home.join("n2.log")).unwrap();
    let logged = net.eventually(Duration::from_secs(5), || {
        log().contains("has role node; only gateway may connect here")
    });
    assert!(logged, "the refusal was not logged: {}", log());
}

#[test]
fn a_spoofed_principal_header_is_replaced() {
    let net = Network::start(1, &[]);
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    let out = net.call("/echo", &["--token", &token, "-H", "Rampart-Principal: spiffe://local/admin/admin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let echo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(echo["principal"], "user/alice");
}

#[test]
fn a_principal_without_policy_is_forbidden() {
    let net = Network::start(1, &[]);
    let token = net.user("bob");
    let out = net.call("/data", &["--token", &token]);
    assert_eq!(out.status.code(), Some(4));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(body["reason"].as_str().unwrap().contains("no policy allows user/bob"), "{body}");
    // A bad token is a 401 with its reason.
    let out =
        net.call("/data", &["--token", "rpt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stdout(&out).contains("unknown token"), "{}", stdout(&out));
}

#[test]
fn a_bad_fernet_envelope_is_refused() {
    let net = Network::start(1, &[]);
    let out = net.call("/data", &["-H", "Content-Type: application/fernet", "-d", "gAAAAAnot-a-token"]);
    assert_eq!(out.status.code(), Some(4));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"], "bad_envelope");
    assert!(body["reason"].as_str().unwrap().contains("not a Fernet token"), "{body}");
}

#[test]
fn an_unknown_service_is_404() {
    let net = Network::start(1, &[]);
    let out = net.call("/nosuch/thing", &[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stdout(&out).contains("unknown_service"), "{}", stdout(&out));
    let out = net.call("/hello", &["-H", "Authorization: Basic eDp5"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
}

/// A one-route HTTP app on loopback that answers with the principal and role headers it
/// received.
fn start_app() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let header = |name: &str| {
                req.lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix(name).map(|v| v.trim().to_owned()))
                    .unwrap_or_default()
            };
            let (principal, role) = (header("rampart-principal:"), header("rampart-role:"));
            let path = req.split_whitespace().nth(1).unwrap_or("").to_owned();
            let body = format!(
                r#"{{"app":"flask-like","path":"{path}","principal":"{principal}","role":"{role}"}}"#
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, handle)
}

#[test]
fn an_upstream_app_is_reachable_and_sees_the_principal() {
    let (port, _app) = start_app();
    let mut net = Network::start(0, &[]);
    let upstream = format!("app=http://127.0.0.1:{port}");
    net.add_node("n1", &["--upstream", &upstream]);
    let out = net.call("/app/orders?id=7", &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["principal"], "spiffe://local/admin/admin");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["path"], "/orders?id=7");
    let bad = run(
        &net.home,
        &["node", "--name", "n9", "--listen", "127.0.0.1:0", "--upstream", "x=http://10.0.0.1:80"],
        "",
    );
    assert!(!bad.status.success() && stderr(&bad).contains("loopback"), "{}", stderr(&bad));
    // The policy wildcard is no service a node can host: refused at once (it was accepted,
    // then refused at registration, and the node retried forever without getting ready).
    let wildcard = run(
        &net.home,
        &[
            "node",
            "--name",
            "n9",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("*=http://127.0.0.1:{port}"),
        ],
        "",
    );
    assert!(
        !wildcard.status.success() && stderr(&wildcard).contains("service name"),
        "{}",
        stderr(&wildcard)
    );
}

#[test]
fn a_paused_node_leaves_the_pool_and_comes_back() {
    let net = Network::start(2, &[]);
    net.nodes[0].signal("STOP");
    assert!(
        net.eventually(Duration::from_secs(10), || net.node_count() == 1),
        "the paused node stayed in the pool"
    );
    // The other node serves meanwhile.
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
    net.nodes[0].signal("CONT");
    assert!(
        net.eventually(Duration::from_secs(10), || net.node_count() == 2),
        "the resumed node never came back"
    );
}

#[test]
fn cli_commands_go_through_a_running_gateway() {
    let net = Network::start(1, &[]);
    // The gateway holds the registry file; the CLI uses its store API with the admin cert.
    ok(&net.home, &["user", "add", "carol", "--no-password"]);
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/carol"]);
    let token = ok(&net.home, &["token", "issue", "--user", "carol"]).trim().to_owned();
    assert!(ok(&net.home, &["user", "list"]).contains("carol"));
    assert!(
        net.eventually(Duration::from_secs(5), || net.call("/hello", &["--token", &token]).status.success())
    );
}

#[test]
fn http2_by_alpn_and_a_replayed_envelope_is_refused() {
    let net = Network::start(1, &[]);
    let out = net.call("/hello", &["-v"]);
    assert!(stderr(&out).starts_with("HTTP/2.0 200 OK"), "{}", stderr(&out));
    let token = ok(&net.home, &["keys", "encrypt"]); // an empty message, sealed once
    let file = net.home.join("envelope.txt");
    std::fs::write(&file, token.trim()).unwrap();
    let arg = format!("@{}", file.display());
    let first = net.call("/echo", &["-H", "Content-Type: application/fernet", "-d", &arg]);
    assert!(first.status.success(), "{}", stdout(&first));
    let again = net.call("/echo", &["-H", "Content-Type: application/fernet", "-d", &arg]);
    assert_eq!(again.status.code(), Some(4));
    assert!(stdout(&again).contains("replayed"), "{}", stdout(&again));
}

#[test]
fn sigterm_deregisters_a_node_and_stops_the_gateway_cleanly() {
    let mut net = Network::start(2, &[]);
    net.nodes[0].signal("TERM");
    let status = net.nodes[0].child.wait().unwrap();
    assert!(status.success(), "node exited with {status}");
    // Deregistered at once, well before its 3 s lease could lapse (it beat within the last 1 s).
    assert!(
        net.eventually(Duration::from_millis(1500), || net.node_count() == 1),
        "the node did not deregister"
    );
    // With no live node, a known service is 503 with Retry-After (not 404).
    net.nodes[1].signal("TERM");
    assert!(net.nodes[1].child.wait().unwrap().success());
    assert!(net.eventually(Duration::from_millis(1500), || net.node_count() == 0));
    let out = net.call("/hello", &["-v"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("503") && stderr(&out).contains("retry-after: 1"), "{}", stderr(&out));
    net.gateway.signal("TERM");
    let status = net.gateway.child.wait().unwrap();
    assert!(status.success(), "gateway exited with {status}");
    assert!(!net.home.join("gateway.url").exists());
}

#[test]
fn a_node_on_another_machine_needs_its_certificate_not_the_ca_key() {
    let mut net = Network::start(0, &[]);
    ok(&net.home, &["pki", "issue", "--role", "node", "--name", "far", "--ip", "127.0.0.1"]);
    // The node's machine gets the CA certificate and CRL, its own certificate and key, the
    // payload keyring and the configuration; never the CA key.
    let far = net.dir.path().join("far-home");
    for f in [
        "rampart.toml",
        "pki/local/ca.pem",
        "pki/local/crl.pem",
        "pki/local/issued/far.pem",
        "pki/local/issued/far.key",
        "keys/payload.keys",
    ] {
        let to = far.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(net.home.join(f), &to).unwrap();
    }
    assert!(!far.join("pki/local/ca.key").exists());
    let args = ["node", "--name", "far", "--listen", "127.0.0.1:0", "--gateway", net.url.as_str()];
    net.nodes.push(support::spawn(&far, &args, "rampart node ", "far"));
    assert!(net.eventually(Duration::from_secs(10), || net.node_count() == 1), "the node never joined");
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
    let sealed = net.call("/data", &["-d", r#"{"far":1}"#, "--encrypt"]);
    assert!(sealed.status.success(), "{}", stderr(&sealed));
}

#[test]
fn health_probes_need_no_credentials_and_say_only_whether_it_serves() {
    let mut net = Network::start_with(0, &[], &[("ban_after_failures", "3")]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let health = format!("127.0.0.1:{port}");
    net.add_node("n1", &["--health-listen", &health]);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", " %{http_code}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The node, in plain HTTP on its health listener: ready once registered, nothing else.
    assert_eq!(curl(&[&format!("http://{health}/_rampart/health")]), r#"{"status":"ok"} 200"#);
    assert!(curl(&[&format!("http://{health}/hello")]).ends_with(" 404"));
    // The gateway: no credentials needed, even from an address it has banned.
    for _ in 0..3 {
        net.call("/hello", &["--token", "rpt_guessed"]);
    }
    let banned = net.call("/hello", &["--token", "rpt_guessed"]);
    assert!(stdout(&banned).contains("banned"), "{}", stdout(&banned));
    let ca = net.home.join("pki/local/ca.pem");
    let url = format!("{}/_rampart/health", net.url);
    assert_eq!(curl(&["--cacert", ca.to_str().unwrap(), &url]), r#"{"status":"ok"} 200"#);
}

/// The CA bundle a peer pins: served to anyone, the same bytes and fingerprint as
/// `rampart pki bundle` gives the operator.
#[test]
fn the_gateway_serves_its_ca_bundle_to_anyone() {
    let net = Network::start(0, &[]);
    // -k: a peer fetching it does not trust this CA yet; it checks the fingerprint instead.
    let out = std::process::Command::new("curl")
        .args(["-sSk", "--max-time", "10", "-D", "-", &format!("{}/_rampart/bundle", net.url)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/") && head.contains(" 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: application/pem-certificate-chain"), "{head}");
    let ca = std::fs::read_to_string(net.home.join("pki/local/ca.pem")).unwrap();
    assert_eq!(body, ca);
    let bundle = rampart_pki::bundle::Bundle::parse(body.as_bytes()).unwrap();
    let told = run(&net.home, &["pki", "bundle"], "");
    assert_eq!(String::from_utf8_lossy(&told.stderr).trim(), bundle.fingerprint().to_string());
}

/// Nodes are accepted by the identity registered at the address the gateway dials, not by an
/// address in their certificate (a pod's address is not known when its certificate is issued):
/// a node whose certificate names no address of its own is served, and a listener that answers
/// at a registered address with another node's certificate is refused.
#[test]
fn nodes_are_bound_to_their_registered_address_not_to_addresses_in_their_certificate() {
    let mut net = Network::start(0, &[]);
    // "pod" has a certificate for a DNS name only; it listens on every address.
    ok(&net.home, &["pki", "issue", "--role", "node", "--name", "pod", "--dns", "pod.rampart.example"]);
    let inspect = ok(&net.home, &["pki", "inspect", "pod"]);
    assert!(!inspect.contains("127.0.0.1"), "the certificate names no address: {inspect}");
    let args = [
        "node",
        "--name",
        "pod",
        "--listen",
        "0.0.0.0:0",
        "--gateway",
        net.url.as_str(),
        "--service",
        "hello",
    ];
    net.nodes.push(support::spawn(&net.home, &args, "rampart node ", "pod"));
    assert!(net.eventually(Duration::from_secs(10), || net.node_count() == 1), "the node never joined");
    let port = net.node_addr(0).rsplit(':').next().unwrap().to_owned();
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
    // Registered from 127.0.0.1 while listening on every address: reached at 127.0.0.1.
    let status: serde_json::Value =
        serde_json::from_slice(&net.call("/_rampart/status", &[]).stdout).unwrap();
    assert_eq!(status["nodes"][0]["addr"], format!("127.0.0.1:{port}"), "{status}");

    // "ghost" registers 127.0.0.5:<pod's port>, where pod answers with its own certificate.
    ok(&net.home, &["pki", "issue", "--role", "node", "--name", "ghost", "--ip", "127.0.0.5"]);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--cacert", net.home.join("pki/local/ca.pem").to_str().unwrap()])
        .args(["--cert", &net.pki_file("ghost.pem"), "--key", &net.pki_file("ghost.key")])
        .args(["-H", "content-type: application/json"])
        .args(["-d", &format!(r#"{{"addr":"127.0.0.5:{port}","services":["ghostly"]}}"#)])
        .arg(format!("{}/_rampart/internal/register", net.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{}", String::from_utf8_lossy(&out.stderr));
    let call = net.call("/ghostly/x", &[]);
    assert!(!call.status.success(), "pod answered for ghost: {}", stdout(&call));
    assert!(net.eventually(Duration::from_secs(10), || {
        let events = ok(&net.home, &["events", "--json"]);
        events.contains("node_certificate_refused")
            && events.contains("is not the node registered at 127.0.0.5")
    }));
    // pod itself is still served.
    assert_eq!(stdout(&net.call("/hello", &[])), "Hello World!");
}

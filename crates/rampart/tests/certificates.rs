//! Certificates nobody has to remember: files replaced under a running gateway and node are
//! presented to new connections within seconds, and short-lived certificates renew
//! themselves (nodes through the gateway by CSR, the gateway with its CA) several times — while
//! clients send requests, with none failing and nothing restarted. `openssl s_client` is the
//! outside client that says which certificate a listener presents.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Network, admin_client, ok, request};

/// The serial of the certificate `addr` presents to `openssl s_client` (with `client`'s
/// certificate and key, for a listener that requires one), upper-case hex.
fn presented_serial(addr: &str, client: Option<(&str, &str)>) -> Option<String> {
    let mut args = vec!["s_client", "-connect", addr, "-servername", "localhost"];
    if let Some((cert, key)) = client {
        args.extend(["-cert", cert, "-key", key]);
    }
    let shown =
        Command::new("openssl").args(&args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin.take()?.write_all(&shown.stdout).ok()?;
    let out = x509.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.trim().strip_prefix("serial=")?.to_ascii_uppercase())
}

/// The serial `rampart pki renew` printed ("… (new serial HEX) …").
fn renewed_serial(printed: &str) -> String {
    let at = printed.find("new serial ").unwrap() + "new serial ".len();
    printed[at..].split(')').next().unwrap().to_ascii_uppercase()
}

/// Clients calling `hello` until stopped: half on one pooled client, half on a fresh client
/// every ten requests (so that new handshakes meet renewed certificates).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    driver: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(net: &Network) -> Self {
        let (stop, ok, failures) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let (home, url) = (net.home.clone(), format!("{}/hello/", net.url));
        let (s, o, f): (Arc<AtomicBool>, Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) =
            (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failures));
        let driver = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for fresh in [false, true, false, true] {
                    let (home, url, s, o, f) = (home.clone(), url.clone(), s.clone(), o.clone(), f.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut client = admin_client(&home);
                        // Bounded: at most 20,000 requests per client, however long the test.
                        for i in 0..20_000u32 {
                            if s.load(Ordering::Relaxed) {
                                break;
                            }
                            if fresh && i % 10 == 0 {
                                client = admin_client(&home);
                            }
                            match request(&client, "GET", &url, &[], "").await {
                                Ok((200, _, _)) => drop(o.fetch_add(1, Ordering::Relaxed)),
                                Ok((status, body, _)) => f.lock().unwrap().push(format!("{status} {body}")),
                                Err(e) => f.lock().unwrap().push(e),
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
        });
        Load { stop, ok, failures, driver }
    }

    /// Stops the clients: how many requests succeeded, and every failure.
    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.driver.join().unwrap();
        (self.ok.load(Ordering::Relaxed), self.failures.lock().unwrap().clone())
    }
}

/// Renewal events in the gateway's audit log, for `principal`.
fn renewals(home: &Path, principal: &str) -> usize {
    let log = std::fs::read_to_string(home.join("audit.jsonl")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("\"kind\":\"certificate_renewed\"") && l.contains(&format!("\"{principal}\"")))
        .count()
}

fn gateway_addr(net: &Network) -> String {
    net.url.trim_start_matches("https://").to_owned()
}

#[test]
fn certificates_replaced_on_disk_are_presented_to_new_connections_with_no_restart_and_no_failure() {
    let net = Network::start(1, &[]);
    let (gateway_pem, gateway_key) = (net.pki_file("gateway.pem"), net.pki_file("gateway.key"));
    let as_gateway = Some((gateway_pem.as_str(), gateway_key.as_str()));
    let (gateway, node) = (gateway_addr(&net), net.node_addr(0));
    let first = (presented_serial(&gateway, None).unwrap(), presented_serial(&node, as_gateway).unwrap());
    let load = Load::start(&net);
    assert!(net.eventually(Duration::from_secs(10), || load.ok.load(Ordering::Relaxed) > 50), "no load");

    // The gateway's files replaced by an operator's renewal: presented within seconds.
    let renewed = renewed_serial(&ok(&net.home, &["pki", "renew", "--name", "gateway"]));
    assert_ne!(renewed, first.0);
    let seen =
        net.eventually(Duration::from_secs(10), || presented_serial(&gateway, None) == Some(renewed.clone()));
    assert!(seen, "the gateway still presents {:?}, not {renewed}", presented_serial(&gateway, None));

    // The node's: the same (the gateway's certificate it checks against is the renewed one).
    let renewed = renewed_serial(&ok(&net.home, &["pki", "renew", "--name", "n1"]));
    let seen = net
        .eventually(Duration::from_secs(10), || presented_serial(&node, as_gateway) == Some(renewed.clone()));
    assert!(seen, "the node still presents {:?}, not {renewed}", presented_serial(&node, as_gateway));
    let before = load.ok.load(Ordering::Relaxed);
    assert!(net.eventually(Duration::from_secs(10), || load.ok.load(Ordering::Relaxed) > before + 50));

    let (done, failures) = load.stop();
    support::assert_none_failed(&failures);
    // Nothing restarted: the same processes serve, and the node never left the pool.
    assert_eq!(net.node_count(), 1);
    let log = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(!log.contains("\"node_left\"") && !log.contains("\"lease_expired\""), "{log}");
    eprintln!("{done} requests, none failed, through both replacements");
}

#[test]
fn short_lived_certificates_renew_themselves_several_times_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    ok(&home, &["init"]);
    // 30-second certificates: each holder renews every 20 s.
    ok(&home, &["pki", "renew", "--name", "gateway", "--lifetime", "30s"]);
    for node in ["n1", "n2"] {
        ok(&home, &["pki", "issue", "--role", "node", "--name", node, "--lifetime", "30s"]);
    }
    let mut net = Network::launch(dir, home, 0, &[]);
    net.add_node("n1", &["--service", "hello"]);
    net.add_node("n2", &["--service", "hello"]);
    let gateway = gateway_addr(&net);
    let first = presented_serial(&gateway, None).unwrap();
    let load = Load::start(&net);

    let start = Instant::now();
    let renewed_thrice = net.eventually(Duration::from_secs(100), || {
        ["spiffe://local/node/n1", "spiffe://local/node/n2", "spiffe://local/gateway/gateway"]
            .iter()
            .all(|p| renewals(&net.home, p) >= 3)
    });
    let counts: Vec<usize> =
        ["spiffe://local/node/n1", "spiffe://local/node/n2", "spiffe://local/gateway/gateway"]
            .iter()
            .map(|p| renewals(&net.home, p))
            .collect();
    assert!(renewed_thrice, "renewals (n1, n2, gateway) after {:?}: {counts:?}", start.elapsed());
    assert_ne!(
        presented_serial(&gateway, None).unwrap(),
        first,
        "the gateway presents its renewed certificate"
    );

    // The metrics show when each certificate expires: the nodes' renewed ones too.
    let metrics = support::stdout(&net.call("/_rampart/metrics", &[]));
    for name in ["gateway", "ca", "node/n1", "node/n2"] {
        let line = format!("rampart_certificate_expiry_timestamp_seconds{{certificate=\"{name}\"}}");
        assert!(metrics.contains(&line), "no {line} in {metrics}");
    }
    let (done, failures) = load.stop();
    support::assert_none_failed(&failures);
    assert_eq!(net.node_count(), 2, "both nodes still in the pool");
    let log = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(!log.contains("certificate_renewal_failed"), "{log}");
    eprintln!("{done} requests over {:?}, none failed; renewals {counts:?}", start.elapsed());
}

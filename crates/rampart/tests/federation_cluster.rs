//! Federation with a clustered side: west is two gateways sharing a real etcd registry, east a
//! single gateway that lists both of west's. West's peers and exports live in etcd, so either
//! west gateway serves east; with one SIGKILLed, east goes on through the other; and west
//! rotates its CA with rolling restarts while east's calls go on, none failing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

// The etcd launcher rampart-etcd's own tests use.
#[path = "../../rampart-etcd/tests/cluster/mod.rs"]
mod etcd;
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Network, Proc, ok, spawn, stderr};

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// West on etcd (gateways g1, g2; nodes hosting echo), and east peered with it, alice allowed.
struct Pair {
    _etcd: etcd::Cluster,
    dir: tempfile::TempDir,
    west: PathBuf,
    gateways: Vec<Option<Proc>>,
    urls: Vec<String>,
    nodes: Vec<Option<Proc>>,
    east: Network,
    alice: String,
}

impl Pair {
    fn start(nodes: usize) -> Self {
        let etcd = block_on(etcd::Cluster::start(1, None));
        let dir = tempfile::tempdir().unwrap();
        let west = dir.path().join("west");
        let store = format!("etcd://{}", etcd.endpoints().join(",").replace("http://", ""));
        ok(&west, &["init", "--domain", "west", "--store", &store]);
        let mut pair = Pair {
            _etcd: etcd,
            west,
            gateways: vec![None, None],
            urls: Vec::new(),
            nodes: (0..nodes).map(|_| None).collect(),
            east: Network::start_in("east", &[]),
            alice: String::new(),
            dir,
        };
        for i in 0..2 {
            pair.start_gateway(i, "127.0.0.1:0");
        }
        for i in 0..nodes {
            pair.start_node(i);
        }
        let east = &mut pair.east;
        east.add_node("n1", &["--service", "hello"]);
        let (west_pem, east_pem) = (pair.dir.path().join("west.pem"), pair.dir.path().join("east.pem"));
        ok(&pair.west, &["pki", "bundle", "--out", west_pem.to_str().unwrap()]);
        ok(&east.home, &["pki", "bundle", "--out", east_pem.to_str().unwrap()]);
        let mut add = vec!["network", "add", "west", "--bundle", west_pem.to_str().unwrap()];
        for u in &pair.urls {
            add.extend(["--url", u.as_str()]);
        }
        ok(&east.home, &add);
        // Once, through one west gateway: the registry both share holds it.
        ok(
            &pair.west,
            &["network", "add", "east", "--url", &east.url, "--bundle", east_pem.to_str().unwrap()],
        );
        ok(&pair.west, &["network", "export", "echo", "--to", "east"]);
        ok(&pair.west, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
        pair.alice = east.user("alice");
        ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
        let served = pair.east.eventually(Duration::from_secs(15), || pair.call().status.success());
        assert!(served, "{}", stderr(&pair.call()));
        pair
    }

    /// Starts west gateway `i` on `listen` (its old address when restarting).
    fn start_gateway(&mut self, i: usize, listen: &str) {
        let name = format!("g{}", i + 1);
        let args = ["gateway", "--name", &name, "--listen", listen];
        let g =
            spawn(&self.west, &args, "rampart gateway listening on ", &format!("{name}-{}", self.urls.len()));
        let url = g.ready.split_whitespace().nth(4).unwrap().to_owned();
        if self.urls.len() <= i {
            self.urls.push(url);
        }
        self.gateways[i] = Some(g);
    }

    fn start_node(&mut self, i: usize) {
        let name = format!("w{}", i + 1);
        let gateways = self.urls.join(",");
        let args =
            ["node", "--name", &name, "--listen", "127.0.0.1:0", "--gateway", &gateways, "--service", "echo"];
        self.nodes[i] = Some(spawn(&self.west, &args, "rampart node ", &name));
    }

    /// Stops gateway `i` cleanly (SIGTERM: it drains) and starts it again where it was.
    fn restart_gateway(&mut self, i: usize) {
        let mut g = self.gateways[i].take().unwrap();
        g.signal("TERM");
        let _ = g.child.wait();
        let listen = self.urls[i].trim_start_matches("https://").to_owned();
        self.start_gateway(i, &listen);
    }

    /// Stops node `i` cleanly (it deregisters and drains), starts it again, and waits until
    /// both gateways route to every node again.
    fn restart_node(&mut self, i: usize) {
        let mut n = self.nodes[i].take().unwrap();
        n.signal("TERM");
        let _ = n.child.wait();
        self.start_node(i);
        let want = self.nodes.len();
        for url in self.urls.clone() {
            let routed = self.east.eventually(Duration::from_secs(15), || {
                let out = support::run(&self.west, &["call", &format!("{url}/_rampart/status")], "");
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                v["nodes"].as_array().map_or(0, Vec::len) == want
            });
            assert!(routed, "{url} never routed to all {want} nodes again");
        }
    }

    fn call(&self) -> std::process::Output {
        self.east.call("/echo/", &["--token", &self.alice])
    }

    /// How many echo requests west gateway `i` answered 200 (its metrics).
    fn served_by(&self, i: usize) -> u64 {
        let out = support::run(&self.west, &["call", &format!("{}/_rampart/metrics", self.urls[i])], "");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("rampart_requests_total{service=\"echo\",code=\"200\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    fn east_events(&self) -> String {
        std::fs::read_to_string(self.east.home.join("audit.jsonl")).unwrap_or_default()
    }

    /// The fingerprint of west's bundle east holds.
    fn trusted_at_east(&self) -> String {
        let listed: serde_json::Value =
            serde_json::from_str(&ok(&self.east.home, &["network", "list", "--json"])).unwrap();
        listed[0]["fingerprint"].as_str().unwrap().to_owned()
    }

    /// The fingerprint of west's bundle now.
    fn west_bundle(&self) -> String {
        let out = support::run(&self.west, &["pki", "bundle"], "");
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap().trim().to_owned()
    }
}

#[test]
fn either_gateway_of_a_clustered_peer_serves_and_one_killed_is_passed_over() {
    let mut pair = Pair::start(1);
    // Both west gateways serve east's requests: each one's metrics count echo answered.
    for _ in 0..20 {
        assert!(pair.call().status.success());
    }
    let (one, two) = (pair.served_by(0), pair.served_by(1));
    assert!(one > 0 && two > 0, "g1 served {one}, g2 served {two}");

    // One west gateway SIGKILLed: east goes on through the other, no call failing.
    pair.gateways[0] = None;
    let mut failed = Vec::new();
    for _ in 0..20 {
        let out = pair.call();
        if !out.status.success() {
            failed.push(stderr(&out));
        }
    }
    assert!(failed.is_empty(), "{} calls failed: {failed:?}", failed.len());
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&pair.east.home, &["network", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["up"], true, "west is still up through g2: {listed}");
    let seen = |pair: &Pair, kind: &str| {
        let kind = format!("\"kind\":\"{kind}\"");
        pair.east.eventually(Duration::from_secs(10), || pair.east_events().contains(&kind))
    };
    assert!(seen(&pair, "peer_gateway_ejected"), "{}", pair.east_events());

    // g1 back where it was: it rejoins east's pool by answering its catalog, and serves again.
    let listen = pair.urls[0].trim_start_matches("https://").to_owned();
    pair.start_gateway(0, &listen);
    assert!(seen(&pair, "peer_gateway_rejoined"), "{}", pair.east_events());
    let before = pair.served_by(0);
    assert!(
        pair.east.eventually(Duration::from_secs(10), || pair.call().status.success()
            && pair.served_by(0) > before)
    );
}

/// East's calls under load while west rotates its CA: begin (both CAs trusted), rolling
/// restarts, every holder renewed and restarted, finish (the new CA alone), rolling restarts.
#[test]
fn a_peer_rotating_its_ca_with_rolling_restarts_fails_no_request_from_east() {
    let mut pair = Pair::start(2);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let east = &pair.east;
        let (roots, _) =
            rampart_net::TlsMaterial::load_roots(&east.home.join("pki/east/ca.pem"), None).unwrap();
        let domain = rampart_pki::TrustDomain::new("east").unwrap();
        let tls =
            rampart_net::tls::client_config(&domain, roots, Vec::new(), None, &[rampart_pki::Role::Gateway])
                .unwrap();
        let client = rampart_net::client::https_client(tls, Duration::from_secs(2));
        let (url, auth, stop) =
            (format!("{}/echo/", east.url), format!("Bearer {}", pair.alice), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut seen: Vec<(u16, String)> = Vec::new();
                while !stop.load(Ordering::Relaxed) && seen.len() < 50_000 {
                    match support::request(&client, "GET", &url, &[("authorization", &auth)], "").await {
                        Ok((status, body, _)) => seen.push((status, body)),
                        Err(e) => seen.push((0, e)),
                    }
                }
                seen
            })
        })
    };
    let before = pair.trusted_at_east();

    // 1. Begin: ca.pem holds the new CA and the old; east follows the bundle by itself.
    ok(&pair.west, &["pki", "rotate-ca"]);
    let both = pair.west_bundle();
    assert_ne!(both, before);
    assert!(pair.east.eventually(Duration::from_secs(10), || pair.trusted_at_east() == both));
    // Rolling restarts: every west process now trusts both CAs.
    for i in 0..2 {
        pair.restart_node(i);
    }
    for i in 0..2 {
        pair.restart_gateway(i);
    }
    // 2. Every holder renewed by the new CA, and restarted with its new certificate.
    for name in ["gateway", "w1", "w2", "admin"] {
        ok(&pair.west, &["pki", "renew", "--name", name]);
    }
    for i in 0..2 {
        pair.restart_node(i);
    }
    for i in 0..2 {
        pair.restart_gateway(i);
    }
    // 3. Finish: the new CA alone; east follows; rolling restarts drop the old CA everywhere.
    ok(&pair.west, &["pki", "rotate-ca", "--finish"]);
    let new_only = pair.west_bundle();
    assert!(pair.east.eventually(Duration::from_secs(10), || pair.trusted_at_east() == new_only));
    for i in 0..2 {
        pair.restart_node(i);
    }
    for i in 0..2 {
        pair.restart_gateway(i);
    }
    assert!(pair.call().status.success());

    stop.store(true, Ordering::Relaxed);
    let seen = load.join().unwrap();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(status, _)| *status != 200).collect();
    eprintln!("during the rotation: {} requests from east, {} failed", seen.len(), failed.len());
    assert!(seen.len() > 100, "only {} requests", seen.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
}

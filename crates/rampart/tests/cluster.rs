//! The clustered registry: a real three-member etcd cluster, two gateways and three nodes on
//! 127.0.0.1. Under concurrent GETs and keyed POSTs through both gateways, a gateway, an etcd
//! member and a node are SIGKILLed in turn: no request fails and no acknowledged record is lost;
//! everything killed comes back and the network converges. Losing etcd's quorum makes writes
//! fail with a clear 503 while routing goes on, and the network catches up when it returns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

// The etcd launcher rampart-etcd's own tests use, driven here from synchronous tests.
#[path = "../../rampart-etcd/tests/cluster/mod.rs"]
mod etcd;
mod support;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd::{Cluster as EtcdCluster, TlsFiles};
use rampart_net::gateways::Gateways;
use support::{Proc, admin_client, ok, spawn};

/// Runs an async step of the etcd launcher to completion.
fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

struct Cluster {
    etcd: EtcdCluster,
    _dir: tempfile::TempDir,
    home: PathBuf,
    gateways: Vec<Option<Proc>>,
    urls: Vec<String>,
    nodes: Vec<Option<Proc>>,
    /// The services every node hosts.
    services: &'static [&'static str],
}

impl Cluster {
    /// Three etcd members; nodes hosting `hello` and `data`.
    fn start() -> Self {
        Self::start_with(3, &["hello", "data"])
    }

    fn start_with(members: usize, services: &'static [&'static str]) -> Self {
        let etcd = block_on(EtcdCluster::start(members, None));
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let store = format!("etcd://{}", etcd.endpoints().join(",").replace("http://", ""));
        ok(&home, &["init", "--store", &store]);
        let mut c = Cluster {
            etcd,
            _dir: dir,
            home,
            gateways: vec![None, None],
            urls: Vec::new(),
            nodes: Vec::new(),
            services,
        };
        for i in 0..2 {
            let g = c.start_gateway(i, "127.0.0.1:0");
            c.urls.push(g);
        }
        for i in 0..3 {
            c.nodes.push(None);
            c.start_node(i);
        }
        assert!(c.converged(3, Duration::from_secs(20)), "the nodes never showed on both gateways");
        c
    }

    /// Starts gateway `i` on `listen`; returns its URL.
    fn start_gateway(&mut self, i: usize, listen: &str) -> String {
        let name = format!("g{}", i + 1);
        let p = spawn(
            &self.home,
            &["gateway", "--name", &name, "--listen", listen],
            "rampart gateway listening on ",
            &name,
        );
        let url = p.ready.split_whitespace().nth(4).unwrap().to_owned();
        self.gateways[i] = Some(p);
        url
    }

    /// Starts node `i`, giving it both gateways (in a different order for each node).
    fn start_node(&mut self, i: usize) {
        let mut urls = self.urls.clone();
        let n = urls.len();
        urls.rotate_left(i % n);
        let name = format!("n{}", i + 1);
        let list = urls.join(",");
        let mut args = vec!["node", "--name", &name, "--listen", "127.0.0.1:0", "--gateway", &list];
        for s in self.services {
            args.extend(["--service", s]);
        }
        let p = spawn(&self.home, &args, "rampart node ", &name);
        self.nodes[i] = Some(p);
    }

    /// The nodes gateway `i` routes to, by name.
    fn routed_by(&self, i: usize) -> Vec<String> {
        let out = support::run(&self.home, &["call", &format!("{}/_rampart/status", self.urls[i])], "");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut names: Vec<String> = v["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Whether every live gateway routes to `n` nodes (bounded wait).
    fn converged(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if (0..self.urls.len())
                .filter(|i| self.gateways[*i].is_some())
                .all(|i| self.routed_by(i).len() == n)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
    acked: Mutex<HashSet<String>>,
}

/// Clients alternating GET /hello and keyed, encrypted POST /data, half starting at each
/// gateway and moving to the other when theirs cannot be reached, until `stop` (at most 20,000
/// each). A write is sealed once and the same envelope re-sent under the same key, as
/// `examples/python/client.py` does: a retry, never a replay.
async fn load(urls: Vec<String>, home: PathBuf, clients: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let client = admin_client(&home);
    let keyring = Arc::new(rampart_crypto::file::load(&home.join("keys/payload.keys")).unwrap());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut order = urls.clone();
        order.rotate_left(c % urls.len());
        let gateways = Arc::new(Gateways::new(&order));
        let (client, stop, tally, keyring) = (client.clone(), stop.clone(), tally.clone(), keyring.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let post = i % 2 == 1;
                let key = format!("c{c}-r{i}");
                let envelope = keyring.encrypt(format!(r#"{{"c":{c},"i":{i}}}"#).as_bytes()).unwrap();
                let sent = gateways
                    .send_idempotent(&client, Duration::from_secs(20), |base| {
                        let b = http::Request::builder();
                        if post {
                            b.method("POST")
                                .uri(format!("{base}/data"))
                                .header("idempotency-key", &key)
                                .header("content-type", "application/fernet")
                                .header("accept", "application/fernet")
                                .body(rampart_net::full(envelope.clone()))
                        } else {
                            b.uri(format!("{base}/hello")).body(rampart_net::full(""))
                        }
                    })
                    .await;
                let result = match sent {
                    Ok((_, resp)) => {
                        use http_body_util::BodyExt;
                        let status = resp.status().as_u16();
                        match resp.into_body().collect().await {
                            Ok(b) => Ok((status, String::from_utf8_lossy(&b.to_bytes()).into_owned())),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok((200, body)) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if post {
                            let plain = keyring.decrypt(&body, Some(300)).unwrap().plaintext;
                            let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
                            tally.acked.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned());
                        }
                    }
                    Ok((status, body)) => tally.failures.lock().unwrap().push(format!("{status} {body}")),
                    Err(e) => tally.failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until `more` further requests succeeded after now (bounded).
fn progress(tally: &Tally, more: u64, what: &str) {
    let from = tally.ok.load(Ordering::Relaxed);
    let start = Instant::now();
    while tally.ok.load(Ordering::Relaxed) < from + more {
        assert!(start.elapsed() < Duration::from_secs(60), "the load stalled after {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killing_a_gateway_an_etcd_member_and_a_node_under_load_loses_nothing() {
    let mut c = Cluster::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let driver = rt.spawn(load(c.urls.clone(), c.home.clone(), 6, stop.clone(), tally.clone()));
    progress(&tally, 300, "warm-up");

    // A gateway: clients and nodes move to the other one.
    c.gateways[0] = None; // SIGKILL (Proc's drop)
    progress(&tally, 500, "killing gateway g1");
    // An etcd member (the first every gateway and node was given).
    c.etcd.kill(0);
    progress(&tally, 500, "killing etcd member 0");
    // A node: as in the data path's failover tests.
    c.nodes[0] = None;
    progress(&tally, 800, "killing node n1"); // well past its 3 s lease

    // Everything killed comes back; the network converges.
    c.etcd.restart(0);
    block_on(c.etcd.wait_ready()); // member 0 rejoined
    let listen = c.urls[0].trim_start_matches("https://").to_owned();
    c.start_gateway(0, &listen);
    c.start_node(0);
    progress(&tally, 300, "the restarts");
    stop.store(true, Ordering::Relaxed);
    rt.block_on(driver).unwrap();

    support::assert_none_failed(&tally.failures.lock().unwrap());
    assert!(
        c.converged(3, Duration::from_secs(20)),
        "gateways route to {:?} and {:?}",
        c.routed_by(0),
        c.routed_by(1)
    );
    let acked = tally.acked.lock().unwrap().clone();
    for url in &c.urls {
        assert_eq!(
            support::stored_record_ids(&c.home, url),
            acked,
            "records at {url} differ from the acknowledged POSTs"
        );
    }
    eprintln!("{} requests ok, {} records", tally.ok.load(Ordering::Relaxed), acked.len());
}

#[test]
fn without_quorum_writes_fail_clearly_and_routing_goes_on() {
    let mut c = Cluster::start();
    let token = ok(&c.home, &["token", "issue", "--user", "admin"]).trim().to_owned();
    let call = |url: &str, args: &[&str]| {
        let mut all = vec!["call", url];
        all.extend_from_slice(args);
        support::run(&c.home, &all, "")
    };
    let hello = format!("{}/hello", c.urls[1]);
    let data = format!("{}/data", c.urls[1]);
    assert!(call(&data, &["-d", r#"{"before":1}"#]).status.success());
    c.etcd.kill(0);
    c.etcd.kill(1);
    // Each gateway's own audit log (audit-g1.jsonl, audit-g2.jsonl).
    let ejections = || {
        let logs = ["audit-g1.jsonl", "audit-g2.jsonl"].map(|f| std::fs::read_to_string(c.home.join(f)));
        assert!(logs.iter().any(Result::is_ok), "no gateway audit log in {}", c.home.display());
        logs.iter().flatten().flat_map(|t| t.lines()).filter(|l| l.contains("\"node_ejected\"")).count()
    };
    let ejected_before = ejections();
    // Writes: a clear 503 that names the registry, in bounded time, tried on one node only
    // (no other node would do better: they share the registry).
    let start = Instant::now();
    let out = call(&data, &["-v", "-d", r#"{"during":1}"#]);
    assert_eq!(out.status.code(), Some(5), "{}", support::stdout(&out));
    assert!(start.elapsed() < Duration::from_secs(10), "the refusal took {:?}", start.elapsed());
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"], "registry_unavailable", "{body}");
    assert!(
        !support::stderr(&out).contains("rampart-attempts"),
        "retried on other nodes: {}",
        support::stderr(&out)
    );
    // Routing to the known nodes goes on, for certificate and token callers, past the leases.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let out = call(&hello, &[]);
        assert!(out.status.success(), "GET /hello without quorum: {}", support::stdout(&out));
        let out = call(&hello, &["--token", &token]);
        assert!(out.status.success(), "GET /hello with a token without quorum: {}", support::stdout(&out));
    }
    assert_eq!(ejections(), ejected_before, "healthy nodes were ejected for the registry's outage");
    // Quorum back: writes succeed again without restarting anything.
    c.etcd.restart(0);
    c.etcd.restart(1);
    let start = Instant::now();
    loop {
        let out = call(&data, &["-d", r#"{"after":1}"#]);
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writes never came back: {}",
            support::stdout(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(c.converged(3, Duration::from_secs(20)), "membership did not catch up");
}

#[test]
fn every_gateway_sees_every_gateways_events_bans_and_registrations() {
    let mut c = Cluster::start();
    // An event at g2 shows at g1.
    let out = support::run(&c.home, &["call", &format!("{}/hello", c.urls[1]), "--token", "rpt_bogus"], "");
    assert_eq!(out.status.code(), Some(4));
    let seen = || {
        let out = support::run(&c.home, &["call", &format!("{}/_rampart/events", c.urls[0])], "");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.to_string().contains("token_malformed") && v.to_string().contains("\"g2\"")
    };
    let start = Instant::now();
    while !seen() {
        assert!(start.elapsed() < Duration::from_secs(10), "g2's event never showed at g1");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A ban started at g2 (20 failed authentications from 127.0.0.1) holds at g1 too, and
    // lifting it at g1 lifts it at g2. (An admin's certificate or token is never banned: a
    // user's token tells.)
    ok(&c.home, &["user", "add", "carol", "--no-password"]);
    ok(&c.home, &["policy", "allow", "--service", "hello", "--principal", "user/carol"]);
    let token = ok(&c.home, &["token", "issue", "--user", "carol"]).trim().to_owned();
    let (home, urls) = (c.home.clone(), c.urls.clone());
    let with_token = move |i: usize| {
        let out = support::run(&home, &["call", &format!("{}/hello", urls[i]), "--token", &token], "");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["error"] == "banned")
            .unwrap_or(false)
    };
    assert!(!with_token(0));
    for _ in 0..20 {
        support::run(&c.home, &["call", &format!("{}/hello", c.urls[1]), "--token", "rpt_bogus"], "");
    }
    assert!(with_token(1), "g2 did not ban the source");
    let start = Instant::now();
    while !with_token(0) {
        assert!(start.elapsed() < Duration::from_secs(10), "g2's ban never reached g1");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A gateway restarted meanwhile takes the ban on from the registry.
    c.gateways[0] = None;
    let listen = c.urls[0].trim_start_matches("https://").to_owned();
    c.start_gateway(0, &listen);
    let start = Instant::now();
    while !with_token(0) {
        assert!(start.elapsed() < Duration::from_secs(10), "restarted g1 forgot g2's ban");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lifted = support::run(
        &c.home,
        &["call", &format!("{}/_rampart/bans/127.0.0.1", c.urls[0]), "-X", "DELETE"],
        "",
    );
    assert!(lifted.status.success(), "{}", support::stdout(&lifted));
    let start = Instant::now();
    while with_token(1) {
        assert!(start.elapsed() < Duration::from_secs(10), "lifting at g1 never reached g2");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Propagation: a new node registering through g2 until both gateways route to it.
    c.nodes.push(None);
    let start = Instant::now();
    c.start_node(3);
    assert!(c.converged(4, Duration::from_secs(10)));
    eprintln!("registration to routing on both gateways: {:?} (includes the node's start)", start.elapsed());

    // n2 registered through g2 and drains on SIGTERM: g1 records that it left, not that its
    // lease lapsed.
    c.nodes[1].as_ref().unwrap().signal("TERM");
    let g1_saw = |kind: &str| {
        let out = support::run(&c.home, &["call", &format!("{}/_rampart/events", c.urls[0])], "");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let events = v["events"].as_array().cloned().unwrap_or_default();
        events.iter().any(|e| e["kind"] == kind && e["node"] == "n2" && e["gateway"] == "g1")
    };
    let start = Instant::now();
    while !g1_saw("node_left") {
        if start.elapsed() > Duration::from_secs(10) {
            for f in ["g1.log", "g2.log", "n2.log"] {
                eprintln!("==== {f}\n{}", std::fs::read_to_string(c.home.join(f)).unwrap_or_default());
            }
            let out = support::run(&c.home, &["call", &format!("{}/_rampart/events", c.urls[0])], "");
            eprintln!("==== g1 events\n{}", String::from_utf8_lossy(&out.stdout));
            panic!("g1 never saw n2 leave");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!g1_saw("lease_expired"), "g1 took n2's clean leave for a lapsed lease");
}

#[test]
fn init_reaches_etcd_over_tls_with_a_client_certificate() {
    // Certificates for etcd from another home's CA: a server certificate for 127.0.0.1 and a
    // client certificate (server roles carry both TLS purposes).
    let authority = tempfile::tempdir().unwrap();
    let a = authority.path().join("ca-home");
    ok(&a, &["init"]);
    ok(&a, &["pki", "issue", "--role", "gateway", "--name", "etcd-server", "--ip", "127.0.0.1"]);
    ok(&a, &["pki", "issue", "--role", "gateway", "--name", "etcd-client"]);
    let pki = a.join("pki/local");
    let file = |n: &str| pki.join(n).display().to_string();
    let tls = TlsFiles { dir: tempfile::tempdir().unwrap() };
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("issued/etcd-server.pem", "server.pem"),
        ("issued/etcd-server.key", "server.key"),
        ("issued/etcd-client.pem", "client.pem"),
        ("issued/etcd-client.key", "client.key"),
    ] {
        std::fs::copy(pki.join(from), tls.path(to)).unwrap();
    }
    let etcd = block_on(EtcdCluster::start(1, Some(&tls)));
    let store = etcd.endpoints()[0].replace("https://", "etcds://");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let tls = [
        "--etcd-ca",
        &file("ca.pem"),
        "--etcd-cert",
        &file("issued/etcd-client.pem"),
        "--etcd-key",
        &file("issued/etcd-client.key"),
    ];
    // With it (polling: the member may still be electing itself).
    let start = Instant::now();
    loop {
        let mut args = vec!["init", "--store", &store];
        args.extend_from_slice(&tls);
        if support::run(&home, &args, "").status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "init never reached etcd over TLS");
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = std::fs::read_to_string(home.join("rampart.toml")).unwrap();
    assert!(config.contains("etcd-client.pem") && config.contains("https://127.0.0.1"), "{config}");
    let users = ok(&home, &["user", "list"]);
    assert!(users.contains("admin"), "{users}");
    // Without a client certificate etcd refuses, and that init leaves nothing behind.
    let other = dir.path().join("other");
    let refused = support::run(&other, &["init", "--store", &store, "--etcd-ca", &file("ca.pem")], "");
    assert!(!refused.status.success());
    assert!(support::stderr(&refused).contains("connecting to etcd"), "{}", support::stderr(&refused));
    assert!(!other.join("rampart.toml").exists(), "a refused init left a home behind");
}

#[test]
fn init_reaches_etcd_as_a_user_confined_to_its_prefix() {
    let etcd = block_on(EtcdCluster::start(1, None));
    let endpoint = etcd.endpoints()[0].clone();
    // etcd's own access control: root, and a user `rampart` whose role reaches only the
    // network's prefix.
    block_on(async {
        let mut root = etcd.client().await;
        root.user_add("root", "root-password", None).await.unwrap();
        root.user_grant_role("root", "root").await.unwrap();
        root.role_add("rampart-local").await.unwrap();
        let prefix = etcd_client::Permission::read_write("/rampart/local/").with_prefix();
        root.role_grant_permission("rampart-local", prefix).await.unwrap();
        root.user_add("rampart", "rampart-password", None).await.unwrap();
        root.user_grant_role("rampart", "rampart-local").await.unwrap();
        root.auth_enable().await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = endpoint.replace("http://", "etcd://");
    let password_file = |name: &str, password: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, password).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    };
    let init = |file: &str| {
        let args = ["init", "--store", &store, "--etcd-user", "rampart", "--etcd-password-file", file];
        support::run(&home, &args, "")
    };

    // A password file others may read is refused before etcd is asked; nothing is created.
    let readable = init(&password_file("readable.password", "rampart-password\n", 0o644));
    assert!(support::stderr(&readable).contains("chmod 600"), "{}", support::stderr(&readable));
    // A wrong password is refused by etcd; nothing is created either.
    let wrong = init(&password_file("wrong.password", "guess\n", 0o600));
    assert!(!wrong.status.success());
    assert!(support::stderr(&wrong).contains("etcd"), "{}", support::stderr(&wrong));
    assert!(!home.join("rampart.toml").exists(), "a refused init left a home behind");

    // The right one: the network runs as that user, its keys under the prefix etcd allows.
    let made = init(&password_file("etcd.password", "rampart-password\n", 0o600));
    assert!(made.status.success(), "{}", support::stderr(&made));
    let config = std::fs::read_to_string(home.join("rampart.toml")).unwrap();
    assert!(config.contains("etcd.password") && !config.contains("rampart-password"), "{config}");
    let net = support::Network::launch(dir, home, 2, &[]);
    let hello = net.call("/hello", &[]);
    assert_eq!(String::from_utf8_lossy(&hello.stdout).trim(), "Hello World!", "{}", support::stderr(&hello));
    let users = ok(&net.home, &["user", "list"]);
    assert!(users.contains("admin"), "{users}");
}

#[test]
fn a_job_goes_on_when_the_gateway_that_took_it_is_killed() {
    let mut c = Cluster::start_with(1, &["jobs"]);
    let (width, height) = (1024, 512);
    let upload = support::png(width, height);
    let file = c.home.join("image.png");
    std::fs::write(&file, &upload).unwrap();
    let job = |i: usize, args: &[&str]| {
        let mut all = vec!["job"];
        all.extend_from_slice(args);
        all.extend(["--gateway", c.urls[i].as_str()]);
        support::run(&c.home, &all, "")
    };
    let id =
        ok(&c.home, &["job", "submit", file.to_str().unwrap(), "--tasks", "200", "--gateway", &c.urls[0]])
            .trim()
            .to_owned();
    let status = |i: usize| -> serde_json::Value {
        serde_json::from_slice(&job(i, &["status", &id, "--json"]).stdout).unwrap_or_default()
    };
    let start = Instant::now();
    while status(1)["tasks"]["done"].as_u64().unwrap_or(0) < 5 {
        assert!(start.elapsed() < Duration::from_secs(30), "the job never started: {}", status(1));
        std::thread::sleep(Duration::from_millis(20));
    }

    // g1 took the job and is the gateway of two of the three nodes: it dies mid-job.
    c.gateways[0] = None; // SIGKILL (Proc's drop)
    let results = || support::job_parts(&c.home, &c.urls[1], "results", &id);
    let written_before: Vec<u32> = results().into_iter().map(|(n, _)| n).collect();
    let before = status(1);
    assert!(before["tasks"]["done"].as_u64().unwrap() < 200, "the job was done before g1 died: {before}");
    let start = Instant::now();
    while status(1)["state"] != "done" {
        assert!(start.elapsed() < Duration::from_secs(90), "the job stopped with g1: {}", status(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Finished through g2 by all three nodes, with one result a task, and the histogram of one
    // process with the same decoder.
    let done = status(1);
    assert_eq!(done["tasks"], serde_json::json!({"done": 200, "total": 200}), "{done}");
    let result = job(1, &["result", &id, "--json"]);
    assert!(result.status.success(), "{}", support::stderr(&result));
    let result: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let limits = rampart_jobs::Limits::default();
    let image = rampart_jobs::count::decode(&upload, &limits).unwrap();
    let whole = rampart_jobs::count::image_rows(&image, 0..height);
    assert_eq!(result["channels"], serde_json::to_value(&whole.channels).unwrap());
    let results = results();
    assert_eq!(results.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    // n1 and n3 reached the registry through g1: they went on through g2.
    let after: HashSet<&str> = results
        .iter()
        .filter(|(n, _)| !written_before.contains(n))
        .filter_map(|(_, r)| r["node"].as_str())
        .collect();
    assert!(after.contains("n1") || after.contains("n3"), "only {after:?} worked after g1 died");
    eprintln!(
        "g1 killed with {} of 200 tasks done; done {:?} later, by {after:?}",
        before["tasks"]["done"],
        start.elapsed()
    );
    assert!(c.converged(3, Duration::from_secs(10)), "g2 routes to {:?}", c.routed_by(1));
}

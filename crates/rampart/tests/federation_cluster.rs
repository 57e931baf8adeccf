//! Federation with a clustered side: west is two gateways sharing a real etcd registry, east a
//! single gateway that lists both of west's. West's peers and exports live in etcd, so either
//! west gateway serves east; with one SIGKILLed, east goes on through the other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

// The etcd launcher rampart-etcd's own tests use.
#[path = "../../rampart-etcd/tests/cluster/mod.rs"]
mod etcd;
mod support;

use std::time::Duration;

use support::{Network, Proc, ok, spawn, stderr};

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn either_gateway_of_a_clustered_peer_serves_and_one_killed_is_passed_over() {
    let etcd = block_on(etcd::Cluster::start(1, None));
    let dir = tempfile::tempdir().unwrap();
    let west = dir.path().join("west");
    let store = format!("etcd://{}", etcd.endpoints().join(",").replace("http://", ""));
    ok(&west, &["init", "--domain", "west", "--store", &store]);
    let gateway = |name: &str| {
        spawn(
            &west,
            &["gateway", "--name", name, "--listen", "127.0.0.1:0"],
            "rampart gateway listening on ",
            name,
        )
    };
    let mut gateways: Vec<Proc> = vec![gateway("g1"), gateway("g2")];
    let urls: Vec<String> =
        gateways.iter().map(|g| g.ready.split_whitespace().nth(4).unwrap().to_owned()).collect();
    let _node = spawn(
        &west,
        &[
            "node",
            "--name",
            "w1",
            "--listen",
            "127.0.0.1:0",
            "--gateway",
            &urls.join(","),
            "--service",
            "echo",
        ],
        "rampart node ",
        "w1",
    );

    let mut east = Network::start_in("east", &[]);
    east.add_node("n1", &["--service", "hello"]);
    let (west_pem, east_pem) = (dir.path().join("west.pem"), dir.path().join("east.pem"));
    ok(&west, &["pki", "bundle", "--out", west_pem.to_str().unwrap()]);
    ok(&east.home, &["pki", "bundle", "--out", east_pem.to_str().unwrap()]);
    let mut add = vec!["network", "add", "west", "--bundle", west_pem.to_str().unwrap()];
    for u in &urls {
        add.extend(["--url", u.as_str()]);
    }
    ok(&east.home, &add);
    // Once, through one west gateway: the registry both share holds it.
    ok(&west, &["network", "add", "east", "--url", &east.url, "--bundle", east_pem.to_str().unwrap()]);
    ok(&west, &["network", "export", "echo", "--to", "east"]);
    ok(&west, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    let call = || east.call("/echo/", &["--token", &alice]);
    assert!(east.eventually(Duration::from_secs(15), || call().status.success()), "{}", stderr(&call()));

    // Both west gateways serve east's requests: each one's metrics count echo answered.
    for _ in 0..20 {
        assert!(call().status.success());
    }
    let served = |url: &str| {
        let out = support::run(&west, &["call", &format!("{url}/_rampart/metrics")], "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter(|l| l.starts_with("rampart_requests_total{service=\"echo\",code=\"200\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let (one, two) = (served(&urls[0]), served(&urls[1]));
    assert!(one > 0 && two > 0, "g1 served {one}, g2 served {two}");

    // One west gateway SIGKILLed: east goes on through the other, no call failing.
    gateways.remove(0);
    let mut failed = Vec::new();
    for _ in 0..20 {
        let out = call();
        if !out.status.success() {
            failed.push(stderr(&out));
        }
    }
    assert!(failed.is_empty(), "{} calls failed: {failed:?}", failed.len());
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&east.home, &["network", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["up"], true, "west is still up through g2: {listed}");
    let events = || std::fs::read_to_string(east.home.join("audit.jsonl")).unwrap_or_default();
    let seen = |kind: &str| {
        east.eventually(Duration::from_secs(10), || events().contains(&format!("\"kind\":\"{kind}\"")))
    };
    assert!(seen("peer_gateway_ejected"), "{}", events());

    // g1 back where it was: it rejoins east's pool by answering its catalog, and serves again.
    let listen = urls[0].trim_start_matches("https://").to_owned();
    gateways.insert(
        0,
        spawn(
            &west,
            &["gateway", "--name", "g1", "--listen", &listen],
            "rampart gateway listening on ",
            "g1b",
        ),
    );
    assert!(seen("peer_gateway_rejoined"), "{}", events());
    let before = served(&urls[0]);
    assert!(
        east.eventually(Duration::from_secs(10), || call().status.success() && served(&urls[0]) > before)
    );
}

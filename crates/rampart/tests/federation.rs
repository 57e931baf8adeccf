//! Federation: two networks on 127.0.0.1, `east` and `west`, each with its own home and trust
//! domain. A service only west hosts answers an east caller through east's gateway, with the
//! caller's identity carried in a signed assertion and policed by west's own policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Network, ok, stderr, stdout};

/// East and west, peered both ways by their bundles; west hosts `echo` and `data` and exports
/// `echo` to east; east hosts `hello` only.
struct Pair {
    east: Network,
    west: Network,
}

fn bundle_of(net: &Network, name: &str) -> String {
    let path = net.dir.path().join(format!("{name}.pem"));
    ok(&net.home, &["pki", "bundle", "--out", path.to_str().unwrap()]);
    path.display().to_string()
}

fn pair() -> Pair {
    let mut east = Network::start_in("east", &[]);
    let mut west = Network::start_in("west", &[]);
    east.add_node("n1", &["--service", "hello"]);
    west.add_node("n1", &["--service", "echo", "--service", "data"]);
    let (east_pem, west_pem) = (bundle_of(&east, "east"), bundle_of(&west, "west"));
    ok(&east.home, &["network", "add", "west", "--url", &west.url, "--bundle", &west_pem]);
    ok(&west.home, &["network", "add", "east", "--url", &east.url, "--bundle", &east_pem]);
    Pair { east, west }
}

fn events(net: &Network) -> String {
    std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default()
}

#[test]
fn a_west_service_answers_an_east_caller_policed_by_west() {
    let Pair { east, west } = pair();
    let alice = east.user("alice");
    let bob = east.user("bob");
    // East decides who may use the service at all; west whom it serves.
    for who in ["user/alice", "user/bob"] {
        ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", who]);
    }
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/user/alice"]);
    ok(&west.home, &["policy", "deny", "--service", "echo", "--principal", "peer:east/user/bob"]);

    // Before west exports it, east knows no echo.
    let before = east.call("/echo/x", &["--token", &alice]);
    assert!(stdout(&before).contains("unknown_service"), "{}", stdout(&before));
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    let answered = east.eventually(Duration::from_secs(10), || {
        east.call("/echo/x?y=1", &["--token", &alice]).status.success()
    });
    assert!(
        answered,
        "east never learnt west's echo: {}",
        std::fs::read_to_string(east.home.join("gateway.log")).unwrap()
    );
    let out = east.call("/echo/x?y=1", &["--token", &alice]);
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["principal"], "peer:east/user/alice", "west's node sees the vouched caller");
    assert_eq!(seen["path"], "/x");
    assert_eq!(seen["query"], "y=1", "the query string travels");

    // Bob: west's own 403, passed back; the event is west's.
    let out = east.call("/echo/x", &["--token", &bob, "-v"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    assert!(stdout(&out).contains("peer:east/user/bob"), "{}", stdout(&out));
    assert!(events(&west).contains("\"policy_denied\""), "west records the denial");

    // A service west hosts but does not export: 404 at east, and west receives nothing.
    let out = east.call("/data/k", &["--token", &alice]);
    assert!(stdout(&out).contains("unknown_service"), "{}", stdout(&out));
    assert!(!events(&west).contains("\"peer_not_exported\""), "west was never asked");
}

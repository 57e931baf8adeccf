//! Environments kept apart: a `test` network and a `prod` network side by side, each its own
//! home and trust domain. Nothing of `test` passes at `prod` — a node cannot register, a user
//! cannot call, a gateway cannot reach a node — not even with `test`'s files copied into the
//! `prod` home, and each refusal is an event on the hop that refused it.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Network, ok, refused};

/// A process that is not expected to become ready (killed when dropped).
struct Unready(Child);

impl Drop for Unready {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unready(home: &Path, args: &[&str], log: &str) -> Unready {
    let log = std::fs::File::create(home.join(format!("{log}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("RAMPART_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Unready(child)
}

/// The kinds of the events in `net`'s audit log.
fn kinds(net: &Network) -> Vec<String> {
    let log = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_owned))
        .collect()
}

fn has_event(net: &Network, kind: &str) -> bool {
    net.eventually(Duration::from_secs(10), || kinds(net).iter().any(|k| k == kind))
}

/// Copies `test`'s certificate and key of `name` into the `prod` home, as if somebody had.
fn copy_over(test: &Network, prod: &Network, name: &str) {
    for ext in ["pem", "key"] {
        let from = test.home.join(format!("pki/test/issued/{name}.{ext}"));
        let to = prod.home.join(format!("pki/prod/issued/{name}.{ext}"));
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn nothing_of_test_passes_at_prod_on_any_hop_even_copied_over_and_each_refusal_is_an_event() {
    let mut prod = Network::start_in("prod", &[]);
    prod.add_node("p1", &["--service", "hello"]);
    let test = Network::start_in("test", &[]);
    ok(&prod.home, &["policy", "allow", "--service", "hello", "--principal", "*"]);

    // A test node, with the test home, pointed at prod's gateway: refused in the handshake.
    let node = unready(
        &test.home,
        &["node", "--name", "t1", "--listen", "127.0.0.1:0", "--gateway", &prod.url],
        "t1",
    );
    // The node refuses prod's gateway (not signed by test's CA) and says so; prod sees the
    // handshake fail.
    assert!(has_event(&prod, "tls_handshake_failed"), "prod's events: {:?}", kinds(&prod));
    let log = || std::fs::read_to_string(test.home.join("t1.log")).unwrap_or_default();
    assert!(
        test.eventually(Duration::from_secs(10), || log()
            .contains("OtherDomain { presented: \"spiffe://prod/gateway/gateway\"")),
        "{}",
        log()
    );
    // Stopped, so that its retries do not earn the address a ban.
    drop(node);
    // Its certificate and key copied into prod's home: still refused (prod's CA never signed
    // them), and never in prod's pool.
    copy_over(&test, &prod, "t1");
    let copied = unready(
        &prod.home,
        &["node", "--name", "t1", "--listen", "127.0.0.1:0", "--gateway", &prod.url],
        "t1-copied",
    );
    assert!(has_event(&prod, "tls_other_domain"), "prod's events: {:?}", kinds(&prod));
    assert_eq!(prod.node_count(), 1, "only p1 serves prod");
    drop(copied);

    // A test user: the test token is unknown at prod, the test certificate refused.
    let token = test.user("bob");
    let out = prod.call("/hello/", &["--token", &token]);
    assert!(!out.status.success());
    assert!(has_event(&prod, "token_unknown"), "prod's events: {:?}", kinds(&prod));
    ok(&test.home, &["pki", "issue", "--role", "user", "--name", "carol"]);
    copy_over(&test, &prod, "carol");
    let (cert, key) = (
        prod.home.join("pki/prod/issued/carol.pem").display().to_string(),
        prod.home.join("pki/prod/issued/carol.key").display().to_string(),
    );
    let other_domain = || kinds(&prod).iter().filter(|k| *k == "tls_other_domain").count();
    let before = other_domain();
    let err =
        refused(&prod.home, &["call", &format!("{}/hello/", prod.url), "--cert", &cert, "--key", &key], "");
    assert!(!err.is_empty());
    assert!(prod.eventually(Duration::from_secs(10), || other_domain() > before), "{:?}", kinds(&prod));

    // Test's gateway certificate at a prod node: the node refuses the handshake, and reports it
    // to its own gateway.
    let (gw_cert, gw_key) = (
        test.home.join("pki/test/issued/gateway.pem").display().to_string(),
        test.home.join("pki/test/issued/gateway.key").display().to_string(),
    );
    let node_addr = prod.node_addr(0);
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &node_addr, "-cert", &gw_cert, "-key", &gw_key])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&s_client.stdout).into_owned();
    assert!(!said.contains("HTTP/"), "the node answered test's gateway: {said}");
    assert!(has_event(&prod, "node_refused_caller"), "prod's events: {:?}", kinds(&prod));

    // And prod's own callers are unaffected.
    let out = prod.call("/hello/", &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
}

//! The attack suite: a running network attacked from outside, over the network, as an attacker
//! would. Each attack asserts the status the attacker gets, the security event the operator
//! sees, and that a well-behaved client is still served.
//!
//! - `catalog`: named attacks in families, one network a family, run by one runner that checks
//!   each case's answer, event and secrets alike (see its documentation);
//! - `http`: methods, paths, URI and head limits, idle connections;
//! - `tls`: every kind of refused client certificate, its event and its ban;
//! - `envelopes`: replays across replicas, retries under an idempotency key;
//! - `proxy`: clients behind a PROXY protocol forwarder, and headers forged, missing, bad or slow.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

#[path = "../support/mod.rs"]
mod support;

mod catalog;
mod envelopes;
mod http;
mod proxy;
mod tls;

use std::process::Command;

use support::Network;

/// The events in `audit.jsonl`.
fn audit(net: &Network) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Events of `kind` in `audit.jsonl`.
fn events_of(net: &Network, kind: &str) -> Vec<serde_json::Value> {
    audit(net).into_iter().filter(|e| e["kind"] == kind).collect()
}

/// Waits (bounded) until `audit.jsonl` holds at least `n` events of `kind` matching `pred`.
fn wait_events(
    net: &Network,
    kind: &str,
    n: usize,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let found = net.eventually(std::time::Duration::from_secs(10), || {
        events_of(net, kind).iter().filter(|e| pred(e)).count() >= n
    });
    let all = events_of(net, kind);
    assert!(found, "fewer than {n} {kind} events; audit: {:#?}", audit(net));
    all.into_iter().filter(|e| pred(e)).collect()
}

/// What curl, an outside client, got: its exit status, the HTTP status and the body.
#[derive(Debug)]
struct Curl {
    exit: Option<i32>,
    status: u16,
    body: String,
}

/// `curl ARGS URL` against the network's gateway with its CA, `--path-as-is`; `auth` is
/// either the admin certificate (`None`) or a bearer token.
fn curl(net: &Network, args: &[&str], path: &str, token: Option<&str>) -> Curl {
    let ca = net.home.join("pki/local/ca.pem");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--max-time", "20", "--cacert"]).arg(&ca);
    match token {
        Some(t) => {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        None => {
            cmd.args(["--cert", &net.pki_file("admin.pem"), "--key", &net.pki_file("admin.key")]);
        }
    }
    let out = cmd
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("{}{path}", net.url))
        .output()
        .expect("curl is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl { exit: out.status.code(), status: status.trim().parse().unwrap_or(0), body: body.to_owned() }
}

/// A JSON body's field.
fn field(body: &str, name: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .map(|v| v[name].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// A TLS client configuration presenting `name`'s certificate (from the home's issued files)
/// to the gateway.
fn tls_as(net: &Network, name: &str) -> rustls::ClientConfig {
    let dir = net.home.join("pki/local");
    let m = rampart_net::TlsMaterial::load(
        rampart_pki::TrustDomain::new("local").unwrap(),
        &dir.join("ca.pem"),
        &dir.join(format!("issued/{name}.pem")),
        &dir.join(format!("issued/{name}.key")),
        None,
    )
    .unwrap();
    m.client_config(&[rampart_pki::Role::Gateway]).unwrap()
}

/// An in-process HTTPS client presenting `name`'s certificate (call within a runtime).
fn client_as(net: &Network, name: &str) -> rampart_net::client::HttpsClient {
    rampart_net::client::https_client(tls_as(net, name), std::time::Duration::from_secs(2))
}

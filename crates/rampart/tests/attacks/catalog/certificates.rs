//! Client certificates at the front door: every malformed or foreign kind is refused in the
//! handshake and named by its own event kind.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa};

use super::{Attack, Case, Expect, Seen, Target, read_all, run, tls_from};
use crate::support::{Network, ok};
use crate::tls::{Identity, foreign_ca, from_files, leaf_params, lookalike_ca, our_ca, signed};

const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// `GET /hello` from `from` presenting `id`.
fn present(net: &Network, from: IpAddr, id: &Identity) -> Seen {
    let live = rampart_net::tls::LiveIdentity::new(id.chain.clone(), id.key.clone_key()).unwrap();
    let Some(mut tls) = tls_from(net, from, Some(live)) else { return Seen::default() };
    // TLS 1.3: the gateway's verdict on the certificate arrives after the client finished.
    use std::io::Write as _;
    if tls.write_all(GET_HELLO).is_err() {
        return Seen::default();
    }
    Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
}

/// A case presenting `id`: refused in the handshake with event `kind`.
fn refused(name: &str, id: Identity, kind: &'static str) -> Case {
    presented(name, id, Expect::NoAnswer, kind)
}

/// A case presenting `id` that gets `expect` and event `kind`.
fn presented(name: &str, id: Identity, expect: Expect, kind: &'static str) -> Case {
    Case::new(name, Attack::Custom(Box::new(move |net, from| present(net, from, &id))), expect, Some(kind))
}

#[test]
fn certificates() {
    let net = Network::start(1, &[]);
    let ca = our_ca(&net);
    let me = "spiffe://local/user/mallory";
    let (foreign, lookalike) = (foreign_ca(), lookalike_ca(&net));
    let pki = net.home.join("pki/local");
    ok(&net.home, &["pki", "init", "--domain", "other"]);
    ok(&net.home, &["pki", "issue", "--domain", "other", "--role", "user", "--name", "mallory"]);
    let other = net.home.join("pki/other/issued");
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "revoked"]);
    ok(&net.home, &["pki", "revoke", "--name", "revoked", "--reason", "key-compromise"]);
    let with = |edit: &dyn Fn(&mut CertificateParams)| {
        let mut p = leaf_params(&[me]);
        edit(&mut p);
        p
    };
    let expired = with(&|p| {
        (p.not_before, p.not_after) = (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2021, 1, 1))
    });
    let early = with(&|p| {
        (p.not_before, p.not_after) = (rcgen::date_time_ymd(2090, 1, 1), rcgen::date_time_ymd(2091, 1, 1))
    });
    let ca_leaf = with(&|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
    let server_only = with(&|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let file = |dir: &std::path::Path, name: &str| dir.join(name).display().to_string();
    let issued = pki.join("issued");

    let revoked = from_files(&file(&issued, "revoked.pem"), &file(&issued, "revoked.key"));
    let cases = vec![
        refused("signed by a foreign CA", signed(leaf_params(&[me]), &foreign), "tls_unknown_ca"),
        refused(
            "signed by a CA copying our CA's name",
            signed(leaf_params(&[me]), &lookalike),
            "tls_unknown_ca",
        ),
        refused(
            "another trust domain's certificate",
            from_files(&file(&other, "mallory.pem"), &file(&other, "mallory.key")),
            "tls_other_domain",
        ),
        refused(
            "our CA naming another trust domain",
            signed(leaf_params(&["spiffe://other/user/mallory"]), &ca),
            "tls_other_domain",
        ),
        refused("expired", signed(expired, &ca), "tls_expired"),
        refused("not yet valid", signed(early, &ca), "tls_not_yet_valid"),
        refused("no SAN", signed(leaf_params(&[]), &ca), "tls_bad_identity"),
        refused(
            "two URI SANs",
            signed(leaf_params(&[me, "spiffe://local/admin/x"]), &ca),
            "tls_bad_identity",
        ),
        refused(
            "an unknown role",
            signed(leaf_params(&["spiffe://local/root/mallory"]), &ca),
            "tls_bad_identity",
        ),
        refused(
            "not a SPIFFE URI",
            signed(leaf_params(&["https://local/user/mallory"]), &ca),
            "tls_bad_identity",
        ),
        refused("a CA certificate as a leaf", signed(ca_leaf, &ca), "tls_bad_identity"),
        refused("a server-only key usage", signed(server_only, &ca), "tls_bad_identity"),
        // Nodes and gateways reach the front door (to register, to federate), but no rule
        // lets them call a service.
        presented(
            "a node's certificate calling a service",
            from_files(&file(&issued, "n1.pem"), &file(&issued, "n1.key")),
            Expect::Status(403),
            "policy_denied",
        ),
        presented(
            "the gateway's own certificate calling a service",
            from_files(&file(&issued, "gateway.pem"), &file(&issued, "gateway.key")),
            Expect::Status(403),
            "policy_denied",
        ),
        Case::new(
            "a revoked certificate",
            Attack::Custom(Box::new(move |net, from| {
                // The gateway reloads the CRL by itself: it may pass once at first (bounded).
                let start = Instant::now();
                loop {
                    let seen = present(net, from, &revoked);
                    if seen.status.is_none() || start.elapsed() > Duration::from_secs(20) {
                        return seen;
                    }
                }
            })),
            Expect::NoAnswer,
            Some("tls_revoked"),
        ),
    ];
    run("certificates", 2, &Target::new(&net, &[]), cases);
}

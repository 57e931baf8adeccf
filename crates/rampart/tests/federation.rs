//! Federation: two networks on 127.0.0.1, `east` and `west`, each with its own home and trust
//! domain. A service only west hosts answers an east caller through east's gateway, with the
//! caller's identity carried in a signed assertion and policed by west's own policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_federation::assertion::{ForRequest, Signer};
use rampart_pki::{Role, TrustDomain};
use support::federation::{Pair, bundle_of, client_to, files, minted, pair, signer};
use support::{Network, ok, spawn, stderr, stdout};

/// East's user alice, allowed `echo` at east; west exports it to east and serves any east
/// caller; returns alice's token once her calls go through.
fn alice_reaches_west_echo(east: &Network, west: &Network) -> String {
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    let through = east
        .eventually(Duration::from_secs(10), || east.call("/echo/", &["--token", &alice]).status.success());
    assert!(through, "alice never reached west's echo");
    alice
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

    // Each side's view: east imports echo from west (up, catalog fresh), west exports it.
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&east.home, &["network", "list", "--json"])).unwrap();
    assert_eq!(
        (listed[0]["name"].as_str(), listed[0]["up"].as_bool()),
        (Some("west"), Some(true)),
        "{listed}"
    );
    assert_eq!(listed[0]["imports"], serde_json::json!(["echo"]));
    assert!(listed[0]["catalog_age_ms"].as_u64().unwrap() < 3000);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&west.home, &["network", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["exports"], serde_json::json!(["echo"]), "{listed}");
    let table = ok(&east.home, &["network", "list"]);
    assert!(table.contains("HEALTH") && table.contains(" up "), "{table}");

    // A caller by certificate goes as its identity.
    ok(&east.home, &["pki", "issue", "--role", "user", "--name", "carol"]);
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/carol"]);
    ok(
        &west.home,
        &["policy", "allow", "--service", "echo", "--principal", "peer:east/spiffe://east/user/carol"],
    );
    let issued = east.home.join("pki/east/issued");
    let (cert, key) = (issued.join("carol.pem"), issued.join("carol.key"));
    let out = east.call("/echo/", &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["principal"], "peer:east/spiffe://east/user/carol");

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

fn count(events: &str, kind: &str) -> usize {
    events.matches(&format!("\"kind\":\"{kind}\"")).count()
}

#[test]
fn assertions_replayed_forged_misbound_or_expired_are_refused_as_are_minted_identities() {
    let Pair { east, west } = pair();
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    let gateway = files(&east, "east", "gateway");
    let client = client_to(&west, "west", (gateway.0.clone(), gateway.1.clone_key()));
    let honest = signer(&gateway, &gateway.1);
    let other_key = signer(&gateway, &files(&east, "east", "admin").1);
    let west_domain = TrustDomain::new("west").unwrap();
    let sign = |s: &Signer, method: &str, pq: &str, at: u64| {
        let req = ForRequest {
            subject: "user/mallory",
            audience: &west_domain,
            method,
            path_and_query: pq,
            deadline: None,
        };
        s.sign(req, at).unwrap()
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let url = |pq: &str| format!("{}{pq}", west.url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let send = |method: &str, pq: &str, assertion: Option<&str>| {
        let headers: Vec<(&str, &str)> = assertion.map(|a| ("rampart-assertion", a)).into_iter().collect();
        rt.block_on(support::request(&client, method, &url(pq), &headers, "")).unwrap()
    };

    let good = sign(&honest, "GET", "/echo/a", now);
    let (status, body, _) = send("GET", "/echo/a", Some(&good));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("peer:east/user/mallory"), "{body}");
    // Captured and sent again; signed by another key; for another method, path; expired; none.
    let refused = [
        ("GET", "/echo/a", Some(good.clone())),
        ("GET", "/echo/a", Some(sign(&other_key, "GET", "/echo/a", now))),
        ("POST", "/echo/a", Some(sign(&honest, "GET", "/echo/a", now))),
        ("GET", "/echo/b", Some(sign(&honest, "GET", "/echo/a", now))),
        ("GET", "/echo/a?admin=1", Some(sign(&honest, "GET", "/echo/a", now))),
        ("GET", "/echo/a", Some(sign(&honest, "GET", "/echo/a", now - 120))),
        ("GET", "/echo/a", None),
    ];
    for (method, pq, assertion) in &refused {
        let (status, body, _) = send(method, pq, assertion.as_deref());
        assert_eq!(status, 401, "{method} {pq}: {body}");
        assert!(body.contains("assertion"), "{body}");
    }
    let seen = events(&west);
    assert_eq!(count(&seen, "assertion_replayed"), 1, "{seen}");
    assert_eq!(count(&seen, "assertion_refused"), refused.len() - 1, "{seen}");

    // West's CA minting an east gateway is refused by east; east's CA (trusted at west for
    // east's identities only) minting a west admin, or an east user posing as a gateway, is
    // refused by west. Each a TLS refusal on the side that refused.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hello = |net: &Network, domain: &str, id| {
        let c = client_to(net, domain, id);
        rt.block_on(support::request(&c, "GET", &format!("{}/hello/", net.url), &[], ""))
    };
    assert!(hello(&east, "east", minted(&west, "west", "spiffe://east/gateway/evil")).is_err());
    assert!(hello(&west, "west", minted(&east, "east", "spiffe://west/admin/evil")).is_err());
    assert!(hello(&west, "west", minted(&east, "east", "spiffe://east/user/evil")).is_err());
    // The refusing side records its event just after the client saw the refusal: polled.
    let recorded =
        |net: &Network, kind: &str| net.eventually(Duration::from_secs(5), || count(&events(net), kind) >= 1);
    assert!(recorded(&east, "tls_unknown_ca"), "{}", events(&east));
    assert!(recorded(&west, "tls_unknown_ca"), "{}", events(&west));
    assert!(recorded(&west, "tls_wrong_role"), "{}", events(&west));
}

#[test]
fn services_neither_network_hosts_are_never_bounced_between_them() {
    let Pair { east, west } = pair();
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "*", "--principal", "user/alice"]);
    ok(&west.home, &["policy", "allow", "--service", "*", "--principal", "peer:east/*"]);
    // Each exports to the other a service neither hosts.
    ok(&west.home, &["network", "export", "ghost", "--to", "east"]);
    ok(&east.home, &["network", "export", "ghost", "--to", "west"]);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    assert!(
        east.eventually(Duration::from_secs(10), || east
            .call("/echo/", &["--token", &alice])
            .status
            .success())
    );
    let out = east.call("/ghost/", &["--token", &alice]);
    assert!(stdout(&out).contains("unknown_service"), "cut at once: {}", stdout(&out));
    assert!(!events(&west).contains("ghost"), "west was never asked");
}

#[test]
fn a_killed_peer_gateway_is_answered_503_at_once_and_resumes_when_restarted() {
    let Pair { east, mut west } = pair();
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/user/alice"]);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    let call = || east.call("/echo/", &["--token", &alice, "-v"]);
    assert!(east.eventually(Duration::from_secs(10), || call().status.success()));

    // Under load: four clients loop GET /echo/ through east for the whole test (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (roots, _) =
            rampart_net::TlsMaterial::load_roots(&east.home.join("pki/east/ca.pem"), None).unwrap();
        let tls = rampart_net::tls::client_config(
            &TrustDomain::new("east").unwrap(),
            roots,
            Vec::new(),
            None,
            &[Role::Gateway],
        )
        .unwrap();
        let client = rampart_net::client::https_client(tls, Duration::from_secs(2));
        let (url, token, stop) = (format!("{}/echo/", east.url), alice.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        let (client, url, token, stop) =
                            (client.clone(), url.clone(), token.clone(), stop.clone());
                        tokio::spawn(async move {
                            let auth = format!("Bearer {token}");
                            let mut seen = Vec::new();
                            while !stop.load(Ordering::Relaxed) && seen.len() < 20_000 {
                                let answer =
                                    support::request(&client, "GET", &url, &[("authorization", &auth)], "")
                                        .await;
                                seen.push(match answer {
                                    Ok((status, _, headers)) => (status, headers.contains_key("retry-after")),
                                    Err(_) => (0, false),
                                });
                            }
                            seen
                        })
                    })
                    .collect();
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                all
            })
        })
    };

    west.gateway.kill_and_reap();
    let killed = std::time::Instant::now();
    // Within a second or two: 503 with Retry-After, and east's event that west is down.
    let unavailable = east.eventually(Duration::from_secs(3), || {
        let out = call();
        stderr(&out).contains("503") && stderr(&out).to_ascii_lowercase().contains("retry-after")
    });
    assert!(unavailable, "{}", stderr(&call()));
    assert!(east.eventually(Duration::from_secs(4), || events(&east).contains("\"peer_down\"")));
    eprintln!("peer down after {:?}", killed.elapsed());
    // A request refused because only a down peer serves it is an event of its own.
    let refused = call();
    assert!(stderr(&refused).contains("503"), "{}", stderr(&refused));
    assert!(events(&east).contains("\"peer_unavailable\""), "{}", events(&east));

    // Restarted where it was: served again, nothing done at east.
    let listen = west.url.trim_start_matches("https://").to_owned();
    west.gateway =
        spawn(&west.home, &["gateway", "--listen", &listen], "rampart gateway listening on ", "gateway2");
    assert!(east.eventually(Duration::from_secs(15), || call().status.success()), "{}", stderr(&call()));
    // Up when first reached, and up again after the restart.
    assert_eq!(count(&events(&east), "peer_up"), 2, "{}", events(&east));
    assert_eq!(count(&events(&east), "peer_down"), 1);
    // Every answer under load was served, or 503 with Retry-After: nothing else.
    stop.store(true, Ordering::Relaxed);
    let seen = load.join().unwrap();
    let served = seen.iter().filter(|s| s.0 == 200).count();
    let told_later = seen.iter().filter(|s| **s == (503, true)).count();
    let other: Vec<_> = seen.iter().filter(|s| s.0 != 200 && **s != (503, true)).collect();
    eprintln!("under load: {} requests, {served} served, {told_later} told 503 with Retry-After", seen.len());
    assert!(served > 0 && told_later > 0, "{served} served, {told_later} refused");
    assert!(
        other.is_empty(),
        "{} answers neither 200 nor 503 with Retry-After: {:?}",
        other.len(),
        &other[..other.len().min(10)]
    );
}

#[test]
fn a_peer_adding_a_ca_to_its_bundle_is_followed_without_a_command_and_no_request_fails() {
    let Pair { east, west } = pair();
    let alice = alice_reaches_west_echo(&east, &west);
    let call = || east.call("/echo/", &["--token", &alice]);
    let fingerprint_at_east = || {
        let listed: serde_json::Value =
            serde_json::from_str(&ok(&east.home, &["network", "list", "--json"])).unwrap();
        listed[0]["fingerprint"].as_str().unwrap().to_owned()
    };
    let before = fingerprint_at_east();

    // West's rotation begins: a new CA beside the old one in its bundle.
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "west CA 2");
    let new_ca = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    let ca_file = west.home.join("pki/west/ca.pem");
    let mut pem = std::fs::read_to_string(&ca_file).unwrap();
    pem.push_str(&new_ca.pem());
    std::fs::write(&ca_file, pem).unwrap();
    let (_, rotated) = bundle_of(&west, "west-rotated");
    assert_ne!(rotated, before);

    let mut failed = Vec::new();
    let mut calls = 0;
    let followed = east.eventually(Duration::from_secs(10), || {
        let out = call();
        calls += 1;
        if !out.status.success() {
            failed.push(stderr(&out));
        }
        fingerprint_at_east() == rotated
    });
    assert!(followed, "east still trusts {}", fingerprint_at_east());
    // And after the switch to the new trust.
    for _ in 0..5 {
        let out = call();
        calls += 1;
        if !out.status.success() {
            failed.push(stderr(&out));
        }
    }
    assert!(failed.is_empty(), "{} of {calls} calls failed: {failed:?}", failed.len());
}

#[test]
fn an_envelope_passes_both_gateways_unopened_and_only_a_west_node_holding_the_keyring_opens_it() {
    let Pair { east, mut west } = pair();
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    let sealed = || east.call("/echo/", &["--token", &alice, "--encrypt", "-d", "sealed words", "-v"]);
    assert!(
        east.eventually(Duration::from_secs(10), || east
            .call("/echo/", &["--token", &alice])
            .status
            .success())
    );

    // West's node holds west's own keyring: it cannot open east's envelope, and says so.
    let out = sealed();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("400"), "{}", stderr(&out));
    assert!(stdout(&out).contains("bad_envelope"), "{}", stdout(&out));
    // The node reports it to its gateway just after answering.
    let recorded = west.eventually(Duration::from_secs(5), || events(&west).contains("\"envelope_refused\""));
    assert!(recorded, "the refusal is west's event");

    // A west node holding the keyring the caller uses (copied by a channel the operators trust).
    std::fs::copy(east.home.join("keys/payload.keys"), west.home.join("keys/payload.keys")).unwrap();
    west.nodes.clear(); // n1, with the old keyring, is gone
    west.add_node("n2", &["--service", "echo"]);
    let opened = east.eventually(Duration::from_secs(10), || sealed().status.success());
    assert!(opened, "{}", stderr(&sealed()));
    let seen: serde_json::Value = serde_json::from_slice(&sealed().stdout).unwrap();
    assert_eq!(seen["body"], "sealed words", "opened by west's node, sealed again for the caller");
}

#[test]
fn local_replicas_come_first_unless_the_service_prefers_peers() {
    let Pair { mut east, west } = pair();
    east.add_node("n2", &["--service", "echo"]);
    let alice = east.user("alice");
    ok(&east.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    let principal = |east: &Network| {
        let out = east.call("/echo/", &["--token", &alice]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["principal"].clone()
    };
    let imported = || {
        let listed: serde_json::Value =
            serde_json::from_str(&ok(&east.home, &["network", "list", "--json"])).unwrap();
        listed[0]["imports"] == serde_json::json!(["echo"])
    };
    assert!(east.eventually(Duration::from_secs(10), imported));
    for _ in 0..5 {
        assert_eq!(principal(&east), "user/alice", "served by east's own replica");
    }

    // The same service preferring peers: west serves it while west is up.
    let path = east.home.join("rampart.toml");
    let text =
        std::fs::read_to_string(&path).unwrap().replace("prefer_peers = []", "prefer_peers = [\"echo\"]");
    std::fs::write(&path, text).unwrap();
    east.gateway.signal("TERM");
    let _ = east.gateway.child.wait();
    let listen = east.url.trim_start_matches("https://").to_owned();
    east.gateway =
        spawn(&east.home, &["gateway", "--listen", &listen], "rampart gateway listening on ", "gateway2");
    let to_west = east.eventually(Duration::from_secs(15), || principal(&east) == "peer:east/user/alice");
    assert!(to_west, "{}", principal(&east));
}

#[test]
fn a_gateway_whose_certificate_is_renewed_goes_on_forwarding_with_assertions_of_its_new_key() {
    let Pair { east, west } = pair();
    let alice = alice_reaches_west_echo(&east, &west);
    let call = || east.call("/echo/", &["--token", &alice]);

    // East's gateway certificate renewed under it: its links to west are made again with it,
    // so each assertion is signed by the key of the connection it travels on.
    let printed = ok(&east.home, &["pki", "renew", "--domain", "east", "--name", "gateway"]);
    assert!(printed.contains("new serial"), "{printed}");
    let (mut calls, mut failed) = (0, Vec::new());
    let start = std::time::Instant::now();
    // Bounded: 4 s of calls, one at a time.
    while start.elapsed() < Duration::from_secs(4) {
        let out = call();
        calls += 1;
        if !out.status.success() {
            failed.push(stderr(&out));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {calls} calls failed: {failed:?}\neast's events: {}\nwest's events: {}",
        failed.len(),
        events(&east),
        events(&west)
    );
    assert!(!events(&west).contains("assertion_refused"), "{}", events(&west));
}

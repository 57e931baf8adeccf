//! Every rejection is a security event: provoked over the network, then found in
//! `audit.jsonl`, in the live SSE stream and in the metrics. Admission limits hold while a
//! well-behaved client keeps getting answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use support::{Network, admin_client, ok, request, run, stdout};
use tokio::io::AsyncWriteExt;

/// Kinds in `audit.jsonl`.
fn audit_kinds(net: &Network) -> BTreeSet<String> {
    let text = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Follows the SSE stream in the background, collecting event kinds.
fn follow_stream(rt: &tokio::runtime::Runtime, net: &Network) -> Arc<Mutex<BTreeSet<String>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let (client, url, out) = (
        rt.block_on(async { admin_client(&net.home) }),
        format!("{}/_rampart/events", net.url),
        seen.clone(),
    );
    rt.spawn(async move {
        let req = http::Request::get(url)
            .header("accept", "text/event-stream")
            .body(rampart_net::full(""))
            .unwrap();
        let mut body = client.request(req).await.unwrap().into_body();
        let mut buf = String::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            buf.push_str(&String::from_utf8_lossy(&data));
            for line in buf.lines().filter_map(|l| l.strip_prefix("data: ")) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    out.lock().unwrap().insert(v["kind"].as_str().unwrap_or_default().to_owned());
                }
            }
            if let Some(i) = buf.rfind("\n\n") {
                buf.drain(..i + 2);
            }
        }
    });
    seen
}

fn metrics(net: &Network) -> String {
    stdout(&net.call("/_rampart/metrics", &[]))
}

#[test]
fn each_rejection_is_an_event_in_the_log_the_stream_and_the_metrics() {
    let mut net = Network::start_with(
        1,
        &[],
        &[
            ("max_body_bytes", "1024"),
            ("max_uri_bytes", "512"),
            ("ban_after_failures", "0"),
            ("lease_ttl", "\"1500ms\""),
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stream = follow_stream(&rt, &net);
    let client = rt.block_on(async { admin_client(&net.home) });
    // Give the stream a moment to subscribe: poll until a first provoked event shows up in it.
    let bob = net.user("bob");
    assert!(net.eventually(Duration::from_secs(10), || {
        net.call("/hello", &["--token", "rpt_nope"]);
        stream.lock().unwrap().contains("token_malformed")
    }));

    // Tokens: unknown, revoked, expired-by-scope, removed user; no credentials; policy.
    net.call("/hello", &["--token", "rpt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]);
    let scoped = ok(&net.home, &["token", "issue", "--user", "bob", "--service", "echo"]).trim().to_owned();
    net.call("/hello", &["--token", &scoped]);
    let revoked = ok(&net.home, &["token", "issue", "--user", "bob"]).trim().to_owned();
    net.call("/hello", &["--token", &revoked]); // verified (policy_denied), so kept by the gateway
    ok(&net.home, &["token", "revoke", &revoked]);
    assert!(net.eventually(Duration::from_secs(5), || {
        stdout(&net.call("/hello", &["--token", &revoked])).contains("revoked")
    }));
    net.call("/hello", &["--token", &bob]); // no policy: policy_denied
    let short = ok(&net.home, &["token", "issue", "--user", "bob", "--ttl", "1s"]).trim().to_owned();
    assert!(net.eventually(Duration::from_secs(5), || {
        stdout(&net.call("/hello", &["--token", &short])).contains("expired")
    }));
    rt.block_on(request(
        &client,
        "GET",
        &format!("{}/_rampart/events", net.url),
        &[("authorization", &format!("Bearer {bob}"))],
        "",
    ))
    .unwrap(); // a user on the admin API: admin_forbidden
    ok(&net.home, &["user", "remove", "bob"]);
    net.call("/hello", &["--token", &bob]);
    run(&net.home, &["call", &format!("{}/hello", net.url), "--token", "x"], ""); // malformed again
    // Sizes.
    let (status, _, _) =
        rt.block_on(request(&client, "POST", &format!("{}/echo", net.url), &[], &"x".repeat(4096))).unwrap();
    assert_eq!(status, 413);
    let (status, _, _) = rt
        .block_on(request(&client, "GET", &format!("{}/hello?{}", net.url, "q".repeat(2000)), &[], ""))
        .unwrap();
    assert_eq!(status, 414);
    // TLS: a certificate of another trust domain.
    ok(&net.home, &["pki", "init", "--domain", "other"]);
    ok(&net.home, &["pki", "issue", "--domain", "other", "--role", "admin", "--name", "admin"]);
    let d = net.home.join("pki/other/issued");
    net.call(
        "/hello",
        &["--cert", d.join("admin.pem").to_str().unwrap(), "--key", d.join("admin.key").to_str().unwrap()],
    );
    // A node refusing a caller that is not a gateway (reported by the node).
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "mallory"]);
    let node_url = format!("https://{}/", net.node_addr(0));
    run(
        &net.home,
        &["call", &node_url, "--cert", &net.pki_file("mallory.pem"), "--key", &net.pki_file("mallory.key")],
        "",
    );
    // Health: a node that stops heartbeating.
    net.add_node("n2", &[]);
    net.nodes[1].signal("STOP");

    let expected = [
        "token_malformed",
        "token_unknown",
        "token_out_of_scope",
        "token_revoked",
        "token_expired",
        "token_user_removed",
        "policy_denied",
        "admin_forbidden",
        "too_large",
        "uri_too_long",
        "tls_other_domain",
        "node_refused_caller",
        "lease_expired",
    ];
    let all_seen = net.eventually(Duration::from_secs(15), || {
        let audit = audit_kinds(&net);
        let live = stream.lock().unwrap().clone();
        let m = metrics(&net);
        expected.iter().all(|k| {
            audit.contains(*k)
                && live.contains(*k)
                && m.contains(&format!("rampart_security_events_total{{kind=\"{k}\"}}"))
        })
    });
    let (audit, live) = (audit_kinds(&net), stream.lock().unwrap().clone());
    let missing: Vec<_> = expected.iter().filter(|k| !audit.contains(**k) || !live.contains(**k)).collect();
    assert!(
        all_seen,
        "missing events {missing:?}\naudit: {audit:?}\nstream: {live:?}\nmetrics:\n{}",
        metrics(&net)
    );
    let m = metrics(&net);
    assert!(m.contains("rampart_tls_handshake_failures_total{reason=\"tls_other_domain\"}"), "{m}");
    assert!(m.contains("rampart_requests_total{service=\"hello\",code=\"401\"}"), "{m}");
    assert!(m.contains("rampart_certificate_expiry_timestamp_seconds{certificate=\"gateway\"}"), "{m}");
    // No token or secret ever lands in the audit log.
    let text = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap();
    assert!(
        !text.contains(&bob[21..]) && !text.contains(&revoked[21..]),
        "a token leaked into the audit log"
    );
    net.nodes[1].signal("CONT");
}

#[test]
fn slowloris_oversized_header_and_flood_are_refused_while_others_are_served() {
    let net = Network::start_with(
        1,
        &[],
        &[("header_timeout", "\"700ms\""), ("rate_per_source", "40"), ("rate_burst_secs", "1")],
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stream = follow_stream(&rt, &net);
    let client = rt.block_on(async { admin_client(&net.home) });
    let addr: std::net::SocketAddr = net.url.trim_start_matches("https://").parse().unwrap();
    // A slowloris: TLS up, then the request head one byte at a time, slower than allowed.
    let slow = rt.spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny))
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let mut tls = connector
            .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let mut cut = false;
        for b in b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
            if tls.write_all(&[*b]).await.is_err() || tls.flush().await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cut
    });
    // Meanwhile a well-behaved client is served.
    for _ in 0..5 {
        let (status, body, _) =
            rt.block_on(request(&client, "GET", &format!("{}/hello", net.url), &[], "")).unwrap();
        assert_eq!((status, body.as_str()), (200, "Hello World!"));
    }
    assert!(rt.block_on(slow).unwrap(), "the slow client was never cut off");
    // An oversized header: 431.
    let big = "a".repeat(20_000);
    let (status, _, _) =
        rt.block_on(request(&client, "GET", &format!("{}/hello", net.url), &[("x-big", &big)], "")).unwrap();
    assert_eq!(status, 431);
    // A flood over the per-source rate: some 429 with Retry-After, and the flood ends.
    let statuses: Vec<u16> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..120 {
            v.push(request(&client, "GET", &format!("{}/hello", net.url), &[], "").await.unwrap().0);
        }
        v
    });
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200));
    let wanted = ["slow_client", "header_too_large", "rate_limited"];
    let everywhere = || {
        let (audit, live, m) = (audit_kinds(&net), stream.lock().unwrap().clone(), metrics(&net));
        wanted.iter().all(|k| audit.contains(*k) && live.contains(*k) && m.contains(&format!("kind=\"{k}\"")))
    };
    // The metrics scrape itself is rate limited while the bucket refills: poll.
    assert!(
        net.eventually(Duration::from_secs(10), everywhere),
        "audit {:?} stream {:?}",
        audit_kinds(&net),
        stream.lock().unwrap()
    );
}

#[test]
fn a_source_failing_authentication_is_banned_and_an_admin_can_lift_it() {
    let net = Network::start_with(1, &[], &[("ban_after_failures", "5"), ("ban_duration", "\"5m\"")]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stream = follow_stream(&rt, &net);
    assert!(
        net.eventually(Duration::from_secs(5), || !stdout(&net.call("/_rampart/status", &[])).is_empty())
    );
    let admin = std::fs::read_to_string(net.home.join("admin.token")).unwrap();
    let admin = admin.trim();
    let alice = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    for _ in 0..5 {
        net.call("/hello", &["--token", "rpt_wrong"]);
    }
    // Banned: even a valid user token from this address is refused before any work.
    let out = net.call("/hello", &["--token", &alice]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stdout(&out).contains("banned"), "{}", stdout(&out));
    // The operator is not locked out: the dashboard's page is served without credentials, an
    // admin token reaches the admin API and the services, and sees the ban.
    let page = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
        .arg(net.home.join("pki/local/ca.pem"))
        .arg(format!("{}/_rampart/ui", net.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&page.stdout), "200");
    let bans = stdout(&net.call("/_rampart/bans", &["--token", admin]));
    assert!(bans.contains("127.0.0.1"), "{bans}");
    assert_eq!(stdout(&net.call("/hello", &["--token", admin])), "Hello World!");
    assert!(net.call("/hello", &["--token", &alice]).status.code() == Some(4), "alice is still banned");
    // The CLI (admin certificate) lists it; the admin token lifts it.
    assert!(ok(&net.home, &["status"]).contains("banned: 127.0.0.1"));
    let list = ok(&net.home, &["bans", "list"]);
    assert!(list.starts_with("SOURCE") && list.contains("127.0.0.1"), "{list}");
    let lifted = net.call("/_rampart/bans/127.0.0.1", &["-X", "DELETE", "--token", admin]);
    assert!(lifted.status.success(), "{}", stdout(&lifted));
    assert!(ok(&net.home, &["bans", "list"]).contains("No source is banned."));
    let bad = support::refused(&net.home, &["bans", "lift", "not-an-address"], "");
    assert!(bad.contains("not an IP address"), "{bad}");
    let none = support::refused(&net.home, &["bans", "lift", "127.0.0.1"], "");
    assert!(none.contains("no ban on that address"), "{none}");
    assert!(net.call("/hello", &["--token", &alice]).status.success());
    assert!(audit_kinds(&net).contains("banned"));
    assert!(net.eventually(Duration::from_secs(5), || stream.lock().unwrap().contains("banned")));
    assert!(metrics(&net).contains("rampart_security_events_total{kind=\"banned\"} 1"));
    let events = ok(&net.home, &["events"]);
    assert!(events.contains("banned") && events.contains("token_malformed"), "{events}");
}

#[test]
fn the_admin_api_and_dashboard_refuse_non_admins() {
    let net = Network::start(1, &[]);
    let alice = net.user("alice");
    for path in ["/_rampart/status", "/_rampart/events", "/_rampart/metrics", "/_rampart/bans"] {
        let out = net.call(path, &["--token", &alice]);
        assert_eq!(out.status.code(), Some(4), "{path}: {}", stdout(&out));
    }
    let anonymous =
        run(&net.home, &["call", &format!("{}/_rampart/status", net.url), "--token", "rpt_x"], "");
    assert_eq!(anonymous.status.code(), Some(4));
    // The page itself holds no data; its headers forbid framing, sniffing, referrers, and
    // any script or style but its own.
    let page = net.call("/_rampart/ui", &["-v"]);
    let headers = String::from_utf8_lossy(&page.stderr).to_lowercase();
    for h in [
        "content-security-policy: default-src 'none'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(headers.contains(h), "missing {h}: {headers}");
    }
    assert!(
        !stdout(&page).contains("http://") && !stdout(&page).contains("https://"),
        "the page loads something external"
    );
    assert!(net.eventually(Duration::from_secs(5), || audit_kinds(&net).contains("admin_forbidden")));
}

/// Only for the slowloris test, which must get TLS up without a client certificate.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

#[test]
fn a_certificate_revoked_while_the_gateway_runs_is_refused_within_seconds() {
    let net = Network::start(1, &[]);
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "carol"]);
    ok(&net.home, &["user", "add", "carol", "--no-password"]);
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/carol"]);
    let (cert, key) = (net.pki_file("carol.pem"), net.pki_file("carol.key"));
    assert!(net.call("/hello", &["--cert", &cert, "--key", &key]).status.success());
    ok(&net.home, &["pki", "revoke", "--name", "carol", "--reason", "key-compromise"]);
    // The gateway picks the new CRL up without a restart.
    let refused = net.eventually(Duration::from_secs(10), || {
        net.call("/hello", &["--cert", &cert, "--key", &key]).status.code() == Some(1)
    });
    assert!(refused, "a revoked certificate still gets in");
    assert!(net.eventually(Duration::from_secs(5), || audit_kinds(&net).contains("tls_revoked")));
    let m = metrics(&net);
    assert!(m.contains("rampart_tls_handshake_failures_total{reason=\"tls_revoked\"}"), "{m}");
}

#[test]
fn no_certificate_on_a_required_listener_is_an_event() {
    let net = Network::start(1, &["--client-cert", "required"]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stream = follow_stream(&rt, &net);
    let token = std::fs::read_to_string(net.home.join("admin.token")).unwrap();
    let everywhere = || {
        net.call("/hello", &["--token", token.trim()]); // no certificate: refused in the handshake
        let m = metrics(&net);
        audit_kinds(&net).contains("tls_no_certificate")
            && stream.lock().unwrap().contains("tls_no_certificate")
            && m.contains("rampart_tls_handshake_failures_total{reason=\"tls_no_certificate\"}")
    };
    assert!(net.eventually(Duration::from_secs(10), everywhere));
}

/// An open event stream (the dashboard) must not hold a stopping gateway for its whole drain
/// timeout (30 s): the stream ends as the gateway begins to stop, and the gateway exits.
#[test]
fn a_gateway_stops_without_waiting_for_an_open_event_stream() {
    let mut net = Network::start(0, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async { admin_client(&net.home) });
    let req = http::Request::get(format!("{}/_rampart/events", net.url))
        .header("accept", "text/event-stream")
        .body(rampart_net::full(""))
        .unwrap();
    let mut body = rt.block_on(client.request(req)).unwrap().into_body();
    net.gateway.signal("TERM");
    let ended = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async { while let Some(Ok(_)) = body.frame().await {} })
            .await
    });
    assert!(ended.is_ok(), "the stream was still open 20 s after SIGTERM");
    // The client's runtime keeps running while it waits, as a real client's does: the server's
    // graceful HTTP/2 close waits for the client to acknowledge its ping.
    let stopped = std::time::Instant::now();
    let status = rt.block_on(async {
        loop {
            if let Some(status) = net.gateway.child.try_wait().unwrap() {
                break status;
            }
            assert!(stopped.elapsed() < Duration::from_secs(15), "the gateway did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(status.success(), "{status}");
}

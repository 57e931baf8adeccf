//! Attacks with client certificates: each kind of refusal is named by its own event kind,
//! counts towards a ban of its source, and the ban is an event. Each case comes from its own
//! loopback address (127.0.0.N), so each ban is its own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Network, ok};
use crate::wait_events;

/// Failures that ban a source in this test.
const BAN_AFTER: usize = 3;

/// A certificate and its key, as a TLS client presents them.
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

pub(crate) fn leaf_params(uris: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "mallory");
    p.subject_alt_names = uris.iter().map(|u| SanType::URI((*u).try_into().unwrap())).collect();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2035, 1, 1);
    p
}

pub(crate) fn signed(params: CertificateParams, issuer: &Issuer<'_, KeyPair>) -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

pub(crate) fn from_files(cert: &str, key: &str) -> Identity {
    use rustls::pki_types::pem::PemObject;
    Identity {
        chain: vec![CertificateDer::from_pem_file(cert).unwrap()],
        key: PrivateKeyDer::from_pem_file(key).unwrap(),
    }
}

/// The network's own CA, as an rcgen issuer (the attacker who stole nothing cannot do this;
/// it makes the certificates that are refused for what they say, not for who signed them).
pub(crate) fn our_ca(net: &Network) -> Issuer<'static, KeyPair> {
    let dir = net.home.join("pki/local");
    let key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
    Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem")).unwrap(), key).unwrap()
}

/// A CA of nobody's.
pub(crate) fn foreign_ca() -> Issuer<'static, KeyPair> {
    let mut foreign = CertificateParams::new(Vec::<String>::new()).unwrap();
    foreign.distinguished_name.push(DnType::CommonName, "evil CA");
    foreign.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Issuer::new(foreign, KeyPair::generate().unwrap())
}

/// A CA that copies our CA's certificate with another key.
pub(crate) fn lookalike_ca(net: &Network) -> Issuer<'static, KeyPair> {
    let pem = std::fs::read_to_string(net.home.join("pki/local/ca.pem")).unwrap();
    Issuer::from_ca_cert_pem(&pem, KeyPair::generate().unwrap()).unwrap()
}

/// A connection from `from` presenting `id` (or no certificate), then `request`: the first
/// line of the answer, or `None` when the handshake was refused.
async fn exchange(net: &Network, from: IpAddr, id: Option<&Identity>, request: &str) -> Option<String> {
    let (roots, _) = rampart_net::TlsMaterial::load_roots(&net.home.join("pki/local/ca.pem"), None).unwrap();
    let domain = rampart_pki::TrustDomain::new("local").unwrap();
    let identity =
        id.map(|id| rampart_net::tls::LiveIdentity::new(id.chain.clone(), id.key.clone_key()).unwrap());
    let config =
        rampart_net::tls::client_config(&domain, roots, Vec::new(), identity, &[rampart_pki::Role::Gateway])
            .unwrap();
    let addr: SocketAddr = net.url.trim_start_matches("https://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.ok()?;
    // TLS 1.3: the server's verdict on our certificate arrives after our side finished.
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    text.starts_with("HTTP/1.1 ").then(|| text.lines().next().unwrap_or("").to_owned())
}

const GET_HELLO: &str = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// A handshake from `from` presenting `id`, then a request; whether it was refused.
async fn attempt(net: &Network, from: IpAddr, id: &Identity) -> bool {
    exchange(net, from, Some(id), GET_HELLO).await.is_none()
}

/// A plain token request from `from`; the HTTP status line.
async fn token_request(net: &Network, from: IpAddr, token: &str) -> String {
    let req = format!(
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    exchange(net, from, None, &req).await.unwrap_or_default()
}

#[test]
fn every_refused_certificate_is_named_counted_towards_a_ban_and_bans() {
    let net = Network::start_with(1, &[], &[("ban_after_failures", &BAN_AFTER.to_string())]);
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    let ca = our_ca(&net);
    let me = "spiffe://local/user/mallory";

    // Another CA altogether, and one that copies our CA's name with another key.
    let (foreign, lookalike) = (foreign_ca(), lookalike_ca(&net));
    // Another environment's CA, made by rampart itself.
    ok(&net.home, &["pki", "init", "--domain", "other"]);
    ok(&net.home, &["pki", "issue", "--domain", "other", "--role", "user", "--name", "mallory"]);
    let other = net.home.join("pki/other/issued");
    // A revoked certificate of our own.
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "revoked"]);
    ok(&net.home, &["pki", "revoke", "--name", "revoked", "--reason", "key-compromise"]);

    let mut expired = leaf_params(&[me]);
    (expired.not_before, expired.not_after) =
        (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2021, 1, 1));
    let mut early = leaf_params(&[me]);
    (early.not_before, early.not_after) =
        (rcgen::date_time_ymd(2090, 1, 1), rcgen::date_time_ymd(2091, 1, 1));
    let mut ca_leaf = leaf_params(&[me]);
    ca_leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut server_only = leaf_params(&[me]);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

    let cases: Vec<(&str, &str, Identity)> = vec![
        ("a foreign CA", "tls_unknown_ca", signed(leaf_params(&[me]), &foreign)),
        ("a CA copying our CA's name", "tls_unknown_ca", signed(leaf_params(&[me]), &lookalike)),
        (
            "another trust domain",
            "tls_other_domain",
            from_files(
                other.join("mallory.pem").to_str().unwrap(),
                other.join("mallory.key").to_str().unwrap(),
            ),
        ),
        ("revoked", "tls_revoked", from_files(&net.pki_file("revoked.pem"), &net.pki_file("revoked.key"))),
        ("expired", "tls_expired", signed(expired, &ca)),
        ("not yet valid", "tls_not_yet_valid", signed(early, &ca)),
        ("no SAN", "tls_bad_identity", signed(leaf_params(&[]), &ca)),
        ("two URI SANs", "tls_bad_identity", signed(leaf_params(&[me, "spiffe://local/admin/x"]), &ca)),
        ("a CA certificate as leaf", "tls_bad_identity", signed(ca_leaf, &ca)),
        ("a server-only EKU", "tls_bad_identity", signed(server_only, &ca)),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (i, (what, kind, id)) in cases.iter().enumerate() {
        let from: IpAddr = format!("127.0.0.{}", 10 + i).parse().unwrap();
        let source = from.to_string();
        // The gateway reloads the CRL by itself: the revoked one may pass once at first.
        let start = std::time::Instant::now();
        let mut refused = 0;
        while refused < BAN_AFTER {
            assert!(start.elapsed() < Duration::from_secs(20), "{what}: accepted");
            if rt.block_on(attempt(&net, from, id)) {
                refused += 1;
            }
        }
        let of_source = |e: &serde_json::Value| e["source"] == source.as_str();
        wait_events(&net, kind, BAN_AFTER, of_source);
        let banned = wait_events(&net, "banned", 1, of_source);
        assert_eq!(banned.len(), 1, "{what}: {banned:?}");
        // The banned address is refused even with a valid token; others are not.
        let line = rt.block_on(token_request(&net, from, &token));
        assert!(line.starts_with("HTTP/1.1 403"), "{what}: {source} not banned: {line}");
    }
    let line = rt.block_on(token_request(&net, "127.0.0.99".parse().unwrap(), &token));
    assert!(line.starts_with("HTTP/1.1 200"), "a well-behaved client was refused: {line}");
    let m = crate::support::stdout(&net.call("/_rampart/metrics", &[]));
    for kind in [
        "tls_unknown_ca",
        "tls_other_domain",
        "tls_revoked",
        "tls_expired",
        "tls_not_yet_valid",
        "tls_bad_identity",
    ] {
        assert!(
            m.contains(&format!("rampart_tls_handshake_failures_total{{reason=\"{kind}\"}}")),
            "{kind}: {m}"
        );
    }
}

#[test]
fn a_user_certificate_at_a_node_is_a_wrong_role_reported_to_the_gateway() {
    let net = Network::start(1, &[]);
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "alice"]);
    let url = format!("https://{}/", net.node_addr(0));
    let out = crate::support::run(
        &net.home,
        &["call", &url, "--cert", &net.pki_file("alice.pem"), "--key", &net.pki_file("alice.key")],
        "",
    );
    assert!(!out.status.success());
    wait_events(&net, "node_refused_caller", 1, |e| {
        e["reason"].as_str().is_some_and(|r| r.contains("tls_wrong_role") && r.contains("user/alice"))
    });
    assert_eq!(crate::support::stdout(&net.call("/hello", &[])), "Hello World!");
}

#[test]
fn an_rsa_1024_certificate_from_openssl_is_a_bad_identity_and_bans() {
    let net = Network::start_with(1, &[], &[("ban_after_failures", &BAN_AFTER.to_string())]);
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    // openssl, an outside client, makes the weak key; our CA signs it (so only the key is wrong).
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let ca = net.home.join("pki/local");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (key, csr) = (path("k.pem"), path("r.csr"));
    openssl(&[
        "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", &key, "-subj", "/CN=weak", "-out", &csr,
    ]);
    std::fs::write(
        path("ext"),
        "subjectAltName=URI:spiffe://local/user/weak\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let (ca_pem, ca_key) = (ca.join("ca.pem").display().to_string(), ca.join("ca.key").display().to_string());
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("r.csr"),
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &path("ext"),
        "-out",
        &path("c.pem"),
    ]);
    let addr = net.url.trim_start_matches("https://").to_owned();
    for _ in 0..BAN_AFTER {
        // SECLEVEL=0: this openssl would not even present so weak a key otherwise.
        let mut s_client = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-cert", &path("c.pem"), "-key", &path("k.pem")])
            .args(["-CAfile", &ca_pem, "-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(s_client.stdin.take()); // EOF: s_client ends after the handshake
        let waited = std::time::Instant::now();
        while s_client.try_wait().unwrap().is_none() {
            assert!(waited.elapsed() < Duration::from_secs(20), "openssl s_client hung");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let is_local = |e: &serde_json::Value| e["source"] == "127.0.0.1";
    let refused = wait_events(&net, "tls_bad_identity", BAN_AFTER, is_local);
    assert!(refused[0]["reason"].as_str().unwrap().contains("handshake signature"), "{refused:?}");
    wait_events(&net, "banned", 1, is_local);
    let out = net.call("/hello", &["--token", &token]);
    assert!(crate::support::stdout(&out).contains("banned"), "{}", crate::support::stdout(&out));
    // The operator's admin certificate still gets through from the banned address.
    assert_eq!(crate::support::stdout(&net.call("/hello", &[])), "Hello World!");
}

#[test]
fn no_certificate_on_a_required_listener_counts_towards_a_ban() {
    let gateway = ["--client-cert", "required"];
    let net = Network::start_with(1, &gateway, &[("ban_after_failures", &BAN_AFTER.to_string())]);
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "alice"]);
    ok(&net.home, &["user", "add", "alice", "--no-password"]);
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    let alice = from_files(&net.pki_file("alice.pem"), &net.pki_file("alice.key"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let from: IpAddr = "127.0.0.40".parse().unwrap();
    let status = |from: IpAddr| rt.block_on(exchange(&net, from, Some(&alice), GET_HELLO));
    assert!(status(from).is_some_and(|l| l.starts_with("HTTP/1.1 200")));
    for _ in 0..BAN_AFTER {
        assert!(
            rt.block_on(exchange(&net, from, None, GET_HELLO)).is_none(),
            "accepted without a certificate"
        );
    }
    let of_source = |e: &serde_json::Value| e["source"] == "127.0.0.40";
    wait_events(&net, "tls_no_certificate", BAN_AFTER, of_source);
    wait_events(&net, "banned", 1, of_source);
    // Banned: even alice's valid certificate is refused there (403), not elsewhere.
    assert!(status(from).is_some_and(|l| l.starts_with("HTTP/1.1 403")), "{:?}", status(from));
    assert!(status("127.0.0.41".parse().unwrap()).is_some_and(|l| l.starts_with("HTTP/1.1 200")));
}

//! Writes `fixtures/` (a CA, a peer gateway's certificate and key, all test-only) and every seed
//! of `corpus/` except the ClientHellos captured from `openssl s_client` (fuzz/README.md says
//! how those were made). Run from `fuzz/`: `cargo run --example seeds`; then rebuild the
//! targets, which embed the fixtures. New fixtures mean new seeds: both are rewritten together.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rampart_federation::assertion::{ForRequest, Signer};
use rampart_fuzz::{BOUND_METHOD, BOUND_PATH, GATEWAY_ID, LOCAL_DOMAIN, NOW, PAYLOAD_KEY};
use rampart_pki::{
    CaOptions, EntityName, IssueRequest, KeyType, Lifetime, Pki, RevocationReason, RevokeTarget, Role,
    SpiffeId, TrustDomain,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateRevocationListDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::json;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let home = tempfile::tempdir()?;
    let pki = Pki::new(home.path());
    let ca_pem = pki_seeds(&pki)?;
    assertion_seeds(&pki)?;
    envelope_seeds()?;
    front_door_seeds()?;
    wire_seeds(&ca_pem)?;
    cgi_seeds()?;
    client_hello_seeds()?;
    config_seeds()?;
    Ok(())
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) -> Result {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn issue(
    pki: &Pki,
    domain: &TrustDomain,
    role: Role,
    name: &str,
    key_type: KeyType,
) -> Result<rampart_pki::Issued> {
    let ca = pki.open(domain)?;
    Ok(ca.issue(&IssueRequest {
        role,
        name: EntityName::new(name)?,
        dns: vec![format!("{name}.example.test")],
        ips: vec![],
        lifetime: Lifetime::days(36_500)?,
        key_type,
    })?)
}

/// Domain `fuzz`: its CA (a fixture too, for the CRL's signature), a node's certificate, a
/// revocation and its CRL, CSRs, a bundle of two CAs, names.
fn pki_seeds(pki: &Pki) -> Result<String> {
    let fuzz = TrustDomain::new("fuzz")?;
    pki.create_domain(&fuzz, &CaOptions { days: 36_500, key_type: KeyType::P256 }, false)?;
    let ca = pki.open(&fuzz)?;
    fs::write("fixtures/ca.der", &ca.ca_cert().der)?;
    let ca_pem = fs::read_to_string(ca.ca_path())?;
    write("pki_loading", "ca.pem", &ca_pem)?;
    let node = issue(pki, &fuzz, Role::Node, "web-1", KeyType::P256)?;
    write("pki_loading", "node.pem", fs::read(&node.cert_path)?)?;
    write("pki_loading", "node.der", &node.cert.der)?;
    let ed = issue(pki, &fuzz, Role::User, "alice", KeyType::Ed25519)?;
    write("pki_loading", "user-ed25519.pem", fs::read(&ed.cert_path)?)?;
    ca.revoke(&EntityName::new("web-1")?, &RevokeTarget::Current, RevocationReason::KeyCompromise)?;
    let crl = fs::read(ca.crl_path())?;
    write("pki_loading", "crl.pem", &crl)?;
    write("pki_loading", "crl.der", CertificateRevocationListDer::from_pem_slice(&crl)?)?;
    for (name, key_type) in [("csr-p256.pem", KeyType::P256), ("csr-ed25519.pem", KeyType::Ed25519)] {
        write("pki_loading", name, rampart_pki::csr::request(&EntityName::new("web-2")?, key_type)?.csr_pem)?;
    }
    let east = TrustDomain::new("east")?;
    pki.create_domain(&east, &CaOptions { days: 36_500, key_type: KeyType::P256 }, false)?;
    let east_pem = fs::read_to_string(pki.open(&east)?.ca_path())?;
    write("pki_loading", "bundle.pem", format!("{ca_pem}{east_pem}"))?;
    write("pki_loading", "spiffe-id.txt", "spiffe://fuzz/node/web-1")?;
    let bundle = rampart_pki::bundle::Bundle::parse(ca_pem.as_bytes())?;
    write("pki_loading", "fingerprint.txt", bundle.fingerprint().to_string())?;
    Ok(ca_pem)
}

/// The peer gateway `gw1` of `east` (its certificate and key are fixtures), its real
/// assertions, and claims for the target to sign: good ones and each refusal.
fn assertion_seeds(pki: &Pki) -> Result {
    let east = TrustDomain::new("east")?;
    let gw = issue(pki, &east, Role::Gateway, "gw1", KeyType::P256)?;
    let key = PrivatePkcs8KeyDer::from_pem_file(&gw.key_path)?;
    fs::write("fixtures/gateway.der", &gw.cert.der)?;
    fs::write("fixtures/gateway.pk8", key.secret_pkcs8_der())?;
    let signer = Signer::new(SpiffeId::parse(GATEWAY_ID)?, key.secret_pkcs8_der())?;
    let west = TrustDomain::new(LOCAL_DOMAIN)?;
    for (name, deadline) in [("signed.jwt", None), ("signed-deadline.jwt", Some(Duration::from_millis(1500)))]
    {
        let req = ForRequest {
            subject: "user/alice",
            audience: &west,
            method: BOUND_METHOD,
            path_and_query: BOUND_PATH,
            deadline,
        };
        write("assertion", name, signer.sign(req, NOW - 2)?)?;
    }
    let other = ForRequest {
        subject: "user/alice",
        audience: &west,
        method: "POST",
        path_and_query: "/data/k",
        deadline: None,
    };
    write("assertion", "signed-other-request.jwt", signer.sign(other, NOW - 2)?)?;
    write("assertion", "alg-none.jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyL2FsaWNlIn0.")?;
    let digest =
        ring::digest::digest(&ring::digest::SHA256, format!("{BOUND_METHOD}\n{BOUND_PATH}").as_bytes());
    let bnd = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    let header = json!({"alg": "ES256", "typ": "rampart-assertion+jwt"});
    let claims = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = json!({
            "iss": GATEWAY_ID, "sub": "user/alice", "aud": LOCAL_DOMAIN, "chain": ["east"], "bnd": bnd,
            "jti": "0123456789abcdef0123456789abcdef", "iat": NOW - 2, "exp": NOW + 28, "dl": 1500,
        });
        edit(&mut c);
        format!("{header}\n{c}")
    };
    write("assertion", "claims-good.txt", claims(&|_| {}))?;
    write("assertion", "claims-loop.txt", claims(&|c| c["chain"] = json!(["west", "east"])))?;
    write("assertion", "claims-deep.txt", claims(&|c| c["chain"] = json!(["a", "b", "c", "d", "east"])))?;
    write("assertion", "claims-audience.txt", claims(&|c| c["aud"] = json!("south")))?;
    write("assertion", "claims-expired.txt", claims(&|c| c["exp"] = json!(NOW - 60)))?;
    write("assertion", "claims-long-lived.txt", claims(&|c| c["exp"] = json!(NOW + 3600)))?;
    write("assertion", "claims-signer.txt", claims(&|c| c["iss"] = json!("spiffe://east/gateway/gw2")))?;
    write("assertion", "claims-jti.txt", claims(&|c| c["jti"] = json!("not-hex")))?;
    write("assertion", "claims-vouched-peer.txt", claims(&|c| c["sub"] = json!("peer:south/user/bob")))?;
    let hs256 = json!({"alg": "HS256", "typ": "rampart-assertion+jwt"});
    write(
        "assertion",
        "claims-hs256.txt",
        claims(&|_| {}).replacen(&header.to_string(), &hs256.to_string(), 1),
    )?;
    Ok(())
}

/// Fernet tokens under the fixed key, made just before the targets' clock, and near misses.
fn envelope_seeds() -> Result {
    let key = fernet::Fernet::new(PAYLOAD_KEY).ok_or("the fixed key")?;
    let other = fernet::Fernet::new(&fernet::Fernet::generate_key()).ok_or("a key")?;
    let ok = key.encrypt_at_time(b"{\"amount\": 3}", NOW - 30);
    write("envelope", "token.txt", &ok)?;
    write("envelope", "token-empty.txt", key.encrypt_at_time(b"", NOW - 30))?;
    write("envelope", "token-1k.txt", key.encrypt_at_time(&[b'x'; 1024], NOW - 30))?;
    write("envelope", "token-old.txt", key.encrypt_at_time(b"{}", NOW - 3600))?;
    write("envelope", "token-future.txt", key.encrypt_at_time(b"{}", NOW + 120))?;
    write("envelope", "token-other-key.txt", other.encrypt_at_time(b"{\"amount\": 3}", NOW - 30))?;
    write("envelope", "token-newline.txt", format!(" {ok}\n"))?;
    write("envelope", "token-truncated.txt", &ok[..ok.len() / 2])?;
    write("envelope", "token-padded.txt", format!("{ok}=="))?;
    Ok(())
}

fn front_door_seeds() -> Result {
    let token = format!("rpt_0123456789abcdef_{}", "A".repeat(43));
    let seeds = [
        ("get.txt", format!("GET /hello/ 198.51.100.9:4000\nHost: gw.example.test\nAuthorization: Bearer {token}\n")),
        ("dot-segments.txt", "GET /data/a/./b/../c?x=1\r\nAccept: */*\r\n".into()),
        ("encoded-climb.txt", "GET /files/%2e%2e/%2E%2E/etc/passwd\n".into()),
        ("hidden-separator.txt", "GET /files/..%2f..%2fetc%2fpasswd\n".into()),
        ("control.txt", "GET /hello/a%0d%0aSet-Cookie:%20x\n".into()),
        ("backslash.txt", "GET /hello/..\\..\\x\n".into()),
        ("lower-case-method.txt", "delete /data/k\n".into()),
        ("connect.txt", "CONNECT gw.example.test:443\n".into()),
        ("absolute-form.txt", "GET https://gw.example.test/hello/x?y=1\n".into()),
        ("api.txt", "GET /_rampart/status\nAuthorization: Bearer nope\nAuthorization: Bearer twice\n".into()),
        ("basic.txt", "POST /_rampart/token\nAuthorization: Basic YWxpY2U6cGFzc3dvcmQ=\n".into()),
        (
            "proxy-chain.txt",
            "GET /hello/ 10.0.0.5:4000\nX-Forwarded-For: 203.0.113.1, 198.51.100.7\nX-Forwarded-For: 10.1.1.1\n".into(),
        ),
        (
            "forwarded.txt",
            "POST /echo/ 10.0.0.5:4000\nForwarded: for=203.0.113.1, for=\"[2001:db8::7]:4711\";proto=https\n\
             Content-Type: application/json\n"
                .into(),
        ),
        ("forwarded-unknown.txt", "GET /hello/ [2001:db8::1]:443\nForwarded: for=unknown, For=10.3.3.3\n".into()),
        ("rampart-headers.txt", "GET /hello/\nRampart-Principal: user/admin\nRampart_Role: admin\nX-Real-IP: 1.2.3.4\n".into()),
    ];
    for (name, text) in seeds {
        write("front_door", name, text)?;
    }
    Ok(())
}

fn wire_seeds(ca_pem: &str) -> Result {
    let fingerprint = rampart_pki::bundle::Bundle::parse(ca_pem.as_bytes())?.fingerprint().to_string();
    let long_reason = format!("x{}", "é".repeat(300));
    let seeds = [
        (
            "registration.json",
            json!({"addr": "0.0.0.0:7001", "services": ["hello", "echo", "report"], "timeouts_ms": {"report": 120000},
                   "public": "0.0.0.0:7443"}),
        ),
        (
            "registration-bad-names.json",
            json!({"addr": "127.0.0.1:7001", "services": ["*", "../x", "_hidden"]}),
        ),
        (
            "registered.json",
            json!({"lease": 7587, "lease_ttl_ms": 3000, "heartbeat_ms": 1000, "passthrough": {"echo": ["echo.example.test"]}}),
        ),
        (
            "admit.json",
            json!({"service": "echo", "method": "GET", "client": "[2001:db8::7]:51234",
                   "authorization": "Bearer rpt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                   "certificate": "MIIBszCCAVmgAwIBAgIU"}),
        ),
        (
            "claim.json",
            json!({"id": "0123456789abcdef0123456789abcdef", "expires": NOW + 60, "scope": "ab12", "nonce": "cd34"}),
        ),
        (
            "store-put.json",
            json!({"op": "put", "key": "services/data/k", "value": "aGVsbG8=", "lease": null}),
        ),
        (
            "store-put-not-base64.json",
            json!({"op": "put", "key": "services/data/k", "value": "not base64!", "lease": null}),
        ),
        (
            "store-cas.json",
            json!({"op": "cas", "key": "services/jobs/x", "expect": {"value": "b2xk"}, "value": "bmV3", "lease": 5}),
        ),
        (
            "store-cas-absent.json",
            json!({"op": "cas", "key": "k", "expect": "absent", "value": null, "lease": null}),
        ),
        (
            "store-cas-revision.json",
            json!({"op": "cas", "key": "k", "expect": {"mod_revision": 7}, "value": "", "lease": null}),
        ),
        ("store-range.json", json!({"op": "range", "prefix": "services/data/"})),
        ("store-grant.json", json!({"op": "grant", "ttl_ms": 3000})),
        ("store-revision.json", json!({"op": "revision"})),
        (
            "store-answer.json",
            json!({"kvs": [{"key": "services/data/k", "value": "aGVsbG8=", "create_revision": 3, "mod_revision": 4,
                            "version": 2, "lease": null}], "revision": 9}),
        ),
        ("store-error.json", json!({"error": "forbidden: services/other/", "kind": "forbidden"})),
        (
            "event.json",
            json!({"kind": "node_refused_caller", "source": "203.0.113.9:5000", "principal": "user/mallory",
                   "service": "data", "reason": "no Rampart-Principal from a gateway", "node": "n1"}),
        ),
        (
            "event-multibyte.json",
            json!({"kind": "program_failed", "source": format!("z{}", "€".repeat(100)), "peer": "ü".repeat(200),
                   "reason": long_reason}),
        ),
        (
            "event-unknown-kind.json",
            json!({"severity": "critical", "kind": "from_a_newer_peer", "source": "x", "reason": "y"}),
        ),
        ("catalog.json", json!({"domain": "west", "services": ["echo", "hello"], "bundle": fingerprint})),
    ];
    for (name, value) in seeds {
        write("wire_messages", name, value.to_string())?;
    }
    Ok(())
}

fn cgi_seeds() -> Result {
    let seeds: [(&str, &[u8]); 12] = [
        ("created.txt", b"Status: 201 Created\r\nContent-Type: application/json\r\nX-Made-By: sh\r\n\r\n{}"),
        ("html.txt", b"Content-Type: text/html\n\n<p>hi</p>\n"),
        ("sentence.txt", b"Hello: this is a sentence\nnot a header block\n"),
        ("bad-status.txt", b"Status: nope\n\n"),
        ("redirect.txt", b"Location: /elsewhere\nStatus: 302 Found\n\n"),
        ("cookies.txt", b"Set-Cookie: a=1\nSet-Cookie: b=2\n\nbody"),
        ("binary-body.txt", b"Content-Type: application/octet-stream\n\n\x00\x01\xff\xfe"),
        ("no-blank-line.txt", b"Status: 200\nContent-Type: text/plain\n"),
        ("empty.txt", b""),
        (
            "request-forged-headers.txt",
            b"GET /report?x=1\nRampart_Principal: user/mallory\nRampart-Role: admin\nProxy: http://evil.example\n\
              Authorization: Bearer secret\nX_Forwarded_For: 10.6.6.6\nX-Asked-For: kept\n",
        ),
        ("request-post.txt", b"POST /upload/../file\nContent-Type: text/plain\nContent-Length: 3\nCookie: a=b\n"),
        ("request-httpoxy.txt", b"GET /\nproxy: http://evil.example\nProxy_: x\nHTTP_PROXY: y\n"),
    ];
    for (name, bytes) in seeds {
        write("cgi_answer", name, bytes)?;
    }
    Ok(())
}

/// A rustls client's first flight.
fn rustls_hello(name: ServerName<'static>, alpn: Vec<Vec<u8>>) -> Result<Vec<u8>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut out = Vec::new();
    conn.write_tls(&mut out)?;
    Ok(out)
}

fn client_hello_seeds() -> Result {
    let hello =
        rustls_hello(ServerName::try_from("echo.example.test")?, vec![b"h2".to_vec(), b"http/1.1".to_vec()])?;
    write("client_hello", "rustls.bin", &hello)?;
    let alpn = (0..12).map(|i| vec![b'a' + i; 200]).collect();
    write(
        "client_hello",
        "rustls-large.bin",
        rustls_hello(ServerName::try_from("big.example.test")?, alpn)?,
    )?;
    let by_address = rustls_hello(ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])), vec![])?;
    write("client_hello", "rustls-no-sni.bin", by_address)?;
    write(
        "client_hello",
        "proxy-v1.bin",
        [b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 8443\r\n".as_slice(), &hello].concat(),
    )?;
    write("client_hello", "proxy-v1-unknown.bin", [b"PROXY UNKNOWN\r\n".as_slice(), &hello].concat())?;
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend([203, 0, 113, 8, 10, 0, 0, 1, 0xc8, 0x22, 0x20, 0xfb]);
    write("client_hello", "proxy-v2.bin", [v2.as_slice(), &hello].concat())?;
    write("client_hello", "proxy-v2-local.bin", b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00")?;
    let mut v2_tlv = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x2c".to_vec();
    v2_tlv.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[7]));
    v2_tlv.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
    v2_tlv.extend([0xc8, 0x22, 0x20, 0xfb, 0x02, 0x00, 0x05]);
    v2_tlv.extend(b"x.com");
    write("client_hello", "proxy-v2-ipv6-authority.bin", [v2_tlv.as_slice(), &hello].concat())?;
    write("client_hello", "plain-http.bin", "GET / HTTP/1.1\r\nHost: echo.example.test\r\n\r\n")?;
    write("client_hello", "cut.bin", &hello[..hello.len() / 2])?;
    Ok(())
}

fn config_seeds() -> Result {
    let mut init = toml::Table::new();
    init.insert("domain".into(), "prod".into());
    init.insert("store".into(), "embedded".into());
    let tokens = toml::toml! { default_ttl_secs = 2592000
    max_ttl_secs = 31536000 };
    init.insert("tokens".into(), tokens.into());
    init.insert("gateway".into(), toml::Value::try_from(rampart_gateway::GatewayConfig::default())?);
    let header = "# rampart network configuration (see `rampart --help`)\n";
    write("config", "init.toml", format!("{header}{}", toml::to_string(&init)?))?;
    write("config", "gateway-default.toml", toml::to_string(&rampart_gateway::GatewayConfig::default())?)?;
    let seeds = [
        (
            "routes.toml",
            "domain = \"prod\"\n\n[routes.legacy]\nmode = \"edge\"\nupstream = \"http://127.0.0.1:9000\"\n\n\
             [routes.hello]\nmode = \"reencrypt\"\n\n[routes.echo]\nmode = \"passthrough\"\nsni = [\"echo.example.test\"]\n",
        ),
        (
            "routes-refused.toml",
            "[routes.app]\nmode = \"edge\"\nupstream = \"http://10.0.0.9:80\"\n\n[routes.a]\nmode = \"passthrough\"\n\
             sni = [\"x.example.test\"]\n\n[routes.b]\nmode = \"passthrough\"\nsni = [\"X.example.test.\"]\n",
        ),
        (
            "grouped.toml",
            "domain = \"prod\"\n\n[gateway]\nlisten = \"0.0.0.0:8443\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             proxy_protocol_from = [\"192.0.2.0/24\"]\n\n[gateway.limits]\nheader_timeout = \"10s\"\nidle_timeout = \"1m\"\n\
             max_body_bytes = 1048576\n\n[gateway.bans]\nban_window = \"1m\"\nban_duration = \"5m\"\n\n\
             [gateway.retry]\ntry_timeout = \"750ms\"\ndeadline = \"15s\"\n\n[gateway.health]\nprobe_interval = \"500ms\"\n\n\
             [gateway.federation]\nprefer_peers = [\"report\"]\nmax_chain = 3\n",
        ),
        ("flat.toml", "[gateway]\ntry_timeout_ms = 750\nban_secs = 120\nrate_per_source = 5.0\n"),
        ("both-ways.toml", "[gateway]\ntry_timeout_ms = 750\n[gateway.retry]\ntry_timeout = \"1s\"\n"),
        ("bad-duration.toml", "[gateway.limits]\nidle_timeout = \"soon\"\n"),
        (
            "node.toml",
            "domain = \"prod\"\n\n[node]\nservices_dir = \"services\"\nrun_as = \"nobody\"\n\n\
             [node.programs.report]\ntimeout_ms = 120000\nmax_runs = 2\n\n[node.programs.\"bad name\"]\nmax_runs = 0\n",
        ),
        (
            "etcd.toml",
            "domain = \"prod\"\n\n[store.etcd]\nendpoints = [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]\n\
             prefix = \"/rampart/prod/\"\n",
        ),
    ];
    for (name, text) in seeds {
        write("config", name, text)?;
    }
    Ok(())
}

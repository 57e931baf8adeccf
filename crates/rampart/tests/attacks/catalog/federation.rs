//! Federation, attacked at west by what east's gateway (or someone holding east's CA) could
//! send: assertions replayed, forged, re-targeted, stale or missing; assertions from a
//! connection that is no peer's; east's CA minting west's identities or gateways of its own.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use rampart_federation::assertion::{ForRequest, Signer};
use rampart_pki::TrustDomain;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Attack, Case, Expect, Seen, Target, read_all, run, tls_from};
use crate::support::federation::{files, minted, pair, signer};
use crate::support::{Network, ok};

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// `method path` to west from `from` over TLS as `identity`, with `headers`; what came back.
fn send(
    net: &Network,
    from: IpAddr,
    identity: &Identity,
    (method, path): (&str, &str),
    headers: &[(&str, String)],
) -> Seen {
    let live = rampart_net::tls::LiveIdentity::new(identity.0.clone(), identity.1.clone_key()).unwrap();
    let Some(mut tls) = tls_from(net, from, Some(live)) else { return Seen::default() };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    if tls.write_all(head.as_bytes()).is_err() {
        return Seen::default();
    }
    Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
}

/// An assertion as east's gateway signs one, but with `chain` as the networks passed: the
/// signer only ever makes a chain of one (an imported service is never passed on), so a loop
/// or a long chain is what a peer that lies would send.
fn chained(gateway: &Identity, chain: &[&str], (method, pq): (&str, &str), now: u64) -> String {
    use base64::Engine as _;
    let iss = rampart_pki::inspect::cert_from_der(gateway.0[0].as_ref()).unwrap().identity.unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{method}\n{pq}").as_bytes());
    let claims = serde_json::json!({
        "iss": iss.to_string(), "sub": "user/mallory", "aud": "west", "chain": chain,
        "bnd": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        "jti": format!("{:032x}", fastrand::u128(..)), "iat": now, "exp": now + 30,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("rampart-assertion+jwt".to_owned());
    let key = jsonwebtoken::EncodingKey::from_ec_der(gateway.1.secret_der());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[test]
fn federation() {
    let pair = pair();
    let (east, west) = (&pair.east, &pair.west);
    ok(&west.home, &["network", "export", "echo", "--to", "east"]);
    ok(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/*"]);
    let gateway = files(east, "east", "gateway");
    let honest = signer(&gateway, &gateway.1);
    let forged = signer(&gateway, &files(east, "east", "admin").1);
    let carol = west.user("carol");
    let sign = |s: &Signer, audience: &str, (method, pq): (&str, &str), at: u64| {
        let audience = TrustDomain::new(audience).unwrap();
        let req = ForRequest {
            subject: "user/mallory",
            audience: &audience,
            method,
            path_and_query: pq,
            deadline: None,
        };
        s.sign(req, at).unwrap()
    };
    let now = rampart_crypto::now_secs();
    let get = ("GET", "/echo/a");
    let assertion = |a: String| vec![("Rampart-Assertion", a)];
    let peer = |name: &str,
                request: (&'static str, &'static str),
                headers: Vec<(&'static str, String)>,
                expect: Expect,
                event: Option<&'static str>| {
        let id = (gateway.0.clone(), gateway.1.clone_key());
        Case::new(
            name,
            Attack::Custom(Box::new(move |net, from| send(net, from, &id, request, &headers))),
            expect,
            event,
        )
    };
    let replayed = sign(&honest, "west", get, now);
    let replayer = (gateway.0.clone(), gateway.1.clone_key());
    let minted_case = |name: &str, id: Identity, event: &'static str| {
        Case::new(
            name,
            Attack::Custom(Box::new(move |net, from| send(net, from, &id, get, &[]))),
            Expect::NoAnswer,
            Some(event),
        )
    };

    let cases = vec![
        peer(
            "an honest assertion",
            get,
            assertion(sign(&honest, "west", get, now)),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "an assertion captured and sent again",
            Attack::Custom(Box::new(move |net, from| {
                let headers = [("Rampart-Assertion", replayed.clone())];
                let first = send(net, from, &replayer, get, &headers);
                if first.status != Some(200) {
                    return first;
                }
                send(net, from, &replayer, get, &headers)
            })),
            Expect::Status(401),
            Some("assertion_replayed"),
        ),
        peer(
            "an assertion signed by another key",
            get,
            assertion(sign(&forged, "west", get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion for another method",
            ("POST", "/echo/a"),
            assertion(sign(&honest, "west", get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion for another path",
            ("GET", "/echo/b"),
            assertion(sign(&honest, "west", get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion with a query added",
            ("GET", "/echo/a?admin=1"),
            assertion(sign(&honest, "west", get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion for another network",
            get,
            assertion(sign(&honest, "north", get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion two minutes old",
            get,
            assertion(sign(&honest, "west", get, now - 120)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion from the future",
            get,
            assertion(sign(&honest, "west", get, now + 600)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "a peer's request without an assertion",
            get,
            vec![],
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion that is no token",
            get,
            assertion("x.y.z".to_owned()),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an assertion of 6 KiB",
            get,
            assertion("a".repeat(6 << 10)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        peer(
            "an honest assertion made by hand (the next cases' control)",
            get,
            assertion(chained(&gateway, &["east"], get, now)),
            Expect::Status(200),
            None,
        ),
        peer(
            "a loop: the chain already holds west",
            get,
            assertion(chained(&gateway, &["west", "east"], get, now)),
            Expect::Status(508),
            Some("federation_loop"),
        ),
        peer(
            "a chain longer than max_chain",
            get,
            assertion(chained(&gateway, &["a", "b", "c", "d", "e", "f", "g", "h", "east"], get, now)),
            Expect::Status(508),
            Some("federation_loop"),
        ),
        peer(
            "a chain that does not end with the signer's network",
            get,
            assertion(chained(&gateway, &["east", "north"], get, now)),
            Expect::Status(401),
            Some("assertion_refused"),
        ),
        Case::new(
            "an assertion from a user's connection (not a peer's)",
            super::curl(
                super::Cred::Token(carol.clone()),
                "/echo/a",
                &["-H", &format!("Rampart-Assertion: {}", sign(&honest, "west", get, now))],
            ),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        minted_case(
            "east's CA minting a west admin",
            minted(east, "east", "spiffe://west/admin/evil"),
            "tls_unknown_ca",
        ),
        minted_case(
            "east's CA minting a west gateway",
            minted(east, "east", "spiffe://west/gateway/evil"),
            "tls_unknown_ca",
        ),
        minted_case(
            "an east user posing as east's gateway",
            minted(east, "east", "spiffe://east/user/evil"),
            "tls_wrong_role",
        ),
    ];
    let mut target = Target::new(west, &[&carol]);
    target.secrets.extend(super::key_material(&east.home));
    target.good.1 = "/echo/".to_owned(); // west hosts echo and data, no hello
    run("federation", 12, &target, cases);
}

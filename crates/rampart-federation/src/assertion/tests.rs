#![allow(clippy::unwrap_used)]
use super::*;

/// A gateway of `domain`: its identity, certificate (DER) and key (PKCS#8 DER).
struct Gateway {
    id: SpiffeId,
    cert: Vec<u8>,
    pkcs8: Vec<u8>,
}

fn gateway(spiffe: &str) -> Gateway {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Gateway { id: SpiffeId::parse(spiffe).unwrap(), cert: cert.der().to_vec(), pkcs8: key.serialize_der() }
}

const NOW: u64 = 1_800_000_000;

fn west() -> TrustDomain {
    TrustDomain::new("west").unwrap()
}

fn sign(g: &Gateway, method: &str, pq: &str) -> String {
    let signer = Signer::new(g.id.clone(), &g.pkcs8).unwrap();
    let req = ForRequest {
        subject: "user/alice",
        audience: &west(),
        method,
        path_and_query: pq,
        deadline: Some(Duration::from_millis(1500)),
    };
    signer.sign(req, NOW).unwrap()
}

fn received<'a>(g: &'a Gateway, method: &'a str, pq: &'a str) -> Received<'a> {
    Received { client: &g.id, client_cert: &g.cert, method, path_and_query: pq }
}

/// An assertion with claims of our choosing, signed by `g`.
fn forged(g: &Gateway, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = Claims {
        iss: g.id.to_string(),
        sub: "user/alice".into(),
        aud: "west".into(),
        chain: vec![g.id.domain.to_string()],
        bnd: binding("GET", "/hello/"),
        jti: "0123456789abcdef0123456789abcdef".into(),
        iat: NOW,
        exp: NOW + 30,
        dl: None,
    };
    edit(&mut claims);
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(TYP.into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&g.pkcs8)).unwrap()
}

#[test]
fn an_assertion_verifies_once_for_its_request_from_its_signer() {
    let east = gateway("spiffe://east/gateway/gw");
    let verifier = Verifier::new(west(), 4, 100);
    let token = sign(&east, "GET", "/hello/x?y=1");
    let vouched = verifier.verify(&token, received(&east, "GET", "/hello/x?y=1"), NOW + 1).unwrap();
    assert_eq!(vouched.subject, "user/alice");
    assert_eq!(vouched.chain, vec![TrustDomain::new("east").unwrap()]);
    assert_eq!(vouched.deadline, Some(Duration::from_millis(1500)));
    // Captured and sent again.
    assert_eq!(
        verifier.verify(&token, received(&east, "GET", "/hello/x?y=1"), NOW + 2),
        Err(Refusal::Replayed)
    );
}

#[test]
fn an_assertion_for_another_call_time_network_or_signer_is_refused() {
    let east = gateway("spiffe://east/gateway/gw");
    let verifier = Verifier::new(west(), 4, 100);
    let check = |token: &str, g: &Gateway, m: &str, pq: &str, now: u64| {
        verifier.verify(token, received(g, m, pq), now)
    };
    // Another method, path or query.
    let t = sign(&east, "GET", "/hello/x?y=1");
    assert_eq!(check(&t, &east, "DELETE", "/hello/x?y=1", NOW), Err(Refusal::WrongRequest));
    assert_eq!(check(&t, &east, "GET", "/hello/z?y=1", NOW), Err(Refusal::WrongRequest));
    assert_eq!(check(&t, &east, "GET", "/hello/x?y=2", NOW), Err(Refusal::WrongRequest));
    // Past its expiry (and the leeway).
    assert_eq!(check(&t, &east, "GET", "/hello/x?y=1", NOW + 40), Err(Refusal::Expired));
    // Signed by another key than the connection's client's.
    let impostor = gateway("spiffe://east/gateway/gw");
    let t = sign(&impostor, "GET", "/hello/");
    assert_eq!(check(&t, &east, "GET", "/hello/", NOW), Err(Refusal::BadSignature));
    // Naming another signer than the connection's client.
    let t = forged(&east, |c| c.iss = "spiffe://east/gateway/other".into());
    assert!(matches!(check(&t, &east, "GET", "/hello/", NOW), Err(Refusal::SignerNotClient { .. })));
    // For another network.
    let t = forged(&east, |c| c.aud = "north".into());
    assert_eq!(check(&t, &east, "GET", "/hello/", NOW), Err(Refusal::WrongAudience("\"north\"".into())));
    // Living longer than a minute.
    let t = forged(&east, |c| c.exp = NOW + 3600);
    assert_eq!(check(&t, &east, "GET", "/hello/", NOW), Err(Refusal::Expired));
    // Not ES256, or not a JWS at all, or too long.
    let hs =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &"x", &EncodingKey::from_secret(&east.cert));
    for bad in [hs.unwrap_or_default(), "a.b.c".into(), "x".repeat(MAX_BYTES + 1), String::new()] {
        assert!(matches!(check(&bad, &east, "GET", "/hello/", NOW), Err(Refusal::Malformed(_))), "{bad:.40}");
    }
}

#[test]
fn a_request_that_passed_this_network_or_too_many_is_a_loop() {
    let east = gateway("spiffe://east/gateway/gw");
    let verifier = Verifier::new(west(), 2, 100);
    let check = |t: &str| verifier.verify(t, received(&east, "GET", "/hello/"), NOW);
    let looped = forged(&east, |c| c.chain = vec!["west".into(), "east".into()]);
    assert!(check(&looped).is_err_and(|r| r.is_loop() && matches!(r, Refusal::Loop(_))));
    let deep = forged(&east, |c| c.chain = vec!["a".into(), "b".into(), "east".into()]);
    assert_eq!(check(&deep), Err(Refusal::TooDeep(3, 2)));
    let not_ending_with_signer = forged(&east, |c| c.chain = vec!["north".into()]);
    assert!(matches!(check(&not_ending_with_signer), Err(Refusal::Malformed(_))));
}

#[test]
fn the_replay_guard_refuses_rather_than_forgets() {
    let east = gateway("spiffe://east/gateway/gw");
    let verifier = Verifier::new(west(), 4, 1);
    assert!(verifier.verify(&sign(&east, "GET", "/a"), received(&east, "GET", "/a"), NOW).is_ok());
    assert_eq!(
        verifier.verify(&sign(&east, "GET", "/a"), received(&east, "GET", "/a"), NOW),
        Err(Refusal::GuardFull)
    );
}

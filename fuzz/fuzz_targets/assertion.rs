//! A peer gateway's assertion, checked as the receiving network checks it (fixed peer
//! certificate, fixed request, fixed time). Input starting with `{` is a JWS header line and a
//! claims line that the target signs with the peer's key, so the checks after the signature are
//! reached; anything else is taken as the token itself. What verifies is never accepted twice,
//! ends its chain with the signer's network and never passed this one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_federation::assertion::{Received, Refusal, Verifier};
use rampart_fuzz::{BOUND_METHOD, BOUND_PATH, GATEWAY_CERT, GATEWAY_ID, LOCAL_DOMAIN, NOW};
use rampart_pki::{SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    let token = match data.strip_prefix(b"{") {
        Some(_) => {
            let (header, claims) = data.split_at(data.iter().position(|b| *b == b'\n').unwrap_or(data.len()));
            rampart_fuzz::sign_es256(header, claims.strip_prefix(b"\n").unwrap_or(claims))
        }
        None => match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        },
    };
    let local = TrustDomain::new(LOCAL_DOMAIN).expect("the fixed domain");
    let client = SpiffeId::parse(GATEWAY_ID).expect("the fixed identity");
    let verifier = Verifier::new(local.clone(), 4, 16);
    let received = Received {
        client: &client,
        client_cert: GATEWAY_CERT,
        method: BOUND_METHOD,
        path_and_query: BOUND_PATH,
    };
    if let Ok(vouched) = verifier.verify(&token, received, NOW) {
        assert_eq!(vouched.chain.last(), Some(&client.domain));
        assert!(!vouched.chain.contains(&local) && vouched.chain.len() <= 4);
        assert_eq!(verifier.verify(&token, received, NOW), Err(Refusal::Replayed));
    }
});

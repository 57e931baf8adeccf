//! Attacks with payload envelopes: a replay to another replica, a replay under another key,
//! a broken envelope; and the retries that must still pass (the same envelope under the same
//! `Idempotency-Key`), with refusals never recorded as a key's outcome.

use std::time::Duration;

use crate::support::{Network, admin_client, request};
use crate::{field, wait_events};

const FERNET: &str = "application/fernet";

fn keyring(net: &Network) -> rampart_crypto::Keyring {
    rampart_crypto::file::load(&net.home.join("keys/payload.keys")).unwrap()
}

/// POST /data with `envelope` and the headers; (status, error kind or record id, node).
fn post(
    rt: &tokio::runtime::Runtime,
    net: &Network,
    envelope: &str,
    key: Option<&str>,
) -> (u16, String, String) {
    let client = rt.block_on(async { admin_client(&net.home) });
    let mut headers = vec![("content-type", FERNET), ("accept", FERNET)];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    let (status, body, h) =
        rt.block_on(request(&client, "POST", &format!("{}/data", net.url), &headers, envelope)).unwrap();
    let node = h.get("rampart-node").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let detail = if status == 200 {
        let plain = keyring(net).decrypt(&body, Some(300)).unwrap().plaintext;
        field(&String::from_utf8(plain).unwrap(), "id")
    } else {
        field(&body, "error")
    };
    (status, detail, node)
}

#[test]
fn an_envelope_replayed_to_another_replica_is_refused() {
    let mut net = Network::start(2, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let envelope = keyring(&net).encrypt(br#"{"payment":1}"#).unwrap();
    let (status, _, first) = post(&rt, &net, &envelope, None);
    assert_eq!(status, 200);
    // The replica that took it goes away: the replay can only land on the other one.
    let i = net.nodes.iter().position(|n| n.ready.contains(&format!("node {first} "))).unwrap();
    drop(net.nodes.remove(i));
    assert!(net.eventually(Duration::from_secs(15), || net.node_count() == 1), "the node never left");
    let (status, kind, node) = post(&rt, &net, &envelope, None);
    assert_eq!((status, kind.as_str()), (400, "envelope_replayed"), "replayed to {node}");
    assert_ne!(node, first);
    wait_events(&net, "envelope_replayed", 1, |e| e["principal"] == "spiffe://local/admin/admin");
    // One record, not two.
    let stored = crate::support::stored_record_ids(&net.home, &net.url);
    assert_eq!(stored.len(), 1, "{stored:?}");
}

#[test]
fn the_same_envelope_under_the_same_key_is_a_retry_and_under_another_a_replay() {
    let net = Network::start(2, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kr = keyring(&net);
    let envelope = kr.encrypt(br#"{"order":7}"#).unwrap();
    let (status, id, _) = post(&rt, &net, &envelope, Some("k1"));
    assert_eq!(status, 200);
    let again = post(&rt, &net, &envelope, Some("k1"));
    assert_eq!((again.0, again.1.as_str()), (200, id.as_str()), "a retry under the same key");
    for key in [Some("k2"), None] {
        let (status, kind, _) = post(&rt, &net, &envelope, key);
        assert_eq!((status, kind.as_str()), (400, "envelope_replayed"), "under {key:?}");
    }
    // A broken envelope is refused, is an event, and is not recorded as its key's outcome:
    // the same key with a good envelope then succeeds.
    let (status, kind, _) = post(&rt, &net, "gAAAAAB-not-a-token", Some("k3"));
    assert_eq!((status, kind.as_str()), (400, "bad_envelope"));
    wait_events(&net, "envelope_refused", 1, |_| true);
    let fresh = kr.encrypt(br#"{"order":8}"#).unwrap();
    let (status, _, _) = post(&rt, &net, &fresh, Some("k3"));
    assert_eq!(status, 200, "a refusal was recorded as the key's outcome");
    let stored = crate::support::stored_record_ids(&net.home, &net.url);
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[test]
fn envelope_claims_tell_a_retry_from_a_replay() {
    let net = Network::start(1, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let node = rt.block_on(async { crate::client_as(&net, "n1") });
    let expires = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60;
    let claim = |scope: Option<&str>, nonce: &str| {
        let body = serde_json::json!({"id": "0123456789abcdef0123456789abcdef", "expires": expires, "scope": scope, "nonce": nonce});
        let url = format!("{}/_rampart/internal/envelopes", net.url);
        let (status, answer, _) = rt.block_on(request(&node, "POST", &url, &[], &body.to_string())).unwrap();
        assert_eq!(status, 200, "{answer}");
        field(&answer, "claim")
    };
    assert_eq!(claim(Some("aa"), "01"), "fresh");
    assert_eq!(claim(Some("aa"), "01"), "fresh", "the same claim repeated (a lost answer)");
    assert_eq!(claim(Some("aa"), "02"), "retry");
    assert_eq!(claim(Some("bb"), "03"), "replayed");
    assert_eq!(claim(None, "04"), "replayed");
    // Only nodes may claim.
    let admin = rt.block_on(async { admin_client(&net.home) });
    let url = format!("{}/_rampart/internal/envelopes", net.url);
    let (status, _, _) = rt.block_on(request(&admin, "POST", &url, &[], "{}")).unwrap();
    assert_eq!(status, 403);
}

#[test]
fn a_full_replay_guard_refuses_rather_than_forgets() {
    let net = Network::start_with(1, &[], &[("max_envelope_claims", "3")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kr = keyring(&net);
    for i in 0..3 {
        let (status, _, _) =
            post(&rt, &net, &kr.encrypt(format!(r#"{{"n":{i}}}"#).as_bytes()).unwrap(), None);
        assert_eq!(status, 200);
    }
    let (status, kind, _) = post(&rt, &net, &kr.encrypt(br#"{"n":3}"#).unwrap(), None);
    assert_eq!((status, kind.as_str()), (503, "unavailable"), "a full guard let an envelope through");
    wait_events(&net, "replay_guard_full", 1, |_| true);
    // Plain requests are still served.
    assert_eq!(crate::support::stdout(&net.call("/hello", &[])), "Hello World!");
}

#[test]
fn claims_go_on_when_their_lease_is_gone() {
    let net = Network::start(1, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kr = keyring(&net);
    assert_eq!(post(&rt, &net, &kr.encrypt(br#"{"n":1}"#).unwrap(), None).0, 200);
    // The operator (or a lapse) ends the lease the claims of this window hang on.
    let admin = rt.block_on(async { admin_client(&net.home) });
    let store = format!("{}/_rampart/store", net.url);
    let (_, range, _) =
        rt.block_on(request(&admin, "POST", &store, &[], r#"{"op":"range","prefix":"envelopes/"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&range).unwrap();
    let lease = v["kvs"][0]["lease"].as_i64().expect("a claim under a lease");
    let revoke = format!(r#"{{"op":"revoke","lease":{lease}}}"#);
    let (status, _, _) = rt.block_on(request(&admin, "POST", &store, &[], &revoke)).unwrap();
    assert_eq!(status, 200);
    // The next claim in that window gets a new lease instead of failing until the window ends.
    let (status, detail, _) = post(&rt, &net, &kr.encrypt(br#"{"n":2}"#).unwrap(), None);
    assert_eq!(status, 200, "{detail}");
}

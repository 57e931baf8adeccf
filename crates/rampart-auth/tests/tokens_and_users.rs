//! Users, tokens and policy over a real embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::sync::Arc;

use rampart_auth::tokens::{self, TokenPolicy};
use rampart_auth::{AuthError, Effect, NewUser, PolicySet, TokenRefusal, accounts, policy, users};
use rampart_pki::TrustDomain;
use rampart_store::{EmbeddedStore, Store};

const NOW: u64 = 1_800_000_000;

fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(&dir.path().join("r.redb")).unwrap();
    (dir, Arc::new(s))
}

fn domain() -> TrustDomain {
    TrustDomain::new("prod").unwrap()
}

async fn user(store: &dyn Store, name: &str, admin: bool) {
    let new =
        NewUser { name, admin, password: Some(b"correct horse"), cert_identity: None, token_limit: Some(3) };
    users::add(store, &new, NOW).await.unwrap();
}

fn refusal(r: Result<rampart_auth::Principal, AuthError>) -> TokenRefusal {
    match r {
        Err(AuthError::Token(t)) => t,
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn issue_verify_expire_revoke_scope() {
    let (_d, s) = store();
    let s = s.as_ref();
    user(s, "alice", false).await;
    let issued =
        tokens::issue(s, "alice", Some(3600), &["data".into()], TokenPolicy::default(), NOW).await.unwrap();
    let token = issued.token.as_str();
    assert!(token.starts_with("rpt_") && token.len() >= 4 + 16 + 1 + 43);
    // Only the hash is stored.
    let stored = s.range("auth/tokens/").await.unwrap();
    assert!(!String::from_utf8_lossy(&stored[0].value).contains(&token[21..]));

    let p = tokens::verify(s, token, Some("data"), &domain(), NOW + 10).await.unwrap();
    assert_eq!((p.name().as_str(), p.user(), p.is_admin()), ("user/alice", Some("alice"), false));
    assert_eq!(
        refusal(tokens::verify(s, token, Some("echo"), &domain(), NOW).await),
        TokenRefusal::OutOfScope
    );
    assert_eq!(
        refusal(tokens::verify(s, token, Some("data"), &domain(), NOW + 3600).await),
        TokenRefusal::Expired
    );

    let mut wrong = token.to_owned();
    wrong.replace_range(30..31, if &token[30..31] == "A" { "B" } else { "A" });
    assert_eq!(refusal(tokens::verify(s, &wrong, None, &domain(), NOW).await), TokenRefusal::BadSecret);
    let unknown = format!("rpt_ffffffffffffffff_{}", &token[21..]);
    assert_eq!(refusal(tokens::verify(s, &unknown, None, &domain(), NOW).await), TokenRefusal::Unknown);
    for bad in ["", "Bearer x", "rpt_", &token[..30], "rpt_zz_yy"] {
        assert_eq!(
            refusal(tokens::verify(s, bad, None, &domain(), NOW).await),
            TokenRefusal::Malformed,
            "{bad}"
        );
    }

    tokens::revoke(s, &issued.record.id, NOW).await.unwrap();
    assert_eq!(refusal(tokens::verify(s, token, Some("data"), &domain(), NOW).await), TokenRefusal::Revoked);
    assert!(matches!(tokens::revoke(s, "0000000000000000", NOW).await, Err(AuthError::NoSuchToken(_))));
}

#[tokio::test]
async fn removing_a_user_kills_its_tokens_and_limits_hold() {
    let (_d, s) = store();
    let s = s.as_ref();
    user(s, "bob", false).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokens::issue(s, "bob", None, &[], TokenPolicy::default(), NOW).await.unwrap());
    }
    assert!(matches!(
        tokens::issue(s, "bob", None, &[], TokenPolicy::default(), NOW).await,
        Err(AuthError::TokenLimit { limit: 3, .. })
    ));
    assert!(matches!(
        tokens::issue(s, "bob", Some(10 * 365 * 86_400), &[], TokenPolicy::default(), NOW).await,
        Err(AuthError::TtlTooLong { .. })
    ));
    // A revoked token frees its slot.
    tokens::revoke(s, &held[0].record.id, NOW).await.unwrap();
    held.push(tokens::issue(s, "bob", None, &[], TokenPolicy::default(), NOW).await.unwrap());

    assert_eq!(accounts::remove_user(s, "bob", NOW).await.unwrap(), 3);
    let t = held[1].token.as_str();
    assert_eq!(refusal(tokens::verify(s, t, None, &domain(), NOW).await), TokenRefusal::UserRemoved);
    assert!(matches!(accounts::remove_user(s, "bob", NOW).await, Err(AuthError::NoSuchUser(_))));
    // Re-creating the name does not revive old tokens.
    user(s, "bob", false).await;
    assert_eq!(refusal(tokens::verify(s, t, None, &domain(), NOW).await), TokenRefusal::UserRemoved);
}

/// Through the gateway's cache over the registry's copy in memory: a token is read once, and
/// refused as soon as a revocation or its user's removal reaches the copy; its secret, expiry
/// and scope are checked on every request.
#[tokio::test]
async fn a_cached_token_is_refused_once_its_revocation_reaches_the_copy() {
    let (_d, s) = store();
    let mirror = rampart_store::Mirror::new(s.clone(), "auth/");
    let cache = tokens::TokenCache::default();
    user(s.as_ref(), "carol", false).await;
    let a = tokens::issue(s.as_ref(), "carol", Some(3600), &["data".into()], TokenPolicy::default(), NOW)
        .await
        .unwrap();
    let b = tokens::issue(s.as_ref(), "carol", None, &[], TokenPolicy::default(), NOW).await.unwrap();
    let verify = async |token: &str, service, now| {
        cache.verify(mirror.as_ref(), mirror.generation(), token, service, &domain(), now).await
    };
    let caught_up = async |token: &str| {
        for _ in 0..500 {
            if verify(token, None, NOW).await.is_ok() && mirror.generation().is_some() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    };
    assert!(caught_up(a.token.as_str()).await && caught_up(b.token.as_str()).await);
    let kept = mirror.generation();
    // Kept: checked again on each request all the same.
    assert!(verify(a.token.as_str(), Some("data"), NOW + 1).await.is_ok());
    assert_eq!(refusal(verify(a.token.as_str(), Some("echo"), NOW).await), TokenRefusal::OutOfScope);
    assert_eq!(refusal(verify(a.token.as_str(), None, NOW + 3600).await), TokenRefusal::Expired);
    let wrong =
        format!("{}{}", &a.token[..a.token.len() - 1], if a.token.ends_with('A') { "B" } else { "A" });
    assert_eq!(refusal(verify(&wrong, None, NOW).await), TokenRefusal::BadSecret);
    assert_eq!(mirror.generation(), kept, "nothing written: the same copy");

    tokens::revoke(s.as_ref(), &a.record.id, NOW).await.unwrap();
    let refused = async |token: &str, why| {
        for _ in 0..500 {
            if matches!(verify(token, None, NOW).await, Err(AuthError::Token(r)) if r == why) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    };
    assert!(refused(a.token.as_str(), TokenRefusal::Revoked).await, "the revocation never took");
    assert!(verify(b.token.as_str(), None, NOW).await.is_ok());
    accounts::remove_user(s.as_ref(), "carol", NOW).await.unwrap();
    assert!(refused(b.token.as_str(), TokenRefusal::UserRemoved).await, "the removal never took");
}

#[tokio::test]
async fn passwords_are_argon2id_and_checked() {
    let (_d, s) = store();
    let s = s.as_ref();
    user(s, "carol", true).await;
    let stored = users::get(s, "carol").await.unwrap().unwrap();
    assert!(stored.password_hash.as_deref().unwrap().starts_with("$argon2id$"));
    assert!(users::check_password(s, "carol", b"correct horse").await.is_ok());
    assert!(matches!(users::check_password(s, "carol", b"wrong").await, Err(AuthError::BadCredentials)));
    assert!(matches!(users::check_password(s, "nobody", b"x").await, Err(AuthError::BadCredentials)));
    users::set_password(s, "carol", b"battery staple").await.unwrap();
    assert!(users::check_password(s, "carol", b"correct horse").await.is_err());
    let issued =
        tokens::issue_for_password(s, "carol", b"battery staple", None, &[], TokenPolicy::default(), NOW)
            .await
            .unwrap();
    let p = tokens::verify(s, &issued.token, None, &domain(), NOW).await.unwrap();
    assert!(p.is_admin());
    let dup = NewUser { name: "carol", admin: false, password: None, cert_identity: None, token_limit: None };
    assert!(matches!(users::add(s, &dup, NOW).await, Err(AuthError::UserExists(_))));
    let bad = NewUser { name: "../x", admin: false, password: None, cert_identity: None, token_limit: None };
    assert!(matches!(users::add(s, &bad, NOW).await, Err(AuthError::Invalid { .. })));
}

#[tokio::test]
async fn policy_rules_round_trip_through_the_store() {
    let (_d, s) = store();
    let s = s.as_ref();
    user(s, "dave", false).await;
    let allow = policy::add(s, "data", "user/dave", &["get".into()], Effect::Allow).await.unwrap();
    policy::add(s, "data", "role:user", &["DELETE".into()], Effect::Deny).await.unwrap();
    assert!(policy::add(s, "data", "nobody", &[], Effect::Allow).await.is_err());
    assert!(policy::add(s, "_rampart", "*", &[], Effect::Allow).await.is_err());
    assert!(policy::add(s, "data", "*", &["get it".into()], Effect::Allow).await.is_err());
    let set = PolicySet::new(policy::list(s).await.unwrap());
    let issued = tokens::issue(s, "dave", None, &[], TokenPolicy::default(), NOW).await.unwrap();
    let dave = tokens::verify(s, &issued.token, Some("data"), &domain(), NOW).await.unwrap();
    assert!(set.authorize(&dave, "data", "GET").is_ok());
    assert!(set.authorize(&dave, "data", "POST").is_err());
    assert!(set.authorize(&dave, "data", "DELETE").unwrap_err().rule.is_some());
    policy::remove(s, &allow.id).await.unwrap();
    let set = PolicySet::new(policy::list(s).await.unwrap());
    assert!(set.authorize(&dave, "data", "GET").is_err());
}

//! Token verification and policy evaluation rates. Prints a table; not a test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failure report

use std::hint::black_box;
use std::time::{Duration, Instant};

use rampart_auth::policy::{Effect, Pattern, PolicySet, Rule};
use rampart_auth::tokens::{self, TokenPolicy};
use rampart_auth::{NewUser, users};
use rampart_pki::TrustDomain;
use rampart_store::EmbeddedStore;

const RUN: Duration = Duration::from_millis(1500);

fn rate(mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("r.redb")).unwrap();
    let now = 1_800_000_000;
    let new = NewUser { name: "alice", admin: false, password: None, cert_identity: None, token_limit: None };
    users::add(&store, &new, now).await.unwrap();
    let token = tokens::issue(&store, "alice", None, &[], TokenPolicy::default(), now).await.unwrap().token;
    let domain = TrustDomain::new("prod").unwrap();

    // Token verification: parse, two store reads (token, user), SHA-256, constant-time compare.
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        black_box(tokens::verify(&store, &token, Some("data"), &domain, now + 1).await.unwrap());
        n += 1;
    }
    let verify = n as f64 / start.elapsed().as_secs_f64();
    // The same through the gateway's cache over the registry's copy in memory (a mirror).
    let shared: std::sync::Arc<dyn rampart_store::Store> = std::sync::Arc::new(store.clone());
    let mirror = rampart_store::Mirror::new(shared, "auth/");
    while mirror.generation().is_none() {
        tokio::task::yield_now().await;
    }
    let cache = tokens::TokenCache::default();
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        let g = mirror.generation();
        black_box(cache.verify(mirror.as_ref(), g, &token, Some("data"), &domain, now + 1).await.unwrap());
        n += 1;
    }
    let cached = n as f64 / start.elapsed().as_secs_f64();
    // Through the mirror without the cache: what each request cost before it.
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        black_box(tokens::verify(mirror.as_ref(), &token, Some("data"), &domain, now + 1).await.unwrap());
        n += 1;
    }
    let mirrored = n as f64 / start.elapsed().as_secs_f64();
    let principal = tokens::verify(&store, &token, Some("data"), &domain, now + 1).await.unwrap();

    let rule = |i: usize, service: String| Rule {
        id: format!("{i:08x}"),
        service: service.parse().unwrap(),
        principal: format!("user/u{i}").parse::<Pattern>().unwrap(),
        methods: vec!["GET".into()],
        effect: if i.is_multiple_of(10) { Effect::Deny } else { Effect::Allow },
    };
    // 10,000 rules over 1,000 services: the usual shape, indexed by service.
    let spread = PolicySet::new((0..10_000).map(|i| rule(i, format!("svc{}", i % 1000))));
    let mut i = 0usize;
    let spread_rate = rate(|| {
        i = (i + 1) % 1000;
        black_box(spread.authorize(&principal, black_box(&format!("svc{i}")), "GET").is_ok());
    });
    // 10,000 rules on one service, none matching: every rule is looked at (the worst case).
    let one = PolicySet::new((0..10_000).map(|i| rule(i, "data".into())));
    let worst = rate(|| {
        black_box(one.authorize(&principal, black_box("data"), "GET").is_ok());
    });

    println!("{:<58}{:>14}", "operation", "per second");
    println!("{:<58}{:>14.0}", "token verification (embedded store)", verify);
    println!("{:<58}{:>14.0}", "token verification (the registry's copy in memory)", mirrored);
    println!("{:<58}{:>14.0}", "token verification (cached over the copy, as a gateway)", cached);
    println!("{:<58}{:>14.0}", "policy evaluation, 10,000 rules over 1,000 services", spread_rate);
    println!("{:<58}{:>14.0}", "policy evaluation, 10,000 rules on one service (worst)", worst);
}

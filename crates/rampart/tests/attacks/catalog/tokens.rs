//! Bearer tokens: missing, malformed, forged, revoked, expired, out of scope, in the wrong
//! place, and guessed until the source is banned.

use std::time::{Duration, Instant};

use super::{Attack, Case, Cred, Expect, Target, curl, run};
use crate::support::{Network, ok};

#[test]
fn tokens() {
    let net = Network::start_with(1, &[], &[("ban_after_failures", "5")]);
    let alice = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/alice"]);
    ok(&net.home, &["policy", "allow", "--service", "echo", "--principal", "user/alice"]);
    let scoped = ok(&net.home, &["token", "issue", "--user", "alice", "--service", "echo"]).trim().to_owned();
    let short = ok(&net.home, &["token", "issue", "--user", "alice", "--ttl", "1s"]).trim().to_owned();
    let revoked = ok(&net.home, &["token", "issue", "--user", "alice"]).trim().to_owned();
    ok(&net.home, &["token", "revoke", token_id(&revoked)]);
    let gone = net.user("dave");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "user/dave"]);
    ok(&net.home, &["user", "remove", "dave"]);
    let id = token_id(&alice).to_owned();
    let alice_secret = alice.clone();
    let unknown = format!("rpt_{}_{}", "0".repeat(16), &alice[21..]);
    let wrong_secret = format!("rpt_{id}_{}", "A".repeat(alice.len() - 21));
    let bearer = |t: &str| Cred::Token(t.to_owned());
    let header = |h: &str| vec!["-H".to_owned(), h.to_owned()];

    let control = format!(
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer rpt_{id}_\x01\x02\x7f\r\n\r\n"
    );
    let cases = vec![
        Case::new(
            "no credential",
            curl(Cred::None, "/hello", &[]),
            Expect::Status(401),
            Some("unauthenticated"),
        ),
        Case::new(
            "an empty bearer",
            curl(Cred::None, "/hello", &["-H", "Authorization: Bearer "]),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "not a rampart token",
            curl(bearer("abc.def.ghi"), "/hello", &[]),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "an unknown token id",
            curl(bearer(&unknown), "/hello", &[]),
            Expect::Status(401),
            Some("token_unknown"),
        ),
        Case::new(
            "a known id with a forged secret",
            curl(bearer(&wrong_secret), "/hello", &[]),
            Expect::Status(401),
            Some("token_invalid"),
        ),
        Case::new(
            "a truncated token",
            curl(bearer(&alice[..alice.len() - 4]), "/hello", &[]),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "a token with a byte flipped",
            curl(bearer(&flip_last(&alice)), "/hello", &[]),
            Expect::Status(401),
            Some("token_invalid"),
        ),
        Case::new(
            "a revoked token",
            curl(bearer(&revoked), "/hello", &[]),
            Expect::Status(401),
            Some("token_revoked"),
        ),
        Case::new(
            "the token of a removed user",
            curl(bearer(&gone), "/hello", &[]),
            Expect::Status(401),
            Some("token_user_removed"),
        ),
        Case::new(
            "a token scoped to another service",
            curl(bearer(&scoped), "/hello", &[]),
            Expect::Status(403),
            Some("token_out_of_scope"),
        ),
        Case::new(
            "an 8 KiB token",
            curl(bearer(&format!("rpt_{id}_{}", "x".repeat(8192))), "/hello", &[]),
            Expect::Status(431),
            Some("header_too_large"),
        ),
        Case::new(
            "a password as Basic",
            curl(
                Cred::None,
                "/hello",
                &header("Authorization: Basic YWxpY2U6YWxpY2U=")
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "a token in the query string",
            curl(Cred::None, format!("/hello?access_token={alice}"), &[]),
            Expect::Status(401),
            Some("unauthenticated"),
        ),
        Case::new(
            "a token in a cookie",
            curl(Cred::None, "/hello", &["-b", &format!("token={alice}")]),
            Expect::Status(401),
            Some("unauthenticated"),
        ),
        Case::new(
            "a valid and a forged Authorization header",
            curl(bearer(&alice), "/hello", &["-H", &format!("Authorization: Bearer {wrong_secret}")]),
            Expect::Status(401),
            Some("token_malformed"),
        ),
        Case::new(
            "control bytes in a token",
            Attack::Raw(control.into_bytes()),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "an expired token",
            Attack::Custom(Box::new(move |net, from| {
                // Issued with a second to live: refused once it has passed (bounded wait).
                let start = Instant::now();
                loop {
                    let seen = super::call_curl(
                        &net.home,
                        &net.url,
                        from,
                        &Cred::Token(short.clone()),
                        &[],
                        "/hello",
                    );
                    if seen.status != Some(200) || start.elapsed() > Duration::from_secs(10) {
                        return seen;
                    }
                    std::thread::sleep(Duration::from_millis(100)); // waiting out the token's lifetime
                }
            })),
            Expect::Status(401),
            Some("token_expired"),
        ),
        Case::new(
            "guessing tokens until banned",
            Attack::Custom(Box::new(move |net, from| {
                for i in 0..5 {
                    let guess = Cred::Token(format!("rpt_{id}_{}", format!("{i}").repeat(43)));
                    super::call_curl(&net.home, &net.url, from, &guess, &[], "/hello");
                }
                // Banned now: even alice's own token is refused from there.
                super::call_curl(&net.home, &net.url, from, &Cred::Token(alice.clone()), &[], "/hello")
            })),
            Expect::Status(403),
            Some("banned"),
        ),
    ];
    let secrets = [alice_secret.as_str(), scoped.as_str(), revoked.as_str(), gone.as_str()];
    run("tokens", 1, &Target::new(&net, &secrets), cases);
}

/// The id part of a token (`rpt_<id>_<secret>`).
fn token_id(token: &str) -> &str {
    token.split('_').nth(1).unwrap_or("")
}

/// `token` with its last character changed.
fn flip_last(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap_or('a');
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

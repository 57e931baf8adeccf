//! Paths and service names: dot segments, encodings, separators and bytes that would leave a
//! service or reach another, over HTTP/1.1 and HTTP/2.

use super::{Attack, Case, Cred, Expect, Seen, Target, curl, run};
use crate::support::Network;

/// Paths refused with 400 `bad_path`.
const REFUSED: [(&str, &str); 12] = [
    ("a dot-dot above the service", "/echo/../x"),
    ("an encoded dot-dot", "/echo/%2e%2e"),
    ("encoded dot-dots to /etc/passwd", "/echo/%2e%2e/%2E%2E/etc/passwd"),
    ("dot-dots with encoded slashes", "/echo/..%2f..%2fetc%2fpasswd"),
    ("an encoded slash", "/echo/a%2Fb"),
    ("encoded backslashes", "/echo/a%5c..%5cb"),
    ("an encoded NUL", "/echo/a%00b"),
    ("a bad percent escape", "/echo/a%zzb"),
    ("from one service to another", "/hello/../echo/x"),
    ("a backslash", "/echo/a\\..\\b"),
    ("an encoded CR LF (a header for an app that decodes)", "/echo/a%0d%0aX-Injected:%201"),
    ("an encoded DEL", "/echo/a%7f"),
];

/// Paths that are no dot segment once decoded once: they reach the service exactly as sent
/// (nothing decodes them twice).
const UNCHANGED: [(&str, &str); 3] = [
    ("a double-encoded dot-dot", "/%252e%252e/x"),
    ("an overlong UTF-8 dot-dot", "/%c0%ae%c0%ae/x"),
    ("a full-width dot-dot", "/%EF%BC%8E%EF%BC%8E/x"),
];

#[test]
fn paths() {
    let net = Network::start(1, &[]);
    let mut cases = Vec::new();
    for proto in ["--http1.1", "--http2"] {
        for (name, path) in REFUSED {
            cases.push(Case::new(
                format!("{name} ({proto})"),
                curl(Cred::Admin, path, &[proto]),
                Expect::Status(400),
                Some("bad_path"),
            ));
        }
    }
    for (name, rest) in UNCHANGED {
        let attack = Attack::Custom(Box::new(move |net, from| {
            let seen =
                super::call_curl(&net.home, &net.url, from, &Cred::Admin, &[], &format!("/echo{rest}"));
            let got: serde_json::Value = serde_json::from_str(&seen.text).unwrap_or_default();
            // Anything but the path as sent is a failure.
            Seen { status: seen.status.filter(|_| got["path"] == rest), ..seen }
        }));
        cases.push(Case::new(
            format!("{name} reaches the service as sent"),
            attack,
            Expect::Status(200),
            None,
        ));
    }
    // Names no service has: 404, nothing else reached.
    let unknown =
        |name: &str, path: &str| Case::new(name, curl(Cred::Admin, path, &[]), Expect::Status(404), None);
    cases.extend([
        unknown("a 300-byte service name", &format!("/{}", "a".repeat(300))),
        unknown("a service name with a dot", "/hello.x/"),
        unknown("a non-ASCII service name", "/h%C3%A9llo"),
        unknown("a doubled slash before the service", "//hello"),
        unknown("an encoded dot-dot as the service", "/%2e%2e/echo/x"),
        Case::new("a query for a path", curl(Cred::Admin, "/?/../hello", &[]), Expect::Status(404), None),
    ]);
    run("paths", 4, &Target::new(&net, &[]), cases);
}

//! The registry (store API) and the internal API: users reaching them at all, a node reaching
//! past its grants, and bad requests. Nothing is written, and nobody is banned by a node.

use super::{Case, Cred, Expect, Target, curl, run};
use crate::support::{Network, ok};

#[test]
fn registry() {
    let net = Network::start(1, &[]);
    let bob = net.user("bob");
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "carol"]);
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let put = |key: &str, value: &str, lease: &str| {
        format!(r#"{{"op":"put","key":"{key}","value":"{}","lease":{lease}}}"#, b64(value))
    };
    let cert = |name: &str| {
        Cred::Cert(net.pki_file(&format!("{name}.pem")).into(), net.pki_file(&format!("{name}.key")).into())
    };
    let json = |body: &str| {
        vec!["-H".to_owned(), "Content-Type: application/json".to_owned(), "-d".to_owned(), body.to_owned()]
    };
    let call = |name: &str, cred: Cred, path: &str, body: String, status: u16, kind: &'static str| {
        let args = json(&body);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Case::new(name, curl(cred, format!("/_rampart{path}"), &args), Expect::Status(status), Some(kind))
    };
    let node = |name: &str, path: &str, body: String, status: u16, kind: &'static str| {
        call(name, cert("n1"), path, body, status, kind)
    };
    let bobs = || Cred::Token(bob.clone());
    let forbidden = "registry_forbidden";

    let cases = vec![
        call(
            "a user token registering a node",
            bobs(),
            "/internal/register",
            r#"{"addr":"127.0.0.1:1","services":["hello"]}"#.into(),
            403,
            "internal_forbidden",
        ),
        call(
            "a user token deregistering a node",
            bobs(),
            "/internal/deregister",
            "{}".into(),
            403,
            "internal_forbidden",
        ),
        call(
            "a user token reporting an event",
            bobs(),
            "/internal/events",
            r#"{"kind":"banned","source":"127.0.0.77","reason":"framed"}"#.into(),
            403,
            "internal_forbidden",
        ),
        call(
            "a user token on the store",
            bobs(),
            "/store",
            r#"{"op":"range","prefix":""}"#.into(),
            403,
            forbidden,
        ),
        call(
            "a user certificate on the store",
            cert("carol"),
            "/store",
            r#"{"op":"get","key":"nodes/n1"}"#.into(),
            403,
            forbidden,
        ),
        node(
            "a node writing a user",
            "/store",
            put("auth/users/eve", r#"{"name":"eve"}"#, "null"),
            403,
            forbidden,
        ),
        node("a node writing policy", "/store", put("auth/policy/x", "{}", "null"), 403, forbidden),
        node(
            "a node reading token hashes",
            "/store",
            r#"{"op":"range","prefix":"auth/tokens/"}"#.into(),
            403,
            forbidden,
        ),
        node(
            "a node reading the payload keys",
            "/store",
            r#"{"op":"range","prefix":"keys/"}"#.into(),
            403,
            forbidden,
        ),
        node("a node writing another node's record", "/store", put("nodes/n2", "{}", "null"), 403, forbidden),
        node("a node granting a lease", "/store", r#"{"op":"grant","ttl_ms":100000}"#.into(), 403, forbidden),
        node("a node revoking a lease", "/store", r#"{"op":"revoke","lease":1}"#.into(), 403, forbidden),
        node(
            "a node attaching a lease not its own",
            "/store",
            put("services/data/x", "x", "987654321"),
            403,
            forbidden,
        ),
        node(
            "a node wiping the registry",
            "/store",
            r#"{"op":"delete_prefix","prefix":""}"#.into(),
            403,
            forbidden,
        ),
        // Keys are names, not paths: this one stays under the node's prefix (nothing is
        // written to auth/, as checked at the end).
        Case::new(
            "a node writing a key with a dot-dot",
            curl(
                cert("n1"),
                "/_rampart/store",
                &[
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    &put("services/data/../../auth/users/eve", "x", "null"),
                ],
            ),
            Expect::Status(200),
            None,
        ),
        node(
            "a node reporting a ban (it would spread to every gateway)",
            "/internal/events",
            r#"{"kind":"banned","source":"127.0.0.77","reason":"framed"}"#.into(),
            403,
            "internal_forbidden",
        ),
        node(
            "a node reporting a gateway's event",
            "/internal/events",
            r#"{"kind":"ban_lifted","source":"127.0.0.78","reason":"framed"}"#.into(),
            403,
            "internal_forbidden",
        ),
        node(
            "a node's report cut inside a character (it once crashed the gateway)",
            "/internal/events",
            format!(
                r#"{{"kind":"program_failed","source":"a{}","reason":"a{}"}}"#,
                "é".repeat(200),
                "é".repeat(300)
            ),
            200,
            "program_failed",
        ),
        node(
            "a bad registration",
            "/internal/register",
            r#"{"addr":"127.0.0.1:1","services":["../x"]}"#.into(),
            400,
            "bad_registration",
        ),
        node("a store request that is no JSON", "/store", "{op:".into(), 400, "registry_bad_request"),
        node(
            "an unknown store operation",
            "/store",
            r#"{"op":"compact"}"#.into(),
            400,
            "registry_bad_request",
        ),
        node(
            "a store value that is no base64",
            "/store",
            r#"{"op":"put","key":"services/data/x","value":"***","lease":null}"#.into(),
            400,
            "registry_bad_request",
        ),
    ];
    run("registry", 7, &Target::new(&net, &[&bob]), cases);
    // Nothing was written, nobody was banned.
    assert!(!ok(&net.home, &["user", "list"]).contains("eve"));
    assert!(!ok(&net.home, &["bans", "list"]).contains("127.0.0.77"));
    assert!(crate::events_of(&net, "banned").is_empty());
}

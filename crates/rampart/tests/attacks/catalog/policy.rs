//! Policy: default deny, methods, deny over allow, wildcards, and the gateway's own APIs that no
//! service rule reaches.

use super::{Case, Cred, Expect, Target, curl, run};
use crate::support::{Network, ok};

#[test]
fn policy() {
    let net = Network::start(1, &[]);
    let alice = net.user("alice");
    let bob = net.user("bob");
    let carol = net.user("carol");
    let policy = |args: &[&str]| ok(&net.home, &[&["policy"], args].concat());
    policy(&["allow", "--service", "echo", "--principal", "user/alice", "--method", "GET"]);
    policy(&["allow", "--service", "hello", "--principal", "user/alice"]);
    policy(&["deny", "--service", "hello", "--principal", "user/alice", "--method", "DELETE"]);
    policy(&["allow", "--service", "*", "--principal", "user/bob"]);
    policy(&["deny", "--service", "echo", "--principal", "role:admin", "--method", "PUT"]);
    let a = || Cred::Token(alice.clone());
    let b = || Cred::Token(bob.clone());
    let c = || Cred::Token(carol.clone());
    let store = r#"{"op":"range","prefix":""}"#;

    let cases = vec![
        Case::new(
            "a user with no rule",
            curl(c(), "/hello", &[]),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new(
            "a method the allow rule does not name",
            curl(a(), "/echo/x", &["-X", "POST", "-d", "x"]),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new(
            "a method a deny rule names",
            curl(a(), "/hello", &["-X", "DELETE"]),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new(
            "a deny rule's method in lower case",
            curl(a(), "/hello", &["-X", "delete"]),
            Expect::Status(400),
            Some("bad_method"),
        ),
        Case::new(
            "a deny rule's method in mixed case",
            curl(a(), "/hello", &["-X", "DeLeTe"]),
            Expect::Status(400),
            Some("bad_method"),
        ),
        Case::new(
            "a method that is no token",
            curl(a(), "/hello", &["--http1.1", "-X", "GE(T"]),
            Expect::Status(400),
            Some("malformed_request"),
        ),
        Case::new(
            "another service than the rule's",
            curl(a(), "/data", &[]),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new(
            "a deny for admins holds for the admin",
            curl(Cred::Admin, "/echo/x", &["-X", "PUT", "-d", "x"]),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new(
            "the event feed by a user",
            curl(a(), "/_rampart/events", &[]),
            Expect::Status(403),
            Some("admin_forbidden"),
        ),
        Case::new(
            "the event feed by a user allowed every service",
            curl(b(), "/_rampart/events", &[]),
            Expect::Status(403),
            Some("admin_forbidden"),
        ),
        Case::new(
            "lifting a ban by a user",
            curl(b(), "/_rampart/bans/127.0.0.1", &["-X", "DELETE"]),
            Expect::Status(403),
            Some("admin_forbidden"),
        ),
        Case::new(
            "the jobs list by a user",
            curl(b(), "/_rampart/jobs", &[]),
            Expect::Status(403),
            Some("admin_forbidden"),
        ),
        Case::new(
            "the store API by a user allowed every service",
            curl(b(), "/_rampart/store", &["-d", store]),
            Expect::Status(403),
            Some("registry_forbidden"),
        ),
        Case::new(
            "registering a node with a user's token",
            curl(
                b(),
                "/_rampart/internal/register",
                &["-d", r#"{"addr":"127.0.0.1:1","services":["hello"]}"#],
            ),
            Expect::Status(403),
            Some("internal_forbidden"),
        ),
        Case::new(
            "asking the gateway to admit a caller with a user's token",
            curl(
                b(),
                "/_rampart/internal/admit",
                &["-d", r#"{"service":"hello","method":"GET","client":"127.0.0.1:1"}"#],
            ),
            Expect::Status(403),
            Some("internal_forbidden"),
        ),
        Case::new("a service name in upper case", curl(a(), "/HELLO", &[]), Expect::Status(404), None),
        Case::new("the wildcard as a service", curl(b(), "/*/x", &[]), Expect::Status(404), None),
        Case::new(
            "a CONNECT tunnel",
            curl(a(), "/hello", &["--http1.1", "-X", "CONNECT"]),
            Expect::Status(400),
            Some("bad_method"),
        ),
        Case::new(
            "a TRACE of the caller's own headers",
            curl(a(), "/hello", &["-X", "TRACE"]),
            Expect::Status(400),
            Some("bad_method"),
        ),
    ];
    run("policy", 3, &Target::new(&net, &[&alice, &bob, &carol]), cases);
}

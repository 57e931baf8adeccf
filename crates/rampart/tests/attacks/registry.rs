//! Attacks on the registry and the internal API: users registering nodes, a node reaching past
//! its grants. Each is refused, and each refusal is an event naming principal, path and reason.

use crate::support::{Network, ok, request};
use crate::{client_as, wait_events};

/// One refused call: who makes it, where, and what the operator must see.
struct Case<'a> {
    what: &'a str,
    client: &'a rampart_net::client::HttpsClient,
    /// A bearer token sent besides (it is then the principal).
    token: Option<&'a str>,
    path: &'a str,
    body: String,
    status: u16,
    kind: &'a str,
    principal: &'a str,
}

#[test]
fn registry_and_internal_api_refusals_are_events() {
    let net = Network::start(1, &[]);
    let bob = net.user("bob");
    ok(&net.home, &["pki", "issue", "--role", "user", "--name", "carol"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (node, carol) = rt.block_on(async { (client_as(&net, "n1"), client_as(&net, "carol")) });
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let put = |key: &str, value: &str, lease: &str| {
        format!(r#"{{"op":"put","key":"{key}","value":"{}","lease":{lease}}}"#, b64(value))
    };
    let n1 = "spiffe://local/node/n1";
    let as_node = |what, path, body: String, status, kind| Case {
        what,
        client: &node,
        token: None,
        path,
        body,
        status,
        kind,
        principal: n1,
    };
    let as_bob = |what, path, body: &str| Case {
        what,
        client: &carol,
        token: Some(bob.as_str()),
        path,
        body: body.to_owned(),
        status: 403,
        kind: if path == "/store" { "registry_forbidden" } else { "internal_forbidden" },
        principal: "user/bob",
    };
    let forbidden = "registry_forbidden";
    let cases = [
        as_bob(
            "a user token registering a node",
            "/internal/register",
            r#"{"addr":"127.0.0.1:1","services":["hello"]}"#,
        ),
        as_bob("a user token deregistering a node", "/internal/deregister", "{}"),
        as_bob("a user token on the store", "/store", r#"{"op":"range","prefix":""}"#),
        Case {
            what: "a user certificate on the store",
            client: &carol,
            token: None,
            path: "/store",
            body: r#"{"op":"get","key":"nodes/n1"}"#.into(),
            status: 403,
            kind: forbidden,
            principal: "spiffe://local/user/carol",
        },
        as_node(
            "a node writing a user",
            "/store",
            put("auth/users/eve", r#"{"name":"eve"}"#, "null"),
            403,
            forbidden,
        ),
        as_node("a node writing policy", "/store", put("auth/policy/x", "{}", "null"), 403, forbidden),
        as_node(
            "a node reading token hashes",
            "/store",
            r#"{"op":"range","prefix":"auth/tokens/"}"#.into(),
            403,
            forbidden,
        ),
        as_node(
            "a node writing another node's record",
            "/store",
            put("nodes/n2", "{}", "null"),
            403,
            forbidden,
        ),
        as_node(
            "a node granting a lease",
            "/store",
            r#"{"op":"grant","ttl_ms":100000}"#.into(),
            403,
            forbidden,
        ),
        as_node("a node revoking a lease", "/store", r#"{"op":"revoke","lease":1}"#.into(), 403, forbidden),
        as_node(
            "a node attaching a lease not its own",
            "/store",
            put("services/data/x", "x", "987654321"),
            403,
            forbidden,
        ),
        as_node(
            "a node wiping the registry",
            "/store",
            r#"{"op":"delete_prefix","prefix":""}"#.into(),
            403,
            forbidden,
        ),
        as_node(
            "a node reporting a ban (it would spread to every gateway)",
            "/internal/events",
            r#"{"kind":"banned","source":"127.0.0.77","reason":"framed"}"#.into(),
            403,
            "internal_forbidden",
        ),
        as_node(
            "a node reporting a gateway's event",
            "/internal/events",
            r#"{"kind":"ban_lifted","source":"127.0.0.78","reason":"framed"}"#.into(),
            403,
            "internal_forbidden",
        ),
        as_node(
            "a bad registration",
            "/internal/register",
            r#"{"addr":"127.0.0.1:1","services":["../x"]}"#.into(),
            400,
            "bad_registration",
        ),
    ];
    for c in &cases {
        let bearer = c.token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        let url = format!("{}/_rampart{}", net.url, c.path);
        let matches = |e: &serde_json::Value| {
            e["principal"] == c.principal
                && e["reason"].as_str().is_some_and(|r| r.contains(&format!("/_rampart{}", c.path)))
        };
        let before = crate::events_of(&net, c.kind).iter().filter(|e| matches(e)).count();
        let (got, answer, _) = rt.block_on(request(c.client, "POST", &url, &headers, &c.body)).unwrap();
        assert_eq!(got, c.status, "{}: {answer}", c.what);
        wait_events(&net, c.kind, before + 1, matches);
    }
    // Nothing was written, nobody was banned, and the node still serves.
    assert!(!ok(&net.home, &["user", "list"]).contains("eve"));
    assert!(!ok(&net.home, &["bans", "list"]).contains("127.0.0.77"));
    assert!(crate::events_of(&net, "banned").is_empty());
    assert_eq!(crate::support::stdout(&net.call("/hello", &[])), "Hello World!");
}

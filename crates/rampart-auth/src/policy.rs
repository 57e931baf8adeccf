//! Default-deny policy: rules `(service, principal pattern, methods, allow|deny)`. A deny that
//! matches wins over any allow; with no matching rule the answer is deny, except for admins,
//! who may call everything no rule denies them. Only [`PolicySet::authorize`] can produce an
//! [`Authorized`], so a handler cannot forward a request that policy did not pass.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rampart_pki::{Role, SpiffeId, TrustDomain};
use rampart_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};
use crate::principal::{Credential, Principal};

/// Where rules live in the registry.
pub const POLICY_PREFIX: &str = "auth/policy/";

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let matching calls through.
    Allow,
    /// Refuse matching calls, whatever else allows them.
    Deny,
}

/// Whom a rule is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Pattern {
    /// Everyone this network authenticated itself: `*` (not callers vouched for by a peer
    /// network: they are let in only by a rule that names their network).
    Anyone,
    /// Every principal of a role: `role:<role>`.
    Role(Role),
    /// Every principal of a trust domain: `domain:<domain>`.
    Domain(TrustDomain),
    /// One certificate identity: `spiffe://<domain>/<role>/<name>`.
    Identity(SpiffeId),
    /// One user, by token or by a user certificate: `user/<name>`.
    User(String),
    /// Callers a peer network vouches for: `peer:<domain>/*`, or one of them as that network
    /// knows it, `peer:<domain>/user/<name>` or `peer:<domain>/spiffe://<domain>/…`.
    Peer {
        /// The peer network.
        domain: TrustDomain,
        /// The caller as its network knows it; `None` for all of them.
        subject: Option<String>,
    },
}

impl Pattern {
    fn matches(&self, p: &Principal) -> bool {
        match self {
            Pattern::Anyone => !matches!(p.credential(), Credential::Vouched { .. }),
            Pattern::Role(r) => p.role() == *r,
            Pattern::Domain(d) => p.domain() == d,
            Pattern::Identity(id) => matches!(p.credential(), Credential::Certificate(c) if c == id),
            Pattern::User(u) => p.user() == Some(u.as_str()),
            Pattern::Peer { domain, subject } => match p.credential() {
                Credential::Vouched { by, subject: s } => {
                    by.domain == *domain && subject.as_ref().is_none_or(|want| want == s)
                }
                _ => false,
            },
        }
    }
}

impl FromStr for Pattern {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| AuthError::Invalid { what: "principal pattern", value: s.to_owned(), reason };
        if s == "*" {
            return Ok(Pattern::Anyone);
        }
        if let Some(r) = s.strip_prefix("role:") {
            return r.parse().map(Pattern::Role).map_err(|_| bad("unknown role"));
        }
        if let Some(d) = s.strip_prefix("domain:") {
            return TrustDomain::new(d).map(Pattern::Domain).map_err(|_| bad("not a trust domain"));
        }
        if s.starts_with("spiffe://") {
            return SpiffeId::parse(s)
                .map(Pattern::Identity)
                .map_err(|_| bad("expected spiffe://<domain>/<role>/<name>"));
        }
        if let Some(u) = s.strip_prefix("user/") {
            crate::names::check_user(u).map_err(|_| bad("bad user name"))?;
            return Ok(Pattern::User(u.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("peer:") {
            return peer_pattern(rest).ok_or_else(|| {
                bad("expected peer:<domain>/*, peer:<domain>/user/<name> or peer:<domain>/spiffe://<domain>/<role>/<name>")
            });
        }
        Err(bad(
            "expected *, role:<role>, domain:<domain>, spiffe://<domain>/<role>/<name>, user/<name> or peer:<domain>/…",
        ))
    }
}

/// `<domain>/*` or `<domain>/<subject>`, the subject a principal of that domain.
fn peer_pattern(rest: &str) -> Option<Pattern> {
    let (domain, subject) = rest.split_once('/')?;
    let domain = TrustDomain::new(domain).ok()?;
    let subject = match subject {
        "*" => None,
        s if crate::names::is_subject_of(s, &domain) => Some(s.to_owned()),
        _ => return None,
    };
    Some(Pattern::Peer { domain, subject })
}

impl TryFrom<String> for Pattern {
    type Error = AuthError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Anyone => f.write_str("*"),
            Pattern::Role(r) => write!(f, "role:{r}"),
            Pattern::Domain(d) => write!(f, "domain:{d}"),
            Pattern::Identity(id) => write!(f, "{id}"),
            Pattern::User(u) => write!(f, "user/{u}"),
            Pattern::Peer { domain, subject } => {
                write!(f, "peer:{domain}/{}", subject.as_deref().unwrap_or("*"))
            }
        }
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id (for `policy remove` and in decisions).
    pub id: String,
    /// The service (first path segment), or `*` for every service.
    pub service: Selector,
    /// Whom it is about.
    pub principal: Pattern,
    /// HTTP methods (upper case); empty: every method.
    pub methods: Vec<String>,
    /// Allow or deny.
    pub effect: Effect,
}

impl Rule {
    fn matches(&self, p: &Principal, method: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method)) && self.principal.matches(p)
    }
}

pub use crate::names::{Selector, check_service, check_service_name};

fn check_method(m: &str) -> Result<()> {
    if !m.is_empty() && m.len() <= 20 && m.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            what: "method",
            value: m.into(),
            reason: "an HTTP method in upper case, like GET",
        })
    }
}

/// Why a call was let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedBy {
    /// An allow rule, by id.
    Rule(String),
    /// No rule denied it and the principal is an admin.
    Admin,
}

/// Proof that policy let a call through. Only [`PolicySet::authorize`] makes one.
#[derive(Debug)]
pub struct Authorized {
    allowed_by: AllowedBy,
}

impl Authorized {
    /// What allowed it (for the audit trail).
    pub fn allowed_by(&self) -> &AllowedBy {
        &self.allowed_by
    }
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The deny rule that matched; `None` for the default deny.
    pub rule: Option<String>,
    /// A sentence for the caller and the audit log.
    pub reason: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The rules, indexed by service, ready to evaluate.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    by_service: HashMap<String, Vec<Rule>>,
    any_service: Vec<Rule>,
}

impl PolicySet {
    /// Indexes rules by service.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut set = PolicySet::default();
        for r in rules {
            match &r.service {
                Selector::Any => set.any_service.push(r),
                Selector::Service(name) => {
                    set.by_service.entry(name.as_str().to_owned()).or_default().push(r)
                }
            }
        }
        set
    }

    /// Whether it holds no rule (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty() && self.any_service.is_empty()
    }

    /// Decides whether `principal` may call `method` on `service`.
    pub fn authorize(
        &self,
        principal: &Principal,
        service: &str,
        method: &str,
    ) -> Result<Authorized, Denied> {
        let rules = || {
            let specific = self.by_service.get(service).into_iter().flatten();
            specific.chain(self.any_service.iter()).filter(|r| r.matches(principal, method))
        };
        if let Some(deny) = rules().find(|r| r.effect == Effect::Deny) {
            return Err(Denied {
                rule: Some(deny.id.clone()),
                reason: format!(
                    "{principal} may not call {method} on {service} (denied by rule {})",
                    deny.id
                ),
            });
        }
        if let Some(allow) = rules().find(|r| r.effect == Effect::Allow) {
            return Ok(Authorized { allowed_by: AllowedBy::Rule(allow.id.clone()) });
        }
        if principal.is_admin() {
            return Ok(Authorized { allowed_by: AllowedBy::Admin });
        }
        Err(Denied {
            rule: None,
            reason: format!("no policy allows {principal} to call {method} on {service}"),
        })
    }
}

/// Adds a rule to the registry; returns it with its new id.
pub async fn add(
    store: &dyn Store,
    service: &str,
    principal: &str,
    methods: &[String],
    effect: Effect,
) -> Result<Rule> {
    let service: Selector = service.parse()?;
    let principal: Pattern = principal.parse()?;
    let mut methods: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
    for m in &methods {
        check_method(m)?;
    }
    methods.sort();
    methods.dedup();
    loop {
        let mut raw = [0u8; 4];
        getrandom::fill(&mut raw).map_err(|e| AuthError::Hashing(e.to_string()))?;
        let rule = Rule {
            id: hex::encode(raw),
            service: service.clone(),
            principal: principal.clone(),
            methods: methods.clone(),
            effect,
        };
        let bytes = serde_json::to_vec(&rule).map_err(|e| AuthError::Hashing(e.to_string()))?;
        let out = store
            .compare_and_set(&format!("{POLICY_PREFIX}{}", rule.id), Expect::Absent, Some(bytes), None)
            .await?;
        if out.succeeded {
            return Ok(rule);
        }
    }
}

/// Every rule.
pub async fn list(store: &dyn Store) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for kv in store.range(POLICY_PREFIX).await? {
        out.push(
            serde_json::from_slice(&kv.value)
                .map_err(|e| AuthError::Corrupt { key: kv.key.clone(), reason: e.to_string() })?,
        );
    }
    Ok(out)
}

/// Removes a rule by id.
pub async fn remove(store: &dyn Store, id: &str) -> Result<()> {
    if store.delete(&format!("{POLICY_PREFIX}{id}")).await? {
        Ok(())
    } else {
        Err(AuthError::NoSuchRule(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::for_tests;

    fn rule(id: &str, service: &str, who: &str, methods: &[&str], effect: Effect) -> Rule {
        Rule {
            id: id.into(),
            service: service.parse().unwrap(),
            principal: who.parse().unwrap(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            effect,
        }
    }

    #[test]
    fn default_deny_and_admin_override() {
        let set = PolicySet::default();
        let alice = for_tests("spiffe://prod/user/alice");
        let admin = for_tests("spiffe://prod/admin/ops");
        let denied = set.authorize(&alice, "data", "GET").unwrap_err();
        assert_eq!(denied.rule, None);
        assert_eq!(set.authorize(&admin, "data", "GET").unwrap().allowed_by(), &AllowedBy::Admin);
    }

    #[test]
    fn deny_wins_over_allow_even_for_admins() {
        let set = PolicySet::new([
            rule("a", "data", "*", &[], Effect::Allow),
            rule("d", "data", "role:admin", &["DELETE"], Effect::Deny),
        ]);
        let admin = for_tests("spiffe://prod/admin/ops");
        let alice = for_tests("spiffe://prod/user/alice");
        assert_eq!(set.authorize(&admin, "data", "DELETE").unwrap_err().rule.as_deref(), Some("d"));
        assert!(set.authorize(&admin, "data", "GET").is_ok());
        assert!(set.authorize(&alice, "data", "DELETE").is_ok());
    }

    #[test]
    fn patterns() {
        let set = PolicySet::new([
            rule("1", "hello", "user/alice", &["GET"], Effect::Allow),
            rule("2", "echo", "domain:prod", &[], Effect::Allow),
            rule("3", "data", "spiffe://prod/node/web-1", &[], Effect::Allow),
            rule("4", "*", "role:peer", &["GET"], Effect::Allow),
        ]);
        let alice = for_tests("spiffe://prod/user/alice");
        let bob = for_tests("spiffe://test/user/bob");
        let web = for_tests("spiffe://prod/node/web-1");
        let peer = for_tests("spiffe://other/peer/net2");
        assert!(set.authorize(&alice, "hello", "GET").is_ok());
        assert!(set.authorize(&alice, "hello", "POST").is_err());
        assert!(set.authorize(&bob, "hello", "GET").is_err());
        assert!(set.authorize(&alice, "echo", "PUT").is_ok());
        assert!(set.authorize(&bob, "echo", "PUT").is_err());
        assert!(set.authorize(&web, "data", "POST").is_ok());
        assert!(set.authorize(&alice, "data", "POST").is_err());
        assert!(set.authorize(&peer, "anything", "GET").is_ok());
        assert!(set.authorize(&peer, "anything", "POST").is_err());
    }

    /// A caller vouched for by a peer is let in only by a rule naming its network (`peer:` or
    /// `domain:`), never by `*` or by a rule about a local user of the same name.
    #[test]
    fn a_vouched_caller_matches_only_rules_that_name_its_network() {
        let prod = TrustDomain::new("prod").unwrap();
        let gateway = for_tests("spiffe://east/gateway/gw");
        let vouch = |s: &str| Principal::vouched(&gateway, &prod, s).unwrap();
        let (alice, carol) = (vouch("user/alice"), vouch("spiffe://east/user/carol"));
        assert_eq!(alice.name(), "peer:east/user/alice");
        assert_eq!(carol.name(), "peer:east/spiffe://east/user/carol");
        assert!(!alice.is_admin() && alice.user().is_none() && alice.vouchable().is_none());
        let set = PolicySet::new([
            rule("1", "hello", "peer:east/user/alice", &[], Effect::Allow),
            rule("2", "echo", "peer:east/*", &[], Effect::Allow),
            rule("3", "data", "domain:east", &[], Effect::Allow),
            rule("4", "*", "*", &[], Effect::Allow),
            rule("5", "*", "user/alice", &[], Effect::Allow),
            rule("6", "time", "peer:east/spiffe://east/user/carol", &[], Effect::Allow),
        ]);
        assert!(set.authorize(&alice, "hello", "GET").is_ok());
        assert!(set.authorize(&carol, "hello", "GET").is_err());
        assert!(
            set.authorize(&alice, "echo", "POST").is_ok() && set.authorize(&carol, "echo", "GET").is_ok()
        );
        assert!(set.authorize(&carol, "data", "GET").is_ok());
        assert!(
            set.authorize(&carol, "time", "GET").is_ok() && set.authorize(&alice, "time", "GET").is_err()
        );
        assert!(set.authorize(&alice, "other", "GET").is_err(), "neither * nor user/alice lets a peer in");
        // Only a peer network's gateway vouches, and only for its own network's principals.
        let local_gateway = for_tests("spiffe://prod/gateway/gw");
        let node = for_tests("spiffe://east/node/n1");
        assert!(Principal::vouched(&local_gateway, &prod, "user/alice").is_err());
        assert!(Principal::vouched(&node, &prod, "user/alice").is_err());
        for bad in ["spiffe://west/user/x", "alice", "user/../x", "peer:east/user/alice", ""] {
            assert!(Principal::vouched(&gateway, &prod, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_parse_and_print() {
        for p in [
            "*",
            "role:node",
            "domain:prod",
            "spiffe://prod/user/alice",
            "user/alice",
            "peer:east/*",
            "peer:east/user/alice",
            "peer:east/spiffe://east/user/carol",
        ] {
            assert_eq!(p.parse::<Pattern>().unwrap().to_string(), p);
        }
        for bad in [
            "",
            "role:king",
            "domain:Prod",
            "spiffe://x",
            "alice",
            "user/../x",
            "**",
            "peer:east",
            "peer:east/alice",
            "peer:east/spiffe://west/user/x",
            "peer:/*",
        ] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }

    /// Property: over random rule sets, the decision always equals the specification
    /// (deny if any matching deny; else allow if any matching allow; else admin-only).
    #[test]
    fn decisions_follow_the_specification() {
        let principals = [
            for_tests("spiffe://prod/user/alice"),
            for_tests("spiffe://prod/admin/ops"),
            for_tests("spiffe://test/node/n1"),
            for_tests("spiffe://prod/gateway/gw"),
        ];
        let patterns = [
            "*",
            "role:user",
            "role:admin",
            "role:node",
            "domain:prod",
            "domain:test",
            "user/alice",
            "spiffe://test/node/n1",
        ];
        let services = ["data", "echo", "*"];
        let methods: [&[&str]; 3] = [&[], &["GET"], &["POST", "GET"]];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..2_000 {
            let rules: Vec<Rule> = (0..next(6))
                .map(|i| {
                    let effect = if next(3) == 0 { Effect::Deny } else { Effect::Allow };
                    rule(
                        &format!("{round}-{i}"),
                        services[next(3)],
                        patterns[next(patterns.len())],
                        methods[next(3)],
                        effect,
                    )
                })
                .collect();
            let set = PolicySet::new(rules.clone());
            for p in &principals {
                for (svc, m) in [("data", "GET"), ("data", "POST"), ("echo", "DELETE")] {
                    let matching: Vec<&Rule> =
                        rules.iter().filter(|r| r.service.selects(svc) && r.matches(p, m)).collect();
                    let expect_allow = if matching.iter().any(|r| r.effect == Effect::Deny) {
                        false
                    } else {
                        matching.iter().any(|r| r.effect == Effect::Allow) || p.is_admin()
                    };
                    assert_eq!(
                        set.authorize(p, svc, m).is_ok(),
                        expect_allow,
                        "{p} {m} {svc} with {rules:?}"
                    );
                }
            }
        }
    }
}

//! Identities carried by certificates: `spiffe://<trust-domain>/<role>/<name>`.
//!
//! The trust domain and the name become path components on disk and in a URI, so both are
//! validated against a small character set when they are parsed, never later.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PkiError;

/// The longest trust domain or name accepted (a DNS label's length).
const MAX_LEN: usize = 63;

/// What a certificate's holder is allowed to be. The role in the certificate is what counts:
/// a user certificate can never act as a node or a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A gateway: serves the front door and calls nodes.
    Gateway,
    /// A node: hosts services, called by gateways.
    Node,
    /// A person or program calling services.
    User,
    /// An operator: may call everything, including the admin API.
    Admin,
    /// Another network's gateway, for federation.
    Peer,
}

impl Role {
    /// Every role, in the order they are usually listed.
    pub const ALL: [Role; 5] = [Role::Gateway, Role::Node, Role::User, Role::Admin, Role::Peer];

    /// The role's name as it appears in identities.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Node => "node",
            Role::User => "user",
            Role::Admin => "admin",
            Role::Peer => "peer",
        }
    }

    /// Whether holders of this role terminate TLS (and so need serverAuth and DNS/IP SANs).
    pub fn serves_tls(self) -> bool {
        matches!(self, Role::Gateway | Role::Node | Role::Peer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| PkiError::UnknownRole(s.to_owned()))
    }
}

/// A trust domain (an environment such as `prod` or `test`), each with its own CA.
///
/// Lowercase letters, digits, `.`, `-` and `_`, starting with a letter or digit (SPIFFE's
/// trust-domain alphabet), at most 63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name.
    pub fn new(s: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::InvalidDomain { domain: s.to_owned(), reason };
        check_common(s).map_err(bad)?;
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
            return Err(bad("use lowercase letters, digits, '.', '-' and '_' only"));
        }
        Ok(TrustDomain(s.to_owned()))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = PkiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TrustDomain::new(&s)
    }
}

impl From<TrustDomain> for String {
    fn from(d: TrustDomain) -> String {
        d.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::new(s)
    }
}

/// The name of a certificate holder within its trust domain and role (`web-1`, `alice`).
///
/// Letters, digits, `.`, `-` and `_`, starting with a letter or digit, at most 63 characters:
/// safe as a file name and as a URI path segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityName(String);

impl EntityName {
    /// Validates a name.
    pub fn new(s: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::InvalidName { name: s.to_owned(), reason };
        check_common(s).map_err(bad)?;
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err(bad("use letters, digits, '.', '-' and '_' only (no spaces or path separators)"));
        }
        Ok(EntityName(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityName {
    type Error = PkiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EntityName::new(&s)
    }
}

impl From<EntityName> for String {
    fn from(n: EntityName) -> String {
        n.0
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EntityName {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityName::new(s)
    }
}

fn check_common(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > MAX_LEN {
        return Err("longer than 63 characters");
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or a digit");
    }
    Ok(())
}

/// The identity a certificate carries: `spiffe://<domain>/<role>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    /// The trust domain (environment).
    pub domain: TrustDomain,
    /// What the holder is.
    pub role: Role,
    /// Who the holder is.
    pub name: EntityName,
}

impl SpiffeId {
    /// Builds an identity from its parts.
    pub fn new(domain: TrustDomain, role: Role, name: EntityName) -> Self {
        SpiffeId { domain, role, name }
    }

    /// Parses `spiffe://<domain>/<role>/<name>`; anything else (extra segments, a query,
    /// unknown role) is an error.
    pub fn parse(uri: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::InvalidName { name: uri.to_owned(), reason };
        let rest = uri.strip_prefix("spiffe://").ok_or_else(|| bad("not a spiffe:// identity"))?;
        let mut parts = rest.split('/');
        let (Some(domain), Some(role), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected spiffe://<domain>/<role>/<name>"));
        };
        Ok(SpiffeId { domain: TrustDomain::new(domain)?, role: role.parse()?, name: EntityName::new(name)? })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}/{}/{}", self.domain, self.role, self.name)
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = PkiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SpiffeId::parse(&s)
    }
}

impl From<SpiffeId> for String {
    fn from(id: SpiffeId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_path_tricks() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "é", &"x".repeat(64), "a\\b", "a\0"] {
            assert!(EntityName::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["web-1", "alice", "n.1_x", "A9"] {
            assert!(EntityName::new(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn domains_are_lowercase() {
        assert!(TrustDomain::new("Prod").is_err());
        assert!(TrustDomain::new("prod/x").is_err());
        assert!(TrustDomain::new("prod.example_1-a").is_ok());
    }

    #[test]
    fn spiffe_round_trip() {
        let id = SpiffeId::parse("spiffe://prod/node/web-1").unwrap();
        assert_eq!(id.role, Role::Node);
        assert_eq!(id.to_string(), "spiffe://prod/node/web-1");
        for bad in [
            "spiffe://prod/node",
            "spiffe://prod/node/a/b",
            "spiffe://prod/king/a",
            "https://prod/node/a",
            "spiffe://Prod/node/a",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_parse() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}

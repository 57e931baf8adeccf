//! The names identity and access deal in, checked in one place: users, and services (what a
//! node hosts, never the policy wildcard) and service selectors (a service or `*`, what rules
//! and token scopes name).

use std::fmt;
use std::str::FromStr;

use rampart_pki::EntityName;
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};

/// The selector that names every service, in rules and token scopes.
pub const ANY_SERVICE: &str = "*";

/// The name of one service: letters, digits, `.`, `-`, `_` (not leading), at most 63. The
/// first path segment of a request; never `*`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    /// `s` as a service name, or why it is not one.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !s.starts_with('_');
        if ok {
            Ok(ServiceName(s.to_owned()))
        } else {
            Err(AuthError::Invalid {
                what: "service name",
                value: s.into(),
                reason: "letters, digits, '.', '-', '_' (not leading), at most 63",
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self> {
        ServiceName::parse(s)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which services a rule is about: every one (`*`), or one by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Selector {
    /// Every service: `*`.
    Any,
    /// One service.
    Service(ServiceName),
}

impl Selector {
    /// Whether it selects `service`.
    pub fn selects(&self, service: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Service(name) => name.as_str() == service,
        }
    }
}

impl FromStr for Selector {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self> {
        if s == ANY_SERVICE { Ok(Selector::Any) } else { ServiceName::parse(s).map(Selector::Service) }
    }
}

impl TryFrom<String> for Selector {
    type Error = AuthError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.to_string()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Any => f.write_str(ANY_SERVICE),
            Selector::Service(name) => f.write_str(name.as_str()),
        }
    }
}

/// Checks the name of one service (what a node hosts). Never the wildcard `*`.
pub fn check_service_name(s: &str) -> Result<()> {
    ServiceName::parse(s).map(drop)
}

/// Checks a service as a rule or a token scope names it: a service name, or `*` (every one).
pub fn check_service(s: &str) -> Result<()> {
    s.parse::<Selector>().map(drop)
}

/// Checks a user name: the certificate-name alphabet (letters, digits, `.`, `-`, `_`).
pub fn check_user(name: &str) -> Result<()> {
    EntityName::new(name).map(|_| ()).map_err(|_| AuthError::Invalid {
        what: "user name",
        value: name.into(),
        reason: "use letters, digits, '.', '-', '_' (at most 63)",
    })
}

/// Whether `subject` is a principal of `domain` as that network names it: `user/<name>`, or a
/// `spiffe://<domain>/…` identity (what a peer gateway may vouch for).
pub fn is_subject_of(subject: &str, domain: &rampart_pki::TrustDomain) -> bool {
    match subject.strip_prefix("user/") {
        Some(user) => check_user(user).is_ok(),
        None => rampart_pki::SpiffeId::parse(subject).is_ok_and(|id| id.domain == *domain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_is_never_the_wildcard_which_only_selectors_take() {
        assert!(ServiceName::parse("echo").is_ok_and(|n| n.as_str() == "echo"));
        for bad in ["*", "", "_x", "a/b", "a b", &"x".repeat(64)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(check_service("*").is_ok() && check_service("echo").is_ok());
        assert_eq!("*".parse::<Selector>().ok(), Some(Selector::Any));
        let echo: Selector = "echo".parse().unwrap_or(Selector::Any);
        assert!(echo.selects("echo") && !echo.selects("data") && Selector::Any.selects("data"));
        assert_eq!(serde_json::to_string(&echo).unwrap_or_default(), "\"echo\"");
        assert!(serde_json::from_str::<Selector>("\"_bad\"").is_err());
        assert!(check_service("_x").is_err());
        assert!(check_user("alice").is_ok() && check_user("al ice").is_err());
    }
}

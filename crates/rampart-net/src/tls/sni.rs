//! Several certificates on one listener, chosen by the name the client asks for (SNI): the
//! certificate whose DNS names hold it, the first one otherwise (clients that send no SNI, or
//! a name none holds). Each is a [`LiveIdentity`], so a renewed one is presented at once.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::LiveIdentity;

/// Certificates by server name; never empty.
#[derive(Debug)]
pub struct ByServerName {
    /// Each identity with the DNS names of its certificate (lower case), the default first.
    certs: Vec<(Vec<String>, LiveIdentity)>,
}

impl ByServerName {
    /// `first` (the default), then `others`, each answering for the DNS names its certificate
    /// carries when it is made.
    pub fn new(first: LiveIdentity, others: Vec<LiveIdentity>) -> Self {
        let names = |id: &LiveIdentity| {
            rampart_pki::inspect::cert_from_der(id.leaf().as_ref())
                .map(|c| c.dns.iter().map(|d| d.to_ascii_lowercase()).collect())
                .unwrap_or_default()
        };
        let certs = std::iter::once(first).chain(others).map(|id| (names(&id), id)).collect();
        ByServerName { certs }
    }

    /// Whether one of its certificates is for `name` (not merely the default).
    pub fn holds(&self, name: &str) -> bool {
        self.certs.iter().any(|(names, _)| names.iter().any(|n| matches(n, name)))
    }

    /// The identity presented to a client asking for `name`.
    pub fn pick(&self, name: Option<&str>) -> &LiveIdentity {
        let found =
            name.and_then(|name| self.certs.iter().find(|(names, _)| names.iter().any(|n| matches(n, name))));
        &found.unwrap_or(&self.certs[0]).1
    }
}

/// Whether the DNS name `pattern` (`host` or `*.domain`: one label) holds `name`, in any case.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(domain)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).certified())
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn names_and_one_label_wildcards_match() {
        assert!(matches("api.example.test", "api.example.test"));
        assert!(matches("*.example.test", "api.example.test"));
        assert!(!matches("*.example.test", "a.b.example.test"));
        assert!(!matches("*.example.test", "example.test"));
        assert!(!matches("api.example.test", "web.example.test"));
        assert!(matches("api.example.test", "API.Example.Test"));
        assert!(matches("*.example.test", "Api.EXAMPLE.test"));
    }
}

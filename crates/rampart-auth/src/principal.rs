//! Who is calling. A [`Principal`] comes only from a verified TLS peer certificate
//! ([`Principal::from_tls`]) or a verified token (`Tokens::verify`): no header, no argument
//! of a function a handler could call with made-up values.

use std::fmt;

use rampart_pki::{Role, SpiffeId, TrustDomain};

/// How the caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate verified by the TLS layer.
    Certificate(SpiffeId),
    /// An API token; the id names it in listings and events (never the secret).
    Token {
        /// The token's id.
        id: String,
    },
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    credential: Credential,
    role: Role,
    domain: TrustDomain,
    user: Option<String>,
}

impl Principal {
    /// The principal of a TLS connection whose handshake is complete: the identity in the
    /// peer's end-entity certificate (which the connection's verifier already checked against
    /// the trust domain's CA and CRL). `None` when the peer sent no certificate or the
    /// handshake is not finished; an error when the certificate carries no rampart identity.
    pub fn from_tls(conn: &rustls::CommonState) -> Result<Option<Self>, String> {
        if conn.is_handshaking() {
            return Ok(None);
        }
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else { return Ok(None) };
        // The handshake's verifier asked the same: remembered, not parsed again.
        let presented = rampart_pki::presented::presented(cert.as_ref())?;
        let id = presented.identity.ok_or("the certificate carries no spiffe:// identity")?;
        Ok(Some(Principal::certificate(id)))
    }

    /// A certificate principal. Crate-private: outside, only [`Principal::from_tls`] makes one.
    pub(crate) fn certificate(id: SpiffeId) -> Self {
        let user = (id.role == Role::User || id.role == Role::Admin).then(|| id.name.to_string());
        Principal { role: id.role, domain: id.domain.clone(), user, credential: Credential::Certificate(id) }
    }

    /// A token principal (made by the token verifier).
    pub(crate) fn token(id: String, user: String, admin: bool, domain: TrustDomain) -> Self {
        let role = if admin { Role::Admin } else { Role::User };
        Principal { credential: Credential::Token { id }, role, domain, user: Some(user) }
    }

    /// How it authenticated.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Its role: from the certificate, or `admin`/`user` from the token's user.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its trust domain (a token's is the verifying gateway's).
    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// The user name, for user and admin principals.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether it may call everything not explicitly denied, and the admin API.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The name policy and events use: the certificate identity, or `user/<name>`.
    pub fn name(&self) -> String {
        match &self.credential {
            Credential::Certificate(id) => id.to_string(),
            Credential::Token { .. } => format!("user/{}", self.user.as_deref().unwrap_or("?")),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
pub(crate) fn for_tests(spiffe: &str) -> Principal {
    Principal::certificate(SpiffeId::parse(spiffe).unwrap())
}

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
    /// Vouched for by a peer network's gateway (verified by its certificate, in the TLS
    /// handshake, against that network's bundle) in a signed assertion.
    Vouched {
        /// The peer gateway that vouched.
        by: SpiffeId,
        /// The caller as its home network knows it: `user/<name>` or a `spiffe://` identity
        /// of that network.
        subject: String,
    },
}

/// Why a peer gateway's word about a caller was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VouchRefusal {
    /// The voucher is not a peer network's gateway verified by its certificate.
    #[error("only a peer network's gateway, by its certificate, may vouch for a caller")]
    NotPeerGateway,
    /// The subject is not a principal of the voucher's own network.
    #[error("{0:?} is not a principal of the vouching network (user/<name> or spiffe://<its domain>/...)")]
    BadSubject(String),
    /// A relayed client certificate from something other than a node of this network.
    #[error("only a node of this network, by its certificate, may pass on a client certificate")]
    NotLocalNode,
    /// A relayed client certificate with no identity of this network.
    #[error("the relayed client certificate is not usable here: {0}")]
    BadCertificate(String),
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
    /// The principal of a client certificate `der` that the node `by` verified in its own
    /// handshake (against this network's CA and CRL: a passthrough route ends TLS at the
    /// node). `by` must be a node of `local`, by its certificate, and `der` must name an
    /// identity of `local`: a node cannot pass on a caller of another network.
    pub fn relayed_certificate(
        by: &Principal,
        local: &TrustDomain,
        der: &[u8],
    ) -> Result<Self, VouchRefusal> {
        match &by.credential {
            Credential::Certificate(node) if node.role == Role::Node && node.domain == *local => {}
            _ => return Err(VouchRefusal::NotLocalNode),
        }
        let presented = rampart_pki::presented::presented(der).map_err(VouchRefusal::BadCertificate)?;
        let id = presented
            .identity
            .ok_or_else(|| VouchRefusal::BadCertificate("it carries no spiffe:// identity".to_owned()))?;
        if id.domain != *local {
            return Err(VouchRefusal::BadCertificate(format!("{id} is of another trust domain")));
        }
        Ok(Principal::certificate(id))
    }

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

    /// A caller that the peer gateway `by` (a certificate principal of role gateway, of a
    /// domain other than `local`) vouches for as `subject`, a principal of its own network.
    /// Its name is `peer:<domain>/<subject>`, so a vouched identity never looks like one
    /// verified directly; its role is `peer`; it is never a user or an admin here.
    pub fn vouched(by: &Principal, local: &TrustDomain, subject: &str) -> Result<Self, VouchRefusal> {
        let Credential::Certificate(gateway) = &by.credential else {
            return Err(VouchRefusal::NotPeerGateway);
        };
        if gateway.role != Role::Gateway || gateway.domain == *local {
            return Err(VouchRefusal::NotPeerGateway);
        }
        if !crate::names::is_subject_of(subject, &gateway.domain) {
            return Err(VouchRefusal::BadSubject(subject.chars().take(100).collect()));
        }
        Ok(Principal {
            role: Role::Peer,
            domain: gateway.domain.clone(),
            user: None,
            credential: Credential::Vouched { by: gateway.clone(), subject: subject.to_owned() },
        })
    }

    /// How it authenticated.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// Its role: from the certificate, or `admin`/`user` from the token's user.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its trust domain (a token's is the verifying gateway's; a vouched caller's is its home
    /// network's).
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

    /// The name policy and events use: the certificate identity, `user/<name>`, or
    /// `peer:<domain>/<subject>`.
    pub fn name(&self) -> String {
        match &self.credential {
            Credential::Certificate(id) => id.to_string(),
            Credential::Token { .. } => format!("user/{}", self.user.as_deref().unwrap_or("?")),
            Credential::Vouched { by, subject } => format!("peer:{}/{subject}", by.domain),
        }
    }

    /// The principal as its own network knows it, which a gateway vouches for when it forwards
    /// the call to a peer: `user/<name>` for a user however it authenticated (token or
    /// certificate), else the certificate identity. `None` for a caller vouched by a peer:
    /// such a caller is never passed on.
    pub fn vouchable(&self) -> Option<String> {
        match (&self.credential, &self.user) {
            (Credential::Vouched { .. }, _) => None,
            (Credential::Certificate(id), _) => Some(id.to_string()),
            (Credential::Token { .. }, Some(user)) => Some(format!("user/{user}")),
            (Credential::Token { .. }, None) => None,
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

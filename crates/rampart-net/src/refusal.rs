//! Why a TLS handshake was refused, read from the typed error rustls (and our identity check)
//! produced, never from its wording: each kind is a security event of its own, and every kind
//! that is about the client's certificate counts towards a ban of the source.

use rampart_events::EventKind;
use std::fmt;

use rustls::{CertificateError, Error as TlsError};

use crate::proxy_header::ProxyRefusal;
use crate::tls::IdentityError;

/// A refused handshake, by cause.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeRefusal {
    /// No client certificate on a listener that requires one.
    NoCertificate,
    /// Not issued by this trust domain's CA (another CA, or one that copies its name).
    UnknownCa,
    /// Issued for another trust domain.
    OtherDomain(String),
    /// Listed in the CRL.
    Revoked,
    /// Past its validity.
    Expired,
    /// Before its validity.
    NotYetValid,
    /// A role that may not connect here.
    WrongRole(String),
    /// Not a usable rampart identity: no or several URI SANs, a CA as leaf, wrong key usage,
    /// a key or signature algorithm refused, a malformed certificate.
    BadIdentity(String),
    /// The client took longer than the handshake timeout.
    TimedOut,
    /// Anything else in the protocol (no common version or cipher, a bad message, an alert).
    Protocol(String),
    /// The PROXY protocol header before TLS: missing from a trusted forwarder, sent by anyone
    /// else, or malformed.
    ProxyHeader(ProxyRefusal),
}

impl HandshakeRefusal {
    /// The security event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            HandshakeRefusal::NoCertificate => EventKind::TlsNoCertificate,
            HandshakeRefusal::UnknownCa => EventKind::TlsUnknownCa,
            HandshakeRefusal::OtherDomain(_) => EventKind::TlsOtherDomain,
            HandshakeRefusal::Revoked => EventKind::TlsRevoked,
            HandshakeRefusal::Expired => EventKind::TlsExpired,
            HandshakeRefusal::NotYetValid => EventKind::TlsNotYetValid,
            HandshakeRefusal::WrongRole(_) => EventKind::TlsWrongRole,
            HandshakeRefusal::BadIdentity(_) => EventKind::TlsBadIdentity,
            HandshakeRefusal::TimedOut => EventKind::SlowClient,
            HandshakeRefusal::Protocol(_) => EventKind::TlsHandshakeFailed,
            HandshakeRefusal::ProxyHeader(ProxyRefusal::Missing) => EventKind::ProxyHeaderMissing,
            HandshakeRefusal::ProxyHeader(ProxyRefusal::Untrusted) => EventKind::ProxyHeaderUntrusted,
            HandshakeRefusal::ProxyHeader(ProxyRefusal::Malformed(_)) => EventKind::ProxyHeaderBad,
        }
    }

    /// Whether it is a failed authentication of the client (counts towards a ban): every
    /// refusal about the certificate it presented, or did not present, and a PROXY header
    /// from an untrusted source (an address forged). A trusted forwarder's bad header is its
    /// misconfiguration: banning it would ban every client behind it.
    pub fn is_authentication_failure(&self) -> bool {
        match self {
            HandshakeRefusal::TimedOut | HandshakeRefusal::Protocol(_) => false,
            HandshakeRefusal::ProxyHeader(p) => *p == ProxyRefusal::Untrusted,
            _ => true,
        }
    }

    /// Classifies the error of a failed accept. `None` when the client merely went away
    /// (closed or reset mid-handshake: a browser's spare connection, a port scan), which is no
    /// security event.
    pub fn from_io(error: &std::io::Error) -> Option<Self> {
        if let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) {
            return Some(Self::from_tls(tls));
        }
        // A connector may wrap the TLS stream's io::Error in another (hyper-rustls does).
        if let Some(inner) = error.get_ref().and_then(|e| e.downcast_ref::<std::io::Error>()) {
            return Self::from_io(inner);
        }
        use std::io::ErrorKind::*;
        match error.kind() {
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => None,
            TimedOut => Some(HandshakeRefusal::TimedOut),
            _ => Some(HandshakeRefusal::Protocol(error.to_string())),
        }
    }

    /// Classifies a rustls error.
    pub fn from_tls(error: &TlsError) -> Self {
        match error {
            TlsError::NoCertificatesPresented => HandshakeRefusal::NoCertificate,
            TlsError::InvalidCertificate(c) => Self::from_certificate(c),
            other => HandshakeRefusal::Protocol(other.to_string()),
        }
    }

    fn from_certificate(error: &CertificateError) -> Self {
        use CertificateError as C;
        match error {
            // A signature that does not verify under the CA of the same name: forged.
            C::UnknownIssuer | C::BadSignature => HandshakeRefusal::UnknownCa,
            C::Revoked => HandshakeRefusal::Revoked,
            C::Expired | C::ExpiredContext { .. } => HandshakeRefusal::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => HandshakeRefusal::NotYetValid,
            C::Other(other) => match other.0.downcast_ref::<IdentityError>() {
                Some(IdentityError::OtherDomain { presented, .. }) => {
                    HandshakeRefusal::OtherDomain(presented.clone())
                }
                Some(e @ IdentityError::WrongRole { .. }) => HandshakeRefusal::WrongRole(e.to_string()),
                Some(e @ (IdentityError::NoIdentity(_) | IdentityError::NotRegisteredHere { .. })) => {
                    HandshakeRefusal::BadIdentity(e.to_string())
                }
                // webpki's own refusals without a rustls variant (a CA used as an end entity…).
                None => HandshakeRefusal::BadIdentity(other.to_string()),
            },
            other => HandshakeRefusal::BadIdentity(other.to_string()),
        }
    }

    /// The sentence for the event.
    pub fn reason(&self) -> String {
        match self {
            HandshakeRefusal::NoCertificate => "no client certificate on a listener that requires one".into(),
            HandshakeRefusal::UnknownCa => "client certificate not issued by this trust domain's CA".into(),
            HandshakeRefusal::OtherDomain(d) => format!("client certificate of another trust domain ({d})"),
            HandshakeRefusal::Revoked => "client certificate is revoked".into(),
            HandshakeRefusal::Expired => "client certificate has expired".into(),
            HandshakeRefusal::NotYetValid => "client certificate is not valid yet".into(),
            HandshakeRefusal::WrongRole(why) => why.clone(),
            HandshakeRefusal::BadIdentity(why) => {
                format!("client certificate is not a usable identity: {why}")
            }
            HandshakeRefusal::TimedOut => "TLS handshake not completed in time".into(),
            HandshakeRefusal::Protocol(why) => format!("TLS handshake failed: {why}"),
            HandshakeRefusal::ProxyHeader(p) => p.to_string(),
        }
    }
}

impl fmt::Display for HandshakeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_typed_error() {
        let io = |e: TlsError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let kind = |e: TlsError| HandshakeRefusal::from_io(&io(e)).map(|r| r.kind());
        assert_eq!(kind(TlsError::NoCertificatesPresented), Some(EventKind::TlsNoCertificate));
        assert_eq!(kind(CertificateError::BadSignature.into()), Some(EventKind::TlsUnknownCa));
        assert_eq!(kind(CertificateError::Expired.into()), Some(EventKind::TlsExpired));
        assert_eq!(kind(CertificateError::NotValidYet.into()), Some(EventKind::TlsNotYetValid));
        assert_eq!(kind(CertificateError::InvalidPurpose.into()), Some(EventKind::TlsBadIdentity));
        assert_eq!(kind(TlsError::HandshakeNotComplete), Some(EventKind::TlsHandshakeFailed));
        assert_eq!(HandshakeRefusal::Revoked.kind().severity(), rampart_events::Severity::Critical);
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(HandshakeRefusal::from_io(&eof), None);
        assert!(!HandshakeRefusal::Protocol(String::new()).is_authentication_failure());
        assert!(HandshakeRefusal::UnknownCa.is_authentication_failure());
    }
}

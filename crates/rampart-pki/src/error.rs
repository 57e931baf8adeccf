//! The one error type of the PKI crate.

use crate::identity::Role;
use std::path::PathBuf;

/// Everything that can go wrong while managing certificate authorities.
///
/// Messages name the file or the value at fault and never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A trust domain name outside the allowed character set.
    #[error("invalid trust domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The rejected value.
        domain: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A certificate name outside the allowed character set.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected value.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A role that rampart does not know.
    #[error("unknown role {0:?} (expected one of: gateway, node, user, admin, peer)")]
    UnknownRole(String),
    /// A key type that rampart does not offer.
    #[error("unknown key type {0:?} (expected one of: p256, p384, ed25519, rsa2048, rsa3072)")]
    UnknownKeyType(String),
    /// A revocation reason that rampart does not know.
    #[error(
        "unknown revocation reason {0:?} (expected one of: unspecified, key-compromise, \
         ca-compromise, affiliation-changed, superseded, cessation-of-operation, \
         certificate-hold, privilege-withdrawn)"
    )]
    UnknownReason(String),
    /// A DNS name or IP address that cannot go into a certificate.
    #[error("invalid subject alternative name {value:?}: {reason}")]
    InvalidSan {
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A validity period that is zero or absurdly long.
    #[error("invalid validity of {0} days (expected 1 to 36500)")]
    InvalidDays(u32),
    /// A leaf lifetime that is not one (or too short, or too long).
    #[error("invalid lifetime {0:?} (expected 30s to 36500d, such as 90s, 30m, 24h or 365d)")]
    InvalidLifetime(String),
    /// A renewal asked with a certificate that is no longer its holder's current one.
    #[error(
        "certificate {serial} is not {name}'s current certificate: only the current one (or, for a moment, the one it replaced) renews"
    )]
    NotCurrent {
        /// The holder.
        name: String,
        /// The serial presented.
        serial: String,
    },
    /// A renewal asked before half the certificate's lifetime has passed.
    #[error("{name}'s certificate may be renewed from {from} on (half its lifetime): asked too early")]
    RenewalTooEarly {
        /// The holder.
        name: String,
        /// From when it may.
        from: String,
    },
    /// A certificate would be valid longer than the CA that signs it.
    #[error(
        "a certificate valid for {lifetime} would outlive its CA, which expires {ca_expires}; ask for a shorter lifetime"
    )]
    OutlivesCa {
        /// The validity asked for.
        lifetime: String,
        /// When the CA expires (a date).
        ca_expires: String,
    },
    /// The CA itself has expired.
    #[error("the CA of trust domain {0:?} has expired; make a new one with `rampart pki init --force`")]
    CaExpired(String),
    /// No CA exists for the trust domain.
    #[error(
        "no CA for trust domain {domain:?} (expected {path}); create it with `rampart pki init --domain {domain}`"
    )]
    NoSuchDomain {
        /// The domain asked for.
        domain: String,
        /// Where its CA was looked for.
        path: PathBuf,
    },
    /// A CA rotation was begun already.
    #[error(
        "the CA of {0:?} is being rotated already: renew the holders, then finish it (rampart pki rotate-ca --finish)"
    )]
    RotationUnderWay(String),
    /// No CA rotation to finish.
    #[error("the CA of {0:?} is not being rotated (begin with rampart pki rotate-ca)")]
    NoRotation(String),
    /// Holders whose current certificate still comes from the retiring CA.
    #[error("these holders of {domain:?} still have a certificate of the old CA; renew them first (rampart pki renew --name NAME): {}", names.join(", "))]
    NotYetRenewed {
        /// The domain.
        domain: String,
        /// The holders.
        names: Vec<String>,
    },
    /// A CA already exists where a new one was asked for.
    #[error("a CA for trust domain {domain:?} already exists in {path}; pass --force to replace it")]
    CaExists {
        /// The domain.
        domain: String,
        /// The existing CA directory.
        path: PathBuf,
    },
    /// A valid certificate already exists under this name.
    #[error(
        "{domain}/{name} already has a valid certificate (serial {serial}); \
         use `rampart pki renew` for a new one, or revoke it first"
    )]
    AlreadyIssued {
        /// The domain.
        domain: String,
        /// The name.
        name: String,
        /// Serial of the existing certificate.
        serial: String,
    },
    /// Nothing was ever issued under this name.
    #[error("no certificate named {name:?} in trust domain {domain:?}")]
    NotIssued {
        /// The domain.
        domain: String,
        /// The name.
        name: String,
    },
    /// A serial number that matches no certificate of this name.
    #[error("no certificate with serial {serial} for {domain}/{name}")]
    NoSuchSerial {
        /// The domain.
        domain: String,
        /// The name.
        name: String,
        /// The serial asked for.
        serial: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file that should hold PEM or DER data does not parse.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A holder's certificate is of another role than the one it is used for.
    #[error("{path} is not a {expected} certificate (its role: {found}); pick another name")]
    WrongRole {
        /// The certificate.
        path: PathBuf,
        /// The role it should have.
        expected: Role,
        /// The role it has.
        found: String,
    },
    /// The CA's bookkeeping file is damaged.
    #[error("{path}: damaged certificate index: {source}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Key generation failed (an RNG or library failure, not bad input).
    #[error("generating a {key_type} key: {reason}")]
    KeyGeneration {
        /// The key type.
        key_type: &'static str,
        /// What failed.
        reason: String,
    },
    /// The certificate library refused to build or sign a certificate.
    #[error("signing: {0}")]
    Signing(#[from] rcgen::Error),
    /// A certificate signing request that cannot be used: unreadable, its signature (the
    /// proof that its maker holds the key) wrong, or a key type rampart does not sign.
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

impl From<rampart_files::FileError> for PkiError {
    fn from(e: rampart_files::FileError) -> Self {
        PkiError::Io { action: e.action, path: e.path, source: e.source }
    }
}

impl PkiError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PkiError::Io { action, path, source }
    }
}

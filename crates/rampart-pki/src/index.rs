//! The CA's bookkeeping: every certificate it issued, which one is current per name, which are
//! revoked, and the CRL sequence number. Stored as `pki/<domain>/index.json`, rewritten
//! atomically under the CA's lock (the role `index.txt` plays for `openssl ca`).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{PkiError, Result};
use crate::identity::{EntityName, Role, SpiffeId};
use crate::keys::KeyType;
use rampart_files as files;

/// Version of the index format written by this code.
const FORMAT: u32 = 1;

/// The whole index of one CA.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub format: u32,
    /// Number of the last CRL generated.
    pub crl_number: u64,
    pub certs: Vec<Record>,
}

impl Index {
    pub fn new() -> Self {
        Index { format: FORMAT, crl_number: 0, certs: Vec::new() }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = files::read(path)?;
        serde_json::from_slice(&bytes).map_err(|source| PkiError::Index { path: path.to_owned(), source })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|source| PkiError::Index { path: path.to_owned(), source })?;
        Ok(files::write_atomic(path, &bytes, files::PUBLIC)?)
    }

    /// The certificate currently in `issued/<name>.pem`, if any.
    pub fn current_mut(&mut self, name: &EntityName) -> Option<&mut Record> {
        self.certs.iter_mut().find(|r| r.current && r.name == *name)
    }
}

/// One issued certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// The holder's name.
    pub name: EntityName,
    /// The holder's role.
    pub role: Role,
    /// The identity in the certificate.
    pub identity: SpiffeId,
    /// The key type.
    pub key_type: KeyType,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whether this is the certificate in `issued/<name>.pem` (false once renewed or replaced).
    pub current: bool,
    /// Set once the certificate is revoked.
    pub revoked: Option<Revocation>,
}

/// When and why a certificate was revoked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revocation {
    /// When the revocation was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// Where a certificate stands, as `rampart pki list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Within its validity and not revoked.
    Valid,
    /// Valid, but less than a month (or a third of its lifetime) remains.
    ExpiringSoon,
    /// Past its end of validity.
    Expired,
    /// Revoked (listed in the CRL).
    Revoked,
}

impl Status {
    /// The status as `list` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::ExpiringSoon => "expiring soon",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Record {
    /// The certificate's status at `now`.
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked.is_some() {
            return Status::Revoked;
        }
        if now >= self.not_after {
            return Status::Expired;
        }
        let soon = Duration::days(30).min((self.not_after - self.not_before) / 3);
        if self.not_after - now <= soon { Status::ExpiringSoon } else { Status::Valid }
    }

    /// Whether the certificate could still be accepted somewhere (not revoked, not expired).
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        matches!(self.status(now), Status::Valid | Status::ExpiringSoon)
    }
}

/// RFC 5280 revocation reasons, with the names the command line uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The private key leaked or may have.
    KeyCompromise,
    /// The CA's key leaked or may have.
    CaCompromise,
    /// The holder's name or affiliation changed.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The holder no longer operates.
    CessationOfOperation,
    /// Temporarily suspended.
    CertificateHold,
    /// The holder lost the privilege the certificate granted.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    const ALL: [(RevocationReason, &'static str); 8] = [
        (RevocationReason::Unspecified, "unspecified"),
        (RevocationReason::KeyCompromise, "key-compromise"),
        (RevocationReason::CaCompromise, "ca-compromise"),
        (RevocationReason::AffiliationChanged, "affiliation-changed"),
        (RevocationReason::Superseded, "superseded"),
        (RevocationReason::CessationOfOperation, "cessation-of-operation"),
        (RevocationReason::CertificateHold, "certificate-hold"),
        (RevocationReason::PrivilegeWithdrawn, "privilege-withdrawn"),
    ];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(r, _)| *r == self).map_or("unspecified", |(_, n)| n)
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = PkiError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(r, _)| *r)
            .ok_or_else(|| PkiError::UnknownReason(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(days: i64, age_days: i64) -> Record {
        let now = OffsetDateTime::now_utc();
        Record {
            serial: "01".into(),
            name: EntityName::new("a").unwrap(),
            role: Role::Node,
            identity: SpiffeId::parse("spiffe://t/node/a").unwrap(),
            key_type: KeyType::P256,
            not_before: now - Duration::days(age_days),
            not_after: now - Duration::days(age_days) + Duration::days(days),
            current: true,
            revoked: None,
        }
    }

    #[test]
    fn status_follows_time_and_revocation() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(record(365, 0).status(now), Status::Valid);
        assert_eq!(record(365, 350).status(now), Status::ExpiringSoon);
        assert_eq!(record(365, 400).status(now), Status::Expired);
        // A week-long certificate is not "expiring soon" the moment it is issued.
        assert_eq!(record(7, 0).status(now), Status::Valid);
        let mut r = record(365, 0);
        r.revoked = Some(Revocation { at: now, reason: RevocationReason::KeyCompromise });
        assert_eq!(r.status(now), Status::Revoked);
    }

    #[test]
    fn reasons_parse() {
        assert_eq!("key-compromise".parse::<RevocationReason>().unwrap(), RevocationReason::KeyCompromise);
        assert!("stolen".parse::<RevocationReason>().is_err());
    }
}

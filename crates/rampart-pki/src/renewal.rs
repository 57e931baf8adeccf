//! Renewal by the holder itself: a node (or a gateway without the CA) presents its current
//! certificate over mutual TLS with a CSR for a new key, and the CA certifies that key for the
//! same identity, names and lifetime. The new key never leaves the holder.

use time::{Duration, OffsetDateTime};

use crate::authority::{Authority, IssueRequest, Issued};
use crate::csr::CheckedCsr;
use crate::error::{PkiError, Result};
use crate::index::Index;
use crate::inspect::CertInfo;
use crate::lifetime::Lifetime;

/// How long after a renewal the certificate it replaced may still ask again: the holder may
/// not have received the answer (a lost connection), and must not be locked out for that.
pub const LOST_ANSWER_GRACE: Duration = Duration::minutes(5);

impl Authority {
    /// Certifies the key `csr` proves for the holder of `presented` (the certificate it
    /// authenticated with, already verified by TLS): same identity, DNS names, addresses and
    /// lifetime. Only the holder's current certificate renews, or the one it replaced within
    /// [`LOST_ANSWER_GRACE`] — an older certificate, even one still valid, cannot extend itself
    /// — and only once half its lifetime has passed ([`crate::lifetime::renewal_allowed`]), so
    /// that a holder, even a compromised one, renews a couple of times per lifetime at most
    /// (each renewal is a record in the CA's index).
    pub fn renew_for(&self, presented: &CertInfo, csr: &CheckedCsr) -> Result<Issued> {
        self.renew_for_at(presented, csr, OffsetDateTime::now_utc())
    }

    /// [`Authority::renew_for`] as of `now` (the signature itself is dated by the clock).
    pub fn renew_for_at(
        &self,
        presented: &CertInfo,
        csr: &CheckedCsr,
        now: OffsetDateTime,
    ) -> Result<Issued> {
        let id = presented.identity.clone().ok_or_else(|| PkiError::BadCsr("no identity".into()))?;
        let from = crate::lifetime::renewal_allowed(presented.not_before, presented.not_after);
        if now < from {
            return Err(PkiError::RenewalTooEarly { name: id.name.to_string(), from: from.to_string() });
        }
        let records = Index::load(&self.index_path())?.certs;
        let mine: Vec<_> = records.iter().filter(|r| r.name == id.name).collect();
        let current = mine.iter().rposition(|r| r.current);
        let allowed = match current {
            Some(i) if mine[i].serial == presented.serial => true,
            Some(i) if i > 0 => {
                let replaced = mine[..i].last().is_some_and(|r| r.serial == presented.serial);
                let fresh = now - (mine[i].not_before + crate::profile::BACKDATE);
                replaced && fresh < LOST_ANSWER_GRACE
            }
            _ => false,
        };
        if !allowed || id.domain != *self.domain() {
            return Err(PkiError::NotCurrent { name: id.name.to_string(), serial: presented.serial.clone() });
        }
        let req = IssueRequest {
            role: id.role,
            name: id.name,
            dns: presented.dns.clone(),
            ips: presented.ips.clone(),
            lifetime: Lifetime::of(presented.not_before, presented.not_after).unwrap_or(Lifetime::DEFAULT),
            key_type: csr.key_type(),
        };
        self.sign(csr, &req, true)
    }
}

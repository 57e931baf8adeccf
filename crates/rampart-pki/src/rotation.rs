//! Rotating a trust domain's CA without a flag day, in two steps with the holders' renewals
//! between them:
//!
//! 1. [`Authority::begin_rotation`]: a new CA (its own name) issues from now on; the current one
//!    moves to `previous/` and still signs a CRL; `ca.pem` holds the new CA and the old, so
//!    everything that reads it trusts certificates of both (restart processes to read it; a
//!    peer network follows the bundle by itself).
//! 2. Renew every holder (`rampart pki renew --name NAME`): their certificates now come from the new CA.
//! 3. [`Authority::finish_rotation`]: refused while a current certificate still comes from the
//!    old CA; then `ca.pem` holds the new CA alone and the old one is moved aside, never deleted.

use time::OffsetDateTime;

use crate::authority::{Authority, CaOptions};
use crate::error::{PkiError, Result};
use crate::index::{Index, Record};
use crate::{files, inspect, keys, profile};

impl Authority {
    /// Whether a rotation is under way (begun, not finished).
    pub fn rotating(&self) -> bool {
        self.previous.is_some()
    }

    /// Begins rotating the CA: returns the authority of the new CA (the old one retiring).
    pub fn begin_rotation(&self, opts: &CaOptions) -> Result<Authority> {
        let _lock = files::DirLock::acquire(&self.dir)?;
        if self.previous.is_some() {
            return Err(PkiError::RotationUnderWay(self.domain.to_string()));
        }
        let now = OffsetDateTime::now_utc();
        let name = format!("rampart {} CA {}", self.domain, now.unix_timestamp());
        let params = profile::ca_params_named(&self.domain, &name, opts.days, now)?;
        let key = opts.key_type.generate()?;
        let cert = params.self_signed(&key)?;
        // The retiring CA first, copied whole, so that a failure from here on leaves it intact.
        let previous = self.dir.join("previous");
        files::create_private_dir(&previous)?;
        let old_key = files::read(&self.dir.join("ca.key"))?;
        files::write_atomic(&previous.join("ca.key"), &old_key, files::PRIVATE)?;
        files::write_atomic(&previous.join("ca.pem"), pem_of(&self.ca.der).as_bytes(), files::PUBLIC)?;
        // Two files, each written atomically: should this stop between them, `previous/` holds
        // the old CA whole, and copying it back restores the domain as it was.
        let both = format!("{}{}", cert.pem(), pem_of(&self.ca.der));
        files::write_atomic(
            &self.dir.join("ca.key"),
            keys::private_key_pem(&key)?.as_bytes(),
            files::PRIVATE,
        )?;
        files::write_atomic(&self.dir.join("ca.pem"), both.as_bytes(), files::PUBLIC)?;
        let rotated = Authority::load(self.domain.clone(), self.dir.clone())?;
        rotated.write_crl_locked(&mut Index::load(&self.index_path())?, now)?;
        Ok(rotated)
    }

    /// The current, live certificates the retiring CA issued: the holders still to renew.
    pub fn issued_by_previous(&self) -> Result<Vec<Record>> {
        let Some((previous, _)) = &self.previous else { return Ok(Vec::new()) };
        let now = OffsetDateTime::now_utc();
        let index = Index::load(&self.index_path())?;
        let mut left = Vec::new();
        for record in index.certs.into_iter().filter(|r| r.current && r.is_live(now)) {
            let cert = inspect::read_cert_file(&self.cert_path(&record.name))?;
            if inspect::is_signed_by(&cert.der, &previous.der) {
                left.push(record);
            }
        }
        Ok(left)
    }

    /// Finishes the rotation: the old CA is no longer trusted. Refused while a holder's current
    /// certificate still comes from it.
    pub fn finish_rotation(&self) -> Result<Authority> {
        if self.previous.is_none() {
            return Err(PkiError::NoRotation(self.domain.to_string()));
        }
        let left = self.issued_by_previous()?;
        if !left.is_empty() {
            let names: Vec<String> = left.iter().map(|r| r.name.to_string()).collect();
            return Err(PkiError::NotYetRenewed { domain: self.domain.to_string(), names });
        }
        let _lock = files::DirLock::acquire(&self.dir)?;
        let now = OffsetDateTime::now_utc();
        files::write_atomic(&self.dir.join("ca.pem"), pem_of(&self.ca.der).as_bytes(), files::PUBLIC)?;
        let root =
            self.dir.parent().map(|p| p.join(".replaced")).unwrap_or_else(|| self.dir.join(".replaced"));
        files::create_private_dir(&root)?;
        files::rename(
            &self.dir.join("previous"),
            &root.join(format!("{}-ca-{}", self.domain, now.unix_timestamp())),
        )?;
        let done = Authority::load(self.domain.clone(), self.dir.clone())?;
        done.write_crl_locked(&mut Index::load(&self.index_path())?, now)?;
        Ok(done)
    }
}

use crate::inspect::cert_pem as pem_of;

#[cfg(test)]
mod tests;

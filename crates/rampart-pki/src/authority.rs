//! A network's certificate authorities, one per trust domain, on disk under `pki/`:
//!
//! ```text
//! pki/<domain>/ca.pem, ca.key        the CA (key 0600)
//! pki/<domain>/crl.pem               its CRL, regenerated on every revocation
//! pki/<domain>/index.json            every certificate it issued (see `index`)
//! pki/<domain>/issued/<name>.pem     current certificate and key of each holder
//! pki/<domain>/issued/<name>.key
//! pki/<domain>/archive/<name>.<serial>.pem   certificates replaced by renewal
//! pki/<domain>/previous/ca.pem, ca.key       the CA being retired, while the CA rotates
//!                                            (`rotation`): ca.pem then holds both CAs
//! ```

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::{PkiError, Result};
use crate::identity::{EntityName, Role, SpiffeId, TrustDomain};
use crate::index::{Index, Record, Revocation, RevocationReason};
use crate::inspect::{self, CertInfo, CrlInfo};
use crate::keys::KeyType;
use crate::lifetime::Lifetime;
use crate::profile::{self, LeafSpec};
use rampart_files::{self as files, DirLock};

/// How a new CA is made.
#[derive(Clone, Debug)]
pub struct CaOptions {
    /// Validity of the CA certificate in days. Default: 3650 (ten years).
    pub days: u32,
    /// Key type of the CA. Default: ECDSA P-256.
    pub key_type: KeyType,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions { days: 3650, key_type: KeyType::P256 }
    }
}

/// How long a CRL is valid: strict verifiers refuse a CRL past its next-update, so
/// `rampart pki crl` must run again before then (every revocation also regenerates it).
pub const CRL_VALIDITY: Duration = Duration::days(30);

/// The `pki/` directory of a network's home.
#[derive(Clone, Debug)]
pub struct Pki {
    root: PathBuf,
}

/// The outcome of creating a CA.
#[derive(Debug)]
pub struct CreatedCa {
    /// The CA certificate.
    pub cert: CertInfo,
    /// Its directory.
    pub dir: PathBuf,
    /// Where the CA it replaced was moved, with `force`.
    pub replaced: Option<PathBuf>,
}

impl Pki {
    /// The PKI rooted at `root` (normally `<home>/pki`); nothing is touched until used.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Pki { root: root.into() }
    }

    /// The directory of a trust domain's CA.
    pub fn domain_dir(&self, domain: &TrustDomain) -> PathBuf {
        self.root.join(domain.as_str())
    }

    /// Whether a CA exists for the domain.
    pub fn has_domain(&self, domain: &TrustDomain) -> bool {
        self.domain_dir(domain).join("ca.pem").is_file()
    }

    /// Every trust domain that has a CA, sorted.
    pub fn domains(&self) -> Result<Vec<TrustDomain>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(PkiError::Io { action: "listing", path: self.root.clone(), source: e });
            }
        };
        let mut domains: Vec<TrustDomain> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| TrustDomain::new(&e.file_name().to_string_lossy()).ok())
            .filter(|d| self.has_domain(d))
            .collect();
        domains.sort();
        Ok(domains)
    }

    /// Creates the CA of a trust domain, with an empty CRL. Refuses to replace an existing CA
    /// unless `force`; then the old one is moved aside to `pki/.replaced/`, never deleted.
    ///
    /// The CA is assembled in a temporary directory and renamed into place, so a failure
    /// half-way leaves no half-made CA behind.
    pub fn create_domain(&self, domain: &TrustDomain, opts: &CaOptions, force: bool) -> Result<CreatedCa> {
        files::create_private_dir(&self.root)?;
        let _lock = DirLock::acquire(&self.root)?;
        let dir = self.domain_dir(domain);
        if self.has_domain(domain) && !force {
            return Err(PkiError::CaExists { domain: domain.to_string(), path: dir });
        }
        let staging = tempfile::Builder::new()
            .prefix(&format!(".new-{domain}-"))
            .tempdir_in(&self.root)
            .map_err(PkiError::io("creating a directory in", &self.root))?;
        fs::set_permissions(staging.path(), std::os::unix::fs::PermissionsExt::from_mode(files::PRIVATE_DIR))
            .map_err(PkiError::io("setting permissions of", staging.path()))?;
        let now = OffsetDateTime::now_utc();
        let key = opts.key_type.generate()?;
        let params = profile::ca_params(domain, opts.days, now)?;
        let cert = params.self_signed(&key)?;
        let key_pem = crate::keys::private_key_pem(&key)?;
        files::write_atomic(&staging.path().join("ca.key"), key_pem.as_bytes(), files::PRIVATE)?;
        files::write_atomic(&staging.path().join("ca.pem"), cert.pem().as_bytes(), files::PUBLIC)?;
        files::create_private_dir(&staging.path().join("issued"))?;
        Index::new().save(&staging.path().join("index.json"))?;
        // Write the first (empty) CRL so that `-crl_check` verifiers work from the start.
        let staged = Authority::load(domain.clone(), staging.path().to_owned())?;
        staged.write_crl_locked(&mut Index::new(), now)?;

        let replaced = if dir.exists() {
            let aside = self.root.join(".replaced");
            files::create_private_dir(&aside)?;
            let to = aside.join(format!("{domain}-{}", now.unix_timestamp()));
            files::rename(&dir, &to)?;
            Some(to)
        } else {
            None
        };
        files::rename(&staging.keep(), &dir)?;
        Ok(CreatedCa {
            cert: inspect::cert_from_der(cert.der())
                .map_err(|reason| PkiError::Malformed { path: dir.join("ca.pem"), reason })?,
            dir,
            replaced,
        })
    }

    /// Opens a trust domain's CA for issuing, revoking and listing.
    pub fn open(&self, domain: &TrustDomain) -> Result<Authority> {
        let dir = self.domain_dir(domain);
        if !self.has_domain(domain) {
            return Err(PkiError::NoSuchDomain { domain: domain.to_string(), path: dir.join("ca.pem") });
        }
        Authority::load(domain.clone(), dir)
    }

    /// Makes sure `name` holds a certificate of `domain` for `role`: when there is none yet,
    /// one is issued (P-256, the default server names; a day for a node, which renews itself,
    /// a year otherwise); the CA is opened only then,
    /// since a holder on another machine has its certificate and the CA's, not the CA key.
    /// What was issued, if anything; an existing certificate of another role is refused.
    pub fn ensure_issued(
        &self,
        domain: &TrustDomain,
        role: Role,
        name: &EntityName,
    ) -> Result<Option<Issued>> {
        let path = self.domain_dir(domain).join("issued").join(format!("{name}.pem"));
        if path.exists() {
            let held = inspect::read_cert_file(&path)?;
            return match held.role {
                Some(r) if r == role => Ok(None),
                other => Err(PkiError::WrongRole {
                    path,
                    expected: role,
                    found: other.map_or_else(|| "none".to_owned(), |r| r.as_str().to_owned()),
                }),
            };
        }
        let (dns, ips) = profile::default_server_sans();
        let lifetime = if role == Role::Node { Lifetime::NODE_DEFAULT } else { Lifetime::DEFAULT };
        let req = IssueRequest { role, name: name.clone(), dns, ips, lifetime, key_type: KeyType::P256 };
        self.open(domain)?.issue(&req).map(Some)
    }
}

/// What to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The holder's role.
    pub role: Role,
    /// The holder's name.
    pub name: EntityName,
    /// DNS names, for server roles (ignored for users and admins).
    pub dns: Vec<String>,
    /// IP addresses, for server roles (ignored for users and admins).
    pub ips: Vec<IpAddr>,
    /// Validity, from the moment of issue.
    pub lifetime: Lifetime,
    /// Key type.
    pub key_type: KeyType,
}

/// A certificate just issued.
#[derive(Debug)]
pub struct Issued {
    /// Its index entry.
    pub record: Record,
    /// What it says.
    pub cert: CertInfo,
    /// Where the certificate was written.
    pub cert_path: PathBuf,
    /// Where the private key was written (0600).
    pub key_path: PathBuf,
}

/// Which certificates of a name `revoke` applies to.
#[derive(Clone, Debug)]
pub enum RevokeTarget {
    /// The one currently in `issued/<name>.pem`.
    Current,
    /// Every certificate of the name that is still valid (current and renewed-away ones).
    All,
    /// The one with this serial (hex).
    Serial(String),
}

/// One trust domain's CA, loaded and checked: its certificate is a CA allowed to sign
/// certificates and CRLs, and its key matches the certificate.
pub struct Authority {
    pub(crate) domain: TrustDomain,
    pub(crate) dir: PathBuf,
    pub(crate) ca: CertInfo,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    /// The CA being retired while the CA rotates: it still signs a CRL for what it issued.
    pub(crate) previous: Option<(CertInfo, Issuer<'static, KeyPair>)>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the issuer: it holds the CA's private key.
        f.debug_struct("Authority")
            .field("domain", &self.domain)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Authority {
    pub(crate) fn load(domain: TrustDomain, dir: PathBuf) -> Result<Self> {
        let (ca, issuer) = load_ca(&dir)?;
        let previous = if dir.join("previous").join("ca.pem").exists() {
            Some(load_ca(&dir.join("previous"))?)
        } else {
            None
        };
        Ok(Authority { domain, dir, ca, issuer, previous })
    }

    /// The trust domain.
    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> &CertInfo {
        &self.ca
    }

    /// Path of the CA certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Path of the CRL.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Path of a holder's current certificate.
    pub fn cert_path(&self, name: &EntityName) -> PathBuf {
        self.dir.join("issued").join(format!("{name}.pem"))
    }

    /// Path of a holder's current private key.
    pub fn key_path(&self, name: &EntityName) -> PathBuf {
        self.dir.join("issued").join(format!("{name}.key"))
    }

    /// The domain's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Every certificate this CA issued, oldest first.
    pub fn records(&self) -> Result<Vec<Record>> {
        Ok(Index::load(&self.index_path())?.certs)
    }

    /// Issues a certificate and key for a new holder. Refuses when the name already has a
    /// valid certificate (use [`Authority::renew`]); a revoked or expired one is replaced.
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued> {
        let _lock = DirLock::acquire(&self.dir)?;
        let mut index = Index::load(&self.index_path())?;
        let now = OffsetDateTime::now_utc();
        if let Some(cur) = index.current_mut(&req.name)
            && cur.is_live(now)
        {
            return Err(PkiError::AlreadyIssued {
                domain: self.domain.to_string(),
                name: req.name.to_string(),
                serial: cur.serial.clone(),
            });
        }
        let spec = LeafSpec {
            id: SpiffeId::new(self.domain.clone(), req.role, req.name.clone()),
            dns: req.dns.clone(),
            ips: req.ips.clone(),
            lifetime: req.lifetime,
        };
        self.issue_locked(&mut index, &spec, req.key_type, now)
    }

    /// A new key and certificate for an existing holder, same identity and SANs. The old
    /// certificate stays valid until it expires unless revoked; it is kept under `archive/`.
    pub fn renew(
        &self,
        name: &EntityName,
        lifetime: Option<Lifetime>,
        key_type: Option<KeyType>,
    ) -> Result<Issued> {
        let _lock = DirLock::acquire(&self.dir)?;
        let mut index = Index::load(&self.index_path())?;
        let now = OffsetDateTime::now_utc();
        let cur = index.current_mut(name).ok_or_else(|| self.not_issued(name))?.clone();
        let old = inspect::read_cert_file(&self.cert_path(name))?;
        let spec = LeafSpec {
            id: cur.identity.clone(),
            dns: old.dns,
            ips: old.ips,
            lifetime: lifetime
                .or_else(|| Lifetime::of(cur.not_before, cur.not_after))
                .unwrap_or(Lifetime::DEFAULT),
        };
        self.issue_locked(&mut index, &spec, key_type.unwrap_or(cur.key_type), now)
    }

    fn issue_locked(
        &self,
        index: &mut Index,
        spec: &LeafSpec,
        key_type: KeyType,
        now: OffsetDateTime,
    ) -> Result<Issued> {
        let params = self.leaf_params(spec, now)?;
        let key = key_type.generate()?;
        let key_pem = crate::keys::private_key_pem(&key)?;
        self.record_locked(index, spec, (&key, key_type, Some(key_pem)), params)
    }

    /// What a leaf for `spec` says, once it is known the CA can sign it.
    pub(crate) fn leaf_params(
        &self,
        spec: &LeafSpec,
        now: OffsetDateTime,
    ) -> Result<rcgen::CertificateParams> {
        let params = profile::leaf_params(spec, now)?;
        if now >= self.ca.not_after {
            return Err(PkiError::CaExpired(self.domain.to_string()));
        }
        if params.not_after > self.ca.not_after {
            return Err(PkiError::OutlivesCa {
                lifetime: spec.lifetime.to_string(),
                ca_expires: self.ca.not_after.date().to_string(),
            });
        }
        Ok(params)
    }

    /// Signs `public_key` for `spec` under `params`, writes the certificate (and `key_pem`
    /// when the CA made the key) and records it as the name's current certificate.
    pub(crate) fn record_locked(
        &self,
        index: &mut Index,
        spec: &LeafSpec,
        (public_key, key_type, key_pem): (&impl rcgen::PublicKeyData, KeyType, Option<Zeroizing<String>>),
        params: rcgen::CertificateParams,
    ) -> Result<Issued> {
        let cert = params.signed_by(public_key, &self.issuer)?;
        let info = inspect::cert_from_der(cert.der())
            .map_err(|reason| PkiError::Malformed { path: self.ca_path(), reason })?;
        let name = &spec.id.name;
        let (cert_path, key_path) = (self.cert_path(name), self.key_path(name));

        // Move the certificate being replaced aside first; its key is not kept.
        if let Some(old) = index.current_mut(name) {
            old.current = false;
            let archive = self.dir.join("archive");
            files::create_private_dir(&archive)?;
            if cert_path.exists() {
                files::rename(&cert_path, &archive.join(format!("{name}.{}.pem", old.serial)))?;
            }
        }
        files::create_private_dir(&self.dir.join("issued"))?;
        match &key_pem {
            Some(pem) => files::write_atomic(&key_path, pem.as_bytes(), files::PRIVATE)?,
            // The holder keeps its key: none of an earlier certificate may pass for it.
            None => match fs::remove_file(&key_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(files::FileError::at("removing", &key_path)(e).into());
                }
                _ => {}
            },
        }
        files::write_atomic(&cert_path, cert.pem().as_bytes(), files::PUBLIC)?;
        let record = Record {
            serial: info.serial.clone(),
            name: name.clone(),
            role: spec.id.role,
            identity: spec.id.clone(),
            key_type,
            not_before: params.not_before,
            not_after: params.not_after,
            current: true,
            revoked: None,
        };
        index.certs.push(record.clone());
        index.save(&self.index_path())?;
        Ok(Issued { record, cert: info, cert_path, key_path })
    }

    /// Revokes certificates of a holder and regenerates the CRL. Returns what was revoked.
    pub fn revoke(
        &self,
        name: &EntityName,
        target: &RevokeTarget,
        reason: RevocationReason,
    ) -> Result<(Vec<Record>, CrlInfo)> {
        let _lock = DirLock::acquire(&self.dir)?;
        let mut index = Index::load(&self.index_path())?;
        let now = OffsetDateTime::now_utc();
        if !index.certs.iter().any(|r| r.name == *name) {
            return Err(self.not_issued(name));
        }
        let wanted = |r: &Record| -> bool {
            r.name == *name
                && r.revoked.is_none()
                && match target {
                    RevokeTarget::Current => r.current,
                    RevokeTarget::All => r.is_live(now),
                    RevokeTarget::Serial(s) => serial_matches(&r.serial, s),
                }
        };
        let mut revoked = Vec::new();
        for r in index.certs.iter_mut().filter(|r| wanted(r)) {
            r.revoked = Some(Revocation { at: now, reason });
            revoked.push(r.clone());
        }
        if revoked.is_empty()
            && let RevokeTarget::Serial(s) = target
            && !index.certs.iter().any(|r| r.name == *name && serial_matches(&r.serial, s))
        {
            return Err(PkiError::NoSuchSerial {
                domain: self.domain.to_string(),
                name: name.to_string(),
                serial: s.clone(),
            });
        }
        index.save(&self.index_path())?;
        let crl = self.write_crl_locked(&mut index, now)?;
        Ok((revoked, crl))
    }

    /// Regenerates `crl.pem` from the index (with a new number and next-update).
    pub fn generate_crl(&self) -> Result<CrlInfo> {
        let _lock = DirLock::acquire(&self.dir)?;
        let mut index = Index::load(&self.index_path())?;
        self.write_crl_locked(&mut index, OffsetDateTime::now_utc())
    }

    pub(crate) fn write_crl_locked(&self, index: &mut Index, now: OffsetDateTime) -> Result<CrlInfo> {
        index.crl_number += 1;
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let revoked_certs = index
            .certs
            .iter()
            .filter_map(|r| {
                let rev = r.revoked.as_ref()?;
                let serial = hex::decode(&r.serial).ok()?;
                Some(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: rev.at.replace_nanosecond(0).unwrap_or(rev.at),
                    reason_code: Some(rev.reason.to_rcgen()),
                    invalidity_date: None,
                })
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from_slice(&index.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            // The CRL's AKI must equal the CA's SKI, whatever method made that.
            key_identifier_method: inspect::subject_key_id(&self.ca.der)
                .map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
        };
        let mut pem = params.signed_by(&self.issuer)?.pem()?;
        // While the CA rotates, the retiring CA signs one too (every revoked serial in both: a
        // CRL speaks only of what its issuer issued, and serials are random, so the extra
        // entries are inert). Ours first: readers of one CRL take the first.
        if let Some((ca, issuer)) = &self.previous {
            let params = CertificateRevocationListParams {
                key_identifier_method: inspect::subject_key_id(&ca.der)
                    .map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
                ..params
            };
            pem.push_str(&params.signed_by(issuer)?.pem()?);
        }
        index.save(&self.index_path())?;
        files::write_atomic(&self.crl_path(), pem.as_bytes(), files::PUBLIC)?;
        inspect::crl_from_bytes(pem.as_bytes(), &self.ca.der)
            .map_err(|reason| PkiError::Malformed { path: self.crl_path(), reason })
    }

    /// Reads and checks the current CRL (it must be signed by this CA).
    pub fn crl(&self) -> Result<CrlInfo> {
        let path = self.crl_path();
        let bytes = files::read(&path)?;
        inspect::crl_from_bytes(&bytes, &self.ca.der).map_err(|reason| PkiError::Malformed { path, reason })
    }

    fn not_issued(&self, name: &EntityName) -> PkiError {
        PkiError::NotIssued { domain: self.domain.to_string(), name: name.to_string() }
    }
}

/// Whether a serial typed by a person (any case, maybe `0x`-prefixed) is the recorded one.
fn serial_matches(recorded: &str, typed: &str) -> bool {
    recorded.eq_ignore_ascii_case(typed.trim_start_matches("0x"))
}

/// The CA in `dir` (`ca.pem`, its first certificate, and `ca.key`), checked: a CA allowed to
/// sign certificates, and the key its own.
fn load_ca(dir: &Path) -> Result<(CertInfo, Issuer<'static, KeyPair>)> {
    let ca_path = dir.join("ca.pem");
    let key_path = dir.join("ca.key");
    let ca = inspect::read_cert_file(&ca_path)?;
    let malformed =
        |path: &Path, reason: &str| PkiError::Malformed { path: path.to_owned(), reason: reason.to_owned() };
    if !ca.is_ca || !ca.key_usage.iter().any(|u| u == "keyCertSign") {
        return Err(malformed(
            &ca_path,
            "not a CA certificate (needs CA:TRUE and keyCertSign); refusing to issue from it",
        ));
    }
    let key_pem = Zeroizing::new(fs::read_to_string(&key_path).map_err(PkiError::io("reading", &key_path))?);
    // The parse error may quote the input; say only that the key is unusable.
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|_| malformed(&key_path, "not a PKCS#8 private key in PEM form"))?;
    if !spki_matches(&ca.der, key.public_key_raw()) {
        return Err(malformed(&key_path, "this key does not belong to the CA certificate beside it"));
    }
    let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), key)
        .map_err(|e| malformed(&ca_path, &e.to_string()))?;
    Ok((ca, issuer))
}

/// Whether the certificate's subject public key is `raw` (rcgen's raw public key bytes).
fn spki_matches(cert_der: &[u8], raw: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(cert_der)
        .map(|(_, c)| c.public_key().subject_public_key.data.as_ref() == raw)
        .unwrap_or(false)
}

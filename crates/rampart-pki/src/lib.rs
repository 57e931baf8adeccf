//! rampart's PKI: one certificate authority per trust domain (environment), certificates that
//! carry an identity and a role, revocation with CRLs, renewal, and inspection.
//!
//! Every certificate carries exactly one URI SAN, `spiffe://<domain>/<role>/<name>`
//! ([`SpiffeId`]); the role decides its extended key usages, and the trust domain decides which
//! CA must have signed it, so a certificate copied from `test` is worthless in `prod`.
//!
//! ```no_run
//! use rampart_pki::{CaOptions, EntityName, IssueRequest, KeyType, Lifetime, Pki, Role, TrustDomain};
//! # fn main() -> Result<(), rampart_pki::PkiError> {
//! let pki = Pki::new("rampart-home/pki");
//! let prod = TrustDomain::new("prod")?;
//! pki.create_domain(&prod, &CaOptions::default(), false)?;
//! let ca = pki.open(&prod)?;
//! let issued = ca.issue(&IssueRequest {
//!     role: Role::Node,
//!     name: EntityName::new("web-1")?,
//!     dns: vec!["localhost".into()],
//!     ips: vec![],
//!     lifetime: Lifetime::days(90)?,
//!     key_type: KeyType::P256,
//! })?;
//! println!("{} in {}", issued.record.identity, issued.cert_path.display());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`identity`]: trust domains, names, roles and the SPIFFE identity they form;
//! - [`keys`]: key types and their generation;
//! - `profile`: what each kind of certificate contains (validity, serials, usages, SANs);
//!   [`lifetime`]: how long a leaf is valid, and when its holder renews it; [`renewal`]: a
//!   holder's renewal by CSR with its current certificate;
//! - [`authority`]: the CAs on disk: create, issue, renew, revoke, CRLs; `rotation`: replacing
//!   a CA by a new one in two steps, both trusted between them;
//! - [`index`]: the per-CA record of every certificate issued;
//! - [`bundle`]: a trust domain's CA bundle and its fingerprint, for peer networks;
//! - [`inspect`]: reading certificates and CRLs back; [`presented`]: the identity a
//!   certificate presents, remembered for the last ones (parsed once per handshake);
//!
//! Files are written through `rampart-files`: atomically, keys 0600 from the first byte.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod authority;
pub mod bundle;
pub mod csr;
pub mod error;
pub mod identity;
pub mod index;
pub mod inspect;
pub mod keys;
pub mod lifetime;
pub mod presented;
mod profile;
pub mod renewal;
mod rotation;

pub use authority::{Authority, CRL_VALIDITY, CaOptions, CreatedCa, IssueRequest, Issued, Pki, RevokeTarget};
pub use error::{PkiError, Result};
pub use identity::{EntityName, Role, SpiffeId, TrustDomain};
pub use index::{Record, RevocationReason, Status};
pub use inspect::{CertInfo, CrlInfo};
pub use keys::KeyType;
pub use lifetime::Lifetime;
pub use profile::{MAX_DAYS, default_server_sans};
pub use rampart_files as files;

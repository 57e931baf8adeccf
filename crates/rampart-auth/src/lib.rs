//! Identity and access for rampart: who is calling ([`Principal`]), users with argon2id
//! passwords, API tokens stored only as hashes, and default-deny policy.
//!
//! Everything lives in the registry ([`rampart_store::Store`]) under `auth/`, so the same code
//! works on the embedded store and on etcd, offline from the CLI and online in the gateway.
//!
//! ```text
//! auth/users/<name>    a user (password as an argon2id hash)
//! auth/tokens/<id>     a token (SHA-256 of its secret, user, scope, expiry, revocation)
//! auth/policy/<id>     a rule (service, principal pattern, methods, allow|deny)
//! ```
//!
//! # Layout
//! Lowest first; each module uses only those above it.
//! - [`names`]: user names, service names (never `*`) and service selectors;
//! - [`principal`]: the caller, made only from a TLS peer certificate or a verified token;
//! - [`users`]: users and passwords (hashed in `passwords`, the `passwords` feature);
//! - [`tokens`]: issue, list, revoke, verify;
//! - [`accounts`]: what spans users and tokens (removing a user revokes its tokens);
//! - [`policy`]: rules and their evaluation into [`Authorized`] or [`Denied`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod error;
pub mod names;
mod passwords;
pub mod policy;
pub mod principal;
mod token_cache;
pub mod tokens;
pub mod users;

pub use error::{AuthError, Result, TokenRefusal};
pub use names::ServiceName;
pub use policy::{AllowedBy, Authorized, Denied, Effect, Pattern, PolicySet, Rule};
pub use principal::{Credential, Principal, VouchRefusal};
pub use tokens::{TokenPolicy, TokenRecord};
pub use users::{NewUser, User};

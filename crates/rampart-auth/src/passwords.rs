//! Password hashing, argon2id, behind the `passwords` feature (on by default): the crates that
//! need only principals, names and policy build without it. Without it no password can be
//! set, and none checks.

use crate::error::{AuthError, Result};

/// The PHC string of `password`'s argon2id hash, with a fresh salt.
#[cfg(feature = "passwords")]
pub(crate) fn hash(password: &[u8]) -> Result<String> {
    use argon2::Argon2;
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hashing(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password, &salt)
        .map_err(|e| AuthError::Hashing(e.to_string()))?
        .to_string())
}

/// Whether `password` matches the PHC string `phc` (argon2's own comparison).
#[cfg(feature = "passwords")]
pub(crate) fn verify(password: &[u8], phc: &str) -> bool {
    use argon2::Argon2;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

/// Without the feature: no password can be set.
#[cfg(not(feature = "passwords"))]
pub(crate) fn hash(_password: &[u8]) -> Result<String> {
    Err(AuthError::Hashing("this build has no password hashing (the `passwords` feature)".into()))
}

/// Without the feature: no password checks.
#[cfg(not(feature = "passwords"))]
pub(crate) fn verify(_password: &[u8], _phc: &str) -> bool {
    false
}

//! Users: a name, an argon2id password hash, an optional bound certificate identity, a token
//! limit and whether they administer. Stored at `auth/users/<name>` in the registry.

use rampart_pki::SpiffeId;
use rampart_store::{Expect, Store};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};

/// Where users live in the registry.
pub const USERS_PREFIX: &str = "auth/users/";

/// Default number of live tokens a user may hold.
pub const DEFAULT_TOKEN_LIMIT: u32 = 10;

/// A user as stored (the password only as its argon2id hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    /// The name (`user/<name>` as a principal).
    pub name: String,
    /// Whether the user administers the network.
    pub admin: bool,
    /// PHC string of the argon2id hash; `None`: no password login.
    pub password_hash: Option<String>,
    /// A certificate identity that acts as this user.
    pub cert_identity: Option<String>,
    /// How many live tokens the user may hold.
    pub token_limit: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// What to create.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    /// The name.
    pub name: &'a str,
    /// Administrator?
    pub admin: bool,
    /// The password, if password login is wanted.
    pub password: Option<&'a [u8]>,
    /// A bound certificate identity.
    pub cert_identity: Option<&'a str>,
    /// Token limit (default [`DEFAULT_TOKEN_LIMIT`]).
    pub token_limit: Option<u32>,
}

pub use crate::names::check_user as check_name;

fn key(name: &str) -> String {
    format!("{USERS_PREFIX}{name}")
}

/// argon2id with the `argon2` crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum).
pub fn hash_password(password: &[u8]) -> Result<String> {
    if password.is_empty() || password.len() > 1024 {
        return Err(AuthError::BadPasswordLength);
    }
    crate::passwords::hash(password)
}

/// Creates a user; refuses an existing name.
pub async fn add(store: &dyn Store, new: &NewUser<'_>, now: u64) -> Result<User> {
    check_name(new.name)?;
    if let Some(id) = new.cert_identity {
        SpiffeId::parse(id).map_err(|_| AuthError::Invalid {
            what: "certificate identity",
            value: id.into(),
            reason: "expected spiffe://<domain>/<role>/<name>",
        })?;
    }
    let user = User {
        name: new.name.to_owned(),
        admin: new.admin,
        password_hash: new.password.map(hash_password).transpose()?,
        cert_identity: new.cert_identity.map(str::to_owned),
        token_limit: new.token_limit.unwrap_or(DEFAULT_TOKEN_LIMIT),
        created: now,
    };
    let bytes = serde_json::to_vec(&user).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let out = store.compare_and_set(&key(new.name), Expect::Absent, Some(bytes), None).await?;
    if !out.succeeded {
        return Err(AuthError::UserExists(new.name.to_owned()));
    }
    Ok(user)
}

/// The user of that name.
pub async fn get(store: &dyn Store, name: &str) -> Result<Option<User>> {
    let Some(kv) = store.get(&key(name)).await? else { return Ok(None) };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|e| AuthError::Corrupt { key: kv.key, reason: e.to_string() })
}

/// Every user, by name.
pub async fn list(store: &dyn Store) -> Result<Vec<User>> {
    let mut users = Vec::new();
    for kv in store.range(USERS_PREFIX).await? {
        users.push(
            serde_json::from_slice(&kv.value)
                .map_err(|e| AuthError::Corrupt { key: kv.key, reason: e.to_string() })?,
        );
    }
    Ok(users)
}

/// Deletes a user's record (its tokens are revoked by [`crate::accounts::remove_user`], which
/// is what removes a user).
pub(crate) async fn delete(store: &dyn Store, name: &str) -> Result<()> {
    if !store.delete(&key(name)).await? {
        return Err(AuthError::NoSuchUser(name.to_owned()));
    }
    Ok(())
}

/// Sets a new password.
pub async fn set_password(store: &dyn Store, name: &str, password: &[u8]) -> Result<()> {
    loop {
        let Some(kv) = store.get(&key(name)).await? else {
            return Err(AuthError::NoSuchUser(name.to_owned()));
        };
        let mut user: User = serde_json::from_slice(&kv.value)
            .map_err(|e| AuthError::Corrupt { key: kv.key.clone(), reason: e.to_string() })?;
        user.password_hash = Some(hash_password(password)?);
        let bytes = serde_json::to_vec(&user).map_err(|e| AuthError::Hashing(e.to_string()))?;
        if store
            .compare_and_set(&kv.key, Expect::ModRevision(kv.mod_revision), Some(bytes), None)
            .await?
            .succeeded
        {
            return Ok(());
        }
    }
}

/// Checks a user's password (in constant time, by argon2). The same error whether the user is
/// unknown, has no password, or the password is wrong.
pub async fn check_password(store: &dyn Store, name: &str, password: &[u8]) -> Result<User> {
    let user = get(store, name).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = match &hash {
        Some(h) => crate::passwords::verify(password, h),
        None => {
            // Spend the same effort as a real check so timing does not reveal unknown users.
            let _ = hash_password(b"rampart-dummy-password");
            false
        }
    };
    match user {
        Some(u) if ok => Ok(u),
        _ => Err(AuthError::BadCredentials),
    }
}

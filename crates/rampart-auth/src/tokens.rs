//! API tokens: `rpt_<id>_<secret>`, a public 64-bit id and a 256-bit random secret. The store
//! keeps only SHA-256 of the secret (a random 256-bit secret needs no slow hash), at
//! `auth/tokens/<id>`; verification compares hashes in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_pki::TrustDomain;
use rampart_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{AuthError, Result, TokenRefusal};
use crate::principal::Principal;
use crate::users;

pub use crate::token_cache::TokenCache;

/// Where tokens live in the registry.
pub const TOKENS_PREFIX: &str = "auth/tokens/";
/// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "rpt_";

/// Why a token was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevokedBecause {
    /// An administrator revoked it.
    Revoked,
    /// Its user was removed.
    UserRemoved,
}

/// A token as stored: never the secret itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (16 hex digits).
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// Services it may call; empty: every service the user may call.
    pub services: Vec<String>,
    /// Issue time, seconds since the Unix epoch.
    pub issued: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
    /// Set once revoked: (when, why).
    pub revoked: Option<(u64, RevokedBecause)>,
}

impl TokenRecord {
    /// Not revoked and not expired at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked.is_none() && now < self.expires
    }
}

/// TTL rules for new tokens.
#[derive(Clone, Copy, Debug)]
pub struct TokenPolicy {
    /// TTL when none is asked for, in seconds.
    pub default_ttl: u64,
    /// The longest TTL allowed, in seconds.
    pub max_ttl: u64,
}

impl Default for TokenPolicy {
    /// 30 days by default, at most one year.
    fn default() -> Self {
        TokenPolicy { default_ttl: 30 * 86_400, max_ttl: 365 * 86_400 }
    }
}

/// A token just issued: the only time its secret exists outside the holder.
#[derive(Debug)]
pub struct Issued {
    /// The full token, `rpt_<id>_<secret>`. Show it once; it cannot be recovered.
    pub token: Zeroizing<String>,
    /// What the store keeps.
    pub record: TokenRecord,
}

fn key(id: &str) -> String {
    format!("{TOKENS_PREFIX}{id}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

fn corrupt(key: String, e: impl std::fmt::Display) -> AuthError {
    AuthError::Corrupt { key, reason: e.to_string() }
}

/// Issues a token for `user`, valid `ttl` seconds (default and maximum from `policy`), for
/// `services` (empty: any). Refuses beyond the user's token limit.
pub async fn issue(
    store: &dyn Store,
    user: &str,
    ttl: Option<u64>,
    services: &[String],
    policy: TokenPolicy,
    now: u64,
) -> Result<Issued> {
    let u = users::get(store, user).await?.ok_or_else(|| AuthError::NoSuchUser(user.to_owned()))?;
    let ttl = ttl.unwrap_or(policy.default_ttl);
    if ttl > policy.max_ttl || ttl == 0 {
        return Err(AuthError::TtlTooLong { asked: ttl, max: policy.max_ttl });
    }
    for s in services {
        crate::names::check_service(s)?;
    }
    let live = list(store).await?.iter().filter(|t| t.user == user && t.is_live(now)).count();
    if live >= u.token_limit as usize {
        return Err(AuthError::TokenLimit { user: user.to_owned(), limit: u.token_limit });
    }
    let mut id_bytes = [0u8; 8];
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut id_bytes).map_err(|e| AuthError::Hashing(e.to_string()))?;
    getrandom::fill(secret.as_mut()).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let id = hex::encode(id_bytes);
    let secret_text = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_ref()));
    let record = TokenRecord {
        id: id.clone(),
        user: user.to_owned(),
        secret_sha256: sha256_hex(secret_text.as_bytes()),
        services: services.to_vec(),
        issued: now,
        expires: now.saturating_add(ttl),
        revoked: None,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| corrupt(key(&id), e))?;
    store.compare_and_set(&key(&id), Expect::Absent, Some(bytes), None).await?;
    let token = Zeroizing::new(format!("{TOKEN_PREFIX}{id}_{}", secret_text.as_str()));
    Ok(Issued { token, record })
}

/// Issues a token to a user who proves their password (the design of `POST /_rampart/token`
/// with basic auth on the gateway).
pub async fn issue_for_password(
    store: &dyn Store,
    user: &str,
    password: &[u8],
    ttl: Option<u64>,
    services: &[String],
    policy: TokenPolicy,
    now: u64,
) -> Result<Issued> {
    users::check_password(store, user, password).await?;
    issue(store, user, ttl, services, policy, now).await
}

/// Every token record (never secrets), by id.
pub async fn list(store: &dyn Store) -> Result<Vec<TokenRecord>> {
    let mut out = Vec::new();
    for kv in store.range(TOKENS_PREFIX).await? {
        out.push(serde_json::from_slice(&kv.value).map_err(|e| corrupt(kv.key.clone(), e))?);
    }
    Ok(out)
}

/// Revokes one token by id.
pub async fn revoke(store: &dyn Store, id: &str, now: u64) -> Result<TokenRecord> {
    mark(store, id, RevokedBecause::Revoked, now).await?.ok_or_else(|| AuthError::NoSuchToken(id.to_owned()))
}

pub(crate) async fn revoke_all_of(
    store: &dyn Store,
    user: &str,
    why: RevokedBecause,
    now: u64,
) -> Result<usize> {
    let mut n = 0;
    for t in list(store).await?.into_iter().filter(|t| t.user == user && t.revoked.is_none()) {
        if mark(store, &t.id, why, now).await?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

async fn mark(store: &dyn Store, id: &str, why: RevokedBecause, now: u64) -> Result<Option<TokenRecord>> {
    loop {
        let Some(kv) = store.get(&key(id)).await? else { return Ok(None) };
        let mut rec: TokenRecord =
            serde_json::from_slice(&kv.value).map_err(|e| corrupt(kv.key.clone(), e))?;
        if rec.revoked.is_some() {
            return Ok(Some(rec));
        }
        rec.revoked = Some((now, why));
        let bytes = serde_json::to_vec(&rec).map_err(|e| corrupt(kv.key.clone(), e))?;
        if store
            .compare_and_set(&kv.key, Expect::ModRevision(kv.mod_revision), Some(bytes), None)
            .await?
            .succeeded
        {
            return Ok(Some(rec));
        }
    }
}

/// Splits `rpt_<16 hex>_<43 base64url>`; anything else is malformed. Public for the fuzz
/// targets (`fuzz/`), not an API.
#[doc(hidden)]
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok =
        secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// What verifying a token reads from the registry: its record, and its user's name and role
/// (`None`: the user is gone). Read once per change by [`TokenCache`].
#[derive(Debug)]
pub(crate) struct Read {
    record: TokenRecord,
    /// The stored SHA-256 of the secret, decoded (`None`: not 32 bytes of hex, matches nothing).
    digest: Option<[u8; 32]>,
    user: Option<(String, bool)>,
}

/// A presented token's id and the SHA-256 of its secret, or `Malformed`.
pub(crate) fn presented(token: &str) -> Result<(&str, [u8; 32])> {
    let Some((id, secret)) = parse(token.trim()) else {
        return Err(AuthError::Token(TokenRefusal::Malformed));
    };
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    Ok((id, d.as_ref().try_into().unwrap_or([0; 32])))
}

impl Read {
    /// Reads token `id` and its user; `Unknown` for no such token, and `BadSecret` (before the
    /// user is read) when `presented` is not its secret's digest.
    pub(crate) async fn of(store: &dyn Store, id: &str, presented: &[u8; 32]) -> Result<Read> {
        let Some(kv) = store.get(&key(id)).await? else {
            return Err(AuthError::Token(TokenRefusal::Unknown));
        };
        let record: TokenRecord =
            serde_json::from_slice(&kv.value).map_err(|e| corrupt(kv.key.clone(), e))?;
        let mut digest = [0u8; 32];
        let digest = hex::decode_to_slice(&record.secret_sha256, &mut digest).ok().map(|()| digest);
        let read = Read { record, digest, user: None };
        if !read.matches(presented) {
            return Err(AuthError::Token(TokenRefusal::BadSecret));
        }
        let user = users::get(store, &read.record.user).await?.map(|u| (u.name, u.admin));
        Ok(Read { user, ..read })
    }

    /// Whether `presented` is the secret's digest (in constant time).
    fn matches(&self, presented: &[u8; 32]) -> bool {
        self.digest.is_some_and(|d| bool::from(d.ct_eq(presented)))
    }

    /// The principal the token is for `service` in `domain` at `now`, or why it is refused.
    /// The secret is checked before anything about the token's state is revealed, so only the
    /// holder of a real token learns that it is revoked or expired.
    pub(crate) fn check(
        &self,
        presented: &[u8; 32],
        service: Option<&str>,
        domain: &TrustDomain,
        now: u64,
    ) -> Result<Principal> {
        let refuse = |r| Err(AuthError::Token(r));
        let rec = &self.record;
        if !self.matches(presented) {
            return refuse(TokenRefusal::BadSecret);
        }
        match rec.revoked {
            Some((_, RevokedBecause::UserRemoved)) => return refuse(TokenRefusal::UserRemoved),
            Some((_, RevokedBecause::Revoked)) => return refuse(TokenRefusal::Revoked),
            None => {}
        }
        let Some((user, admin)) = &self.user else { return refuse(TokenRefusal::UserRemoved) };
        if now >= rec.expires {
            return refuse(TokenRefusal::Expired);
        }
        if let Some(s) = service
            && !rec.services.is_empty()
            && !rec.services.iter().any(|allowed| allowed == s)
        {
            return refuse(TokenRefusal::OutOfScope);
        }
        Ok(Principal::token(rec.id.clone(), user.clone(), *admin, domain.clone()))
    }
}

/// Verifies a presented token for `service` (or for no service in particular, e.g. the admin
/// API) and returns its principal in `domain` (the verifying gateway's trust domain). Reads
/// the registry each time: a gateway verifies through a [`TokenCache`].
pub async fn verify(
    store: &dyn Store,
    token: &str,
    service: Option<&str>,
    domain: &TrustDomain,
    now: u64,
) -> Result<Principal> {
    let (id, digest) = presented(token)?;
    Read::of(store, id, &digest).await?.check(&digest, service, domain, now)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn shapes() {
        let good = format!("rpt_0123456789abcdef_{}", "A".repeat(43));
        assert!(parse(&good).is_some());
        for bad in [
            String::new(),
            "rpt_".into(),
            good.replace("rpt_", "rpx_"),
            good.replace("0123456789abcdef", "0123456789ABCDEF"),
            format!("{good}A"),
            good.replacen('A', "+", 1),
            good.replace("_0123", "_é123"),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}

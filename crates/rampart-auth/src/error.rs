//! The one error type of the auth crate.

use rampart_events::EventKind;
use rampart_store::StoreError;

/// Why a token was refused. Each reason is distinct so that the security event says exactly
/// what happened; none reveals whether a guessed secret was close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// Not shaped like a rampart token.
    #[error("malformed token")]
    Malformed,
    /// No token with this id exists (never issued, or purged).
    #[error("unknown token")]
    Unknown,
    /// The id exists but the secret does not match.
    #[error("invalid token")]
    BadSecret,
    /// Revoked by an administrator.
    #[error("revoked token")]
    Revoked,
    /// Its user was removed.
    #[error("token of a removed user")]
    UserRemoved,
    /// Past its expiry.
    #[error("expired token")]
    Expired,
    /// Valid, but not for this service.
    #[error("token not valid for this service")]
    OutOfScope,
}

impl TokenRefusal {
    /// The security event's kind.
    pub fn kind(self) -> EventKind {
        match self {
            TokenRefusal::Malformed => EventKind::TokenMalformed,
            TokenRefusal::Unknown => EventKind::TokenUnknown,
            TokenRefusal::BadSecret => EventKind::TokenInvalid,
            TokenRefusal::Revoked => EventKind::TokenRevoked,
            TokenRefusal::UserRemoved => EventKind::TokenUserRemoved,
            TokenRefusal::Expired => EventKind::TokenExpired,
            TokenRefusal::OutOfScope => EventKind::TokenOutOfScope,
        }
    }
}

/// Everything that can go wrong in users, tokens and policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A token was refused.
    #[error("{0}")]
    Token(TokenRefusal),
    /// Username and password do not match (deliberately not saying which).
    #[error("wrong user name or password")]
    BadCredentials,
    /// A user of that name exists already.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// No user of that name.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// No token with that id.
    #[error("no token with id {0:?}")]
    NoSuchToken(String),
    /// No policy rule with that id.
    #[error("no policy rule with id {0:?}")]
    NoSuchRule(String),
    /// The user already holds as many live tokens as allowed.
    #[error("user {user:?} already holds {limit} live tokens (its limit); revoke one first")]
    TokenLimit {
        /// The user.
        user: String,
        /// The limit.
        limit: u32,
    },
    /// A TTL above the configured maximum.
    #[error("a token TTL of {asked} s is over the maximum of {max} s")]
    TtlTooLong {
        /// Seconds asked for.
        asked: u64,
        /// The maximum.
        max: u64,
    },
    /// A bad user name, principal pattern, method or service name.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A password that is empty or absurdly long.
    #[error("passwords must be 1 to 1024 bytes")]
    BadPasswordLength,
    /// A record in the store does not parse.
    #[error("damaged record {key:?} in the store: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Hashing failed (an RNG or parameter failure, not bad input).
    #[error("password hashing: {0}")]
    Hashing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

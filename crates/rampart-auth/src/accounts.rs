//! What spans users and their tokens: removing a user revokes every token it holds, here and
//! nowhere else (so `users` need not know of tokens).

use rampart_store::Store;

use crate::error::Result;
use crate::{tokens, users};

/// Removes a user and revokes every token it holds; returns how many tokens were revoked.
pub async fn remove_user(store: &dyn Store, name: &str, now: u64) -> Result<usize> {
    users::delete(store, name).await?;
    tokens::revoke_all_of(store, name, tokens::RevokedBecause::UserRemoved, now).await
}

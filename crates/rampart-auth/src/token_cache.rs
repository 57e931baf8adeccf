//! Tokens verified without reading the registry on every request. What a verification reads
//! (the token's record, its user) is kept by token id with the generation of the registry's
//! copy it was read at; any change to that copy (a revocation, a user removed, a token issued)
//! makes a new generation, and an entry of an older one is read again. So a cached token is
//! refused as soon as an uncached one would be, and each request still checks its secret,
//! expiry and scope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_pki::TrustDomain;
use rampart_store::Store;

use crate::error::Result;
use crate::principal::Principal;
use crate::tokens::{Read, presented};

/// The most tokens kept; past it the cache starts again empty (bounded memory whatever ids
/// callers present: only tokens whose secret was right are kept).
const MOST: usize = 4096;

/// What verifications read, by token id, with the generation each was read at.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (u64, Arc<Read>)>>,
}

impl TokenCache {
    /// [`crate::tokens::verify`], with what it reads kept while `generation` stays the same
    /// (`None`: the copy is not loaded, read the registry).
    pub async fn verify(
        &self,
        store: &dyn Store,
        generation: Option<u64>,
        token: &str,
        service: Option<&str>,
        domain: &TrustDomain,
        now: u64,
    ) -> Result<Principal> {
        let (id, presented) = presented(token)?;
        let kept = generation.and_then(|g| {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.get(id).filter(|(at, _)| *at == g).map(|(_, read)| read.clone())
        });
        let read = match kept {
            Some(read) => read,
            None => {
                let read = Arc::new(Read::of(store, id, &presented).await?);
                if let Some(g) = generation {
                    let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                    if entries.len() >= MOST && !entries.contains_key(id) {
                        entries.clear();
                    }
                    entries.insert(id.to_owned(), (g, read.clone()));
                }
                read
            }
        };
        read.check(&presented, service, domain, now)
    }
}

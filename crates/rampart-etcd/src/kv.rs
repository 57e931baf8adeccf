//! Keys and values: the prefix on the way in and out, reads, writes, and compare-and-set as
//! one etcd transaction.
//!
//! Retries after a failover: reads, puts and deletes are repeated on the next member even when
//! the first try may have been applied (a repeated put writes the same value again; a repeated
//! delete may then report that the key did not exist). A compare-and-set is repeated too —
//! its compare guards it, so at most one of the tries can apply (or, when the write leaves the
//! compare true, applying twice changes nothing) — but its reported outcome needs settling
//! when an earlier try may have been applied and the last one's compare failed: see
//! [`settle`].

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use rampart_store::error::{MAX_KEY_BYTES, MAX_VALUE_BYTES, check_key, check_value};
use rampart_store::{CasOutcome, Expect, KeyValue, LeaseId, Result, Revision, StoreError};

use crate::endpoints::Failure;
use crate::{Inner, refused};

impl Inner {
    /// The etcd key of a store key.
    pub(crate) fn full(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// A store key-value from an etcd one under the prefix.
    pub(crate) fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_bytes())
            .ok_or_else(|| StoreError::Backend("etcd returned a key outside the prefix".into()))?;
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| StoreError::Backend("etcd holds a key that is not UTF-8".into()))?;
        Ok(KeyValue {
            key,
            value: kv.value().to_vec(),
            create_revision: rev(kv.create_revision()),
            mod_revision: rev(kv.mod_revision()),
            version: rev(kv.version()),
            lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
        })
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        check_key(key)?;
        let full = self.full(key);
        let ran = self
            .endpoints
            .run("get", |mut c| {
                let full = full.clone();
                async move { c.client.get(full, None).await }
            })
            .await
            .map_err(|f| self.failed(f, key, None))?;
        self.endpoints.saw(ran.value.header());
        ran.value.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    /// Every key under `prefix`, read in pages of [`PAGE_KEYS`] at one revision (a consistent
    /// listing however large: one answer for all would meet gRPC's message limit). A page whose
    /// revision was compacted meanwhile starts the listing again at the newest one.
    pub(crate) async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let mut tries = 0;
        loop {
            match self.range_at_one_revision(prefix).await {
                Err(Paged::Compacted) if tries < 3 => tries += 1,
                Err(Paged::Compacted) => {
                    return Err(StoreError::Unavailable(format!(
                        "range {prefix:?}: etcd compacted the listing's revision {tries} times over"
                    )));
                }
                Err(Paged::Failed(e)) => return Err(e),
                Ok(kvs) => return Ok(kvs),
            }
        }
    }

    async fn range_at_one_revision(&self, prefix: &str) -> std::result::Result<Vec<KeyValue>, Paged> {
        let full = self.full(prefix);
        let end = prefix_end(&full);
        let (mut from, mut at, mut kvs) = (full, None::<i64>, Vec::new());
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE_KEYS);
            if let Some(revision) = at {
                options = options.with_revision(revision);
            }
            let ran = self
                .endpoints
                .run("range", |c| {
                    let (key, options) = (from.clone(), options.clone());
                    let mut kv = c.client.kv_client().max_decoding_message_size(PAGE_BYTES);
                    async move { kv.get(key, Some(options)).await }
                })
                .await
                .map_err(|f| match f {
                    Failure::Refused { status, .. } if status.code() == tonic::Code::OutOfRange => {
                        Paged::Compacted
                    }
                    f => Paged::Failed(self.failed(f, prefix, None)),
                })?;
            let page = ran.value;
            self.endpoints.saw(page.header());
            at = at.or(page.header().map(|h| h.revision()));
            for kv in page.kvs() {
                kvs.push(self.kv(kv).map_err(Paged::Failed)?);
            }
            match page.kvs().last() {
                Some(last) if page.more() => from = [last.key(), &[0]].concat(),
                _ => return Ok(kvs),
            }
        }
    }

    pub(crate) async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        check_key(key)?;
        check_value(&value)?;
        let full = self.full(key);
        let ran = self
            .endpoints
            .run("put", |mut c| {
                let (full, value) = (full.clone(), value.clone());
                let opts = lease.map(|l| PutOptions::new().with_lease(l.0));
                async move { c.client.put(full, value, opts).await }
            })
            .await
            .map_err(|f| self.failed(f, key, lease))?;
        Ok(self.endpoints.saw(ran.value.header()))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        Ok(self.delete_range(key, None).await? > 0)
    }

    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.delete_range(prefix, Some(DeleteOptions::new().with_prefix())).await
    }

    async fn delete_range(&self, key: &str, opts: Option<DeleteOptions>) -> Result<u64> {
        let full = self.full(key);
        let ran = self
            .endpoints
            .run("delete", |mut c| {
                let (full, opts) = (full.clone(), opts.clone());
                async move { c.client.delete(full, opts).await }
            })
            .await
            .map_err(|f| self.failed(f, key, None))?;
        self.endpoints.saw(ran.value.header());
        Ok(u64::try_from(ran.value.deleted()).unwrap_or(0))
    }

    /// The cluster's revision (a linearizable count of the prefix key: allowed to a role
    /// confined to the prefix).
    pub(crate) async fn revision(&self) -> Result<Revision> {
        let full = self.full("");
        let ran = self
            .endpoints
            .run("revision", |mut c| {
                let full = full.clone();
                async move { c.client.get(full, Some(GetOptions::new().with_count_only())).await }
            })
            .await
            .map_err(|f| self.failed(f, "", None))?;
        Ok(self.endpoints.saw(ran.value.header()))
    }

    pub(crate) async fn compare_and_set(
        &self,
        key: &str,
        expect: Expect,
        value: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<CasOutcome> {
        check_key(key)?;
        if let Some(v) = &value {
            check_value(v)?;
        }
        let full = self.full(key);
        let compare = match &expect {
            Expect::Absent => Compare::create_revision(full.clone(), CompareOp::Equal, 0),
            Expect::ModRevision(r) => {
                Compare::mod_revision(full.clone(), CompareOp::Equal, i64::try_from(*r).unwrap_or(i64::MAX))
            }
            Expect::Value(v) => Compare::value(full.clone(), CompareOp::Equal, v.clone()),
        };
        let write = match &value {
            Some(v) => TxnOp::put(full.clone(), v.clone(), lease.map(|l| PutOptions::new().with_lease(l.0))),
            None => TxnOp::delete(full.clone(), None),
        };
        let read = TxnOp::get(full.clone(), None);
        let txn = Txn::new().when([compare]).and_then([write, read.clone()]).or_else([read]);
        let seen_before = self.endpoints.seen();
        let ran = self
            .endpoints
            .run("compare-and-set", |mut c| {
                let txn = txn.clone();
                async move { c.client.txn(txn).await }
            })
            .await
            .map_err(|f| self.failed(f, key, lease))?;
        let revision = self.endpoints.saw(ran.value.header());
        let current = match ran.value.op_responses().pop() {
            Some(TxnOpResponse::Get(g)) => g.kvs().first().map(|kv| self.kv(kv)).transpose()?,
            _ => return Err(StoreError::Backend("etcd transaction answered without the read".into())),
        };
        let outcome = CasOutcome { succeeded: ran.value.succeeded(), revision, current };
        if ran.ambiguous && !outcome.succeeded {
            return settle(outcome, value.as_deref(), lease, seen_before);
        }
        Ok(outcome)
    }

    /// A call's failure as a store error (`key` and `lease` name what was refused).
    pub(crate) fn failed(&self, f: Failure, key: &str, lease: Option<LeaseId>) -> StoreError {
        match f {
            Failure::Store(e) => e,
            Failure::Refused { status, .. } => refused(&status, key, lease),
        }
    }
}

/// Settles a compare-and-set whose compare failed on the last try after an earlier try may
/// have been applied: that earlier try is taken to have succeeded when the key now holds
/// exactly what this call wrote (value and lease; absent, for a delete) at a revision newer
/// than any this store had seen before the call. Otherwise the outcome is unknown and the
/// call returns `Unavailable` rather than guess (a reported failure would invite a retry of a
/// write that may have happened).
///
/// The remaining risk: another writer that wrote the very same value and lease in the same
/// moment is taken for this call.
fn settle(
    outcome: CasOutcome,
    value: Option<&[u8]>,
    lease: Option<LeaseId>,
    seen_before: Revision,
) -> Result<CasOutcome> {
    let ours = match (&outcome.current, value) {
        (Some(kv), Some(v)) => kv.value == v && kv.lease == lease && kv.mod_revision > seen_before,
        (None, None) => true,
        _ => false,
    };
    if ours {
        return Ok(CasOutcome { succeeded: true, ..outcome });
    }
    Err(StoreError::Unavailable(
        "compare-and-set: a member failed after the request was sent and the key has changed since; \
         the outcome is unknown (re-read the key)"
            .into(),
    ))
}

/// Keys in one page of a range. With keys and values at the store's limits a page is about
/// 100 MiB; with the small records the network keeps, a few hundred KiB.
const PAGE_KEYS: i64 = 100;
/// The largest answer a page may be: [`PAGE_KEYS`] keys and values at the store's limits,
/// with room for etcd's own fields. tonic's default, 4 MiB, would refuse a page of five
/// values of 1 MiB.
const PAGE_BYTES: usize = PAGE_KEYS as usize * (MAX_VALUE_BYTES + MAX_KEY_BYTES + 1024) + (1 << 20);

/// How a paged read ended short.
enum Paged {
    /// The revision it read at was compacted between two pages.
    Compacted,
    Failed(StoreError),
}

/// The first key after every key that starts with `prefix` (etcd's `range_end` for a prefix):
/// the prefix with its last byte below 0xff raised by one, or `\0` (to the end of the keys)
/// when every byte is 0xff.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// An etcd revision (never negative) as a store revision.
pub(crate) fn rev(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_where_its_last_byte_below_0xff_is_raised() {
        assert_eq!(prefix_end(b"rampart/services/"), b"rampart/services0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}

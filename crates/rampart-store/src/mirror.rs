//! A store whose reads under one prefix are answered from memory, kept current by a watch.
//!
//! The gateway checks a token (and reads users) on every request: answering from a mirror keeps
//! a round trip to etcd off the hot path, and keeps known callers served while the registry is
//! out of reach (an etcd cluster without quorum). A key the mirror does not hold is read from
//! the store itself, so something written a moment ago is never refused because the watch has
//! not delivered it yet. Writes always go to the store; the mirror hears of them by the watch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::error::Result;
use crate::store::Store;
use crate::types::{EventKind, KeyValue};

/// The copy: `None` until first loaded.
type Snapshot = RwLock<Option<BTreeMap<String, KeyValue>>>;
type View = Arc<Snapshot>;
/// Counts the changes made to the copy (see [`Mirror::generation`]).
type Generation = Arc<AtomicU64>;

/// `inner`, with reads under `prefix` served from memory once the first copy is loaded.
pub struct Mirror {
    inner: Arc<dyn Store>,
    prefix: String,
    view: View,
    generation: Generation,
    /// The task that follows the prefix: stopped with the mirror (else it would hold the
    /// store until the next change under the prefix).
    follower: tokio::task::AbortHandle,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("prefix", &self.prefix).field("loaded", &self.loaded()).finish()
    }
}

impl Mirror {
    /// Starts mirroring `prefix` of `inner` (a task on the current tokio runtime follows it
    /// for as long as the mirror lives).
    pub fn new(inner: Arc<dyn Store>, prefix: &str) -> Arc<Self> {
        let (view, generation): (View, Generation) = Default::default();
        let follower =
            tokio::spawn(follow(inner.clone(), prefix.to_owned(), Arc::downgrade(&view), generation.clone()));
        Arc::new(Mirror {
            inner,
            prefix: prefix.to_owned(),
            view,
            generation,
            follower: follower.abort_handle(),
        })
    }

    /// Which copy reads see: it changes with every change applied to the copy (`None` until
    /// it is loaded). Something derived from reads made after this was read may be kept while
    /// it stays the same: it is then derived from the copy as it still is.
    pub fn generation(&self) -> Option<u64> {
        let g = self.generation.load(Ordering::Acquire);
        (g > 0).then_some(g)
    }

    /// Whether the first copy has been loaded.
    pub fn loaded(&self) -> bool {
        self.view.read().is_ok_and(|v| v.is_some())
    }

    fn cached(&self, key: &str) -> Option<KeyValue> {
        if !key.starts_with(&self.prefix) {
            return None;
        }
        self.view.read().ok()?.as_ref()?.get(key).cloned()
    }
}

/// Loads the prefix, then applies its changes; on any error keeps the last copy and starts
/// again. The watch opens before the copy is read, so no change falls between the two; a
/// change already in the copy is recognised by its revision and skipped.
async fn follow(
    store: Arc<dyn Store>,
    prefix: String,
    view: std::sync::Weak<Snapshot>,
    generation: Generation,
) {
    loop {
        let synced = async {
            let mut watch = store.watch(&prefix, None).await?;
            let copy: BTreeMap<String, KeyValue> =
                store.range(&prefix).await?.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
            {
                let Some(view) = view.upgrade() else { return Ok(()) };
                if let Ok(mut v) = view.write() {
                    *v = Some(copy);
                    generation.fetch_add(1, Ordering::Release);
                }
            }
            loop {
                let ev = watch.next().await?;
                let Some(view) = view.upgrade() else { return Ok(()) };
                let Ok(mut v) = view.write() else { return Ok(()) };
                let Some(map) = v.as_mut() else { continue };
                let newer = map.get(&ev.kv.key).is_none_or(|kv| kv.mod_revision < ev.kv.mod_revision);
                match ev.kind {
                    EventKind::Put if newer => {
                        map.insert(ev.kv.key.clone(), ev.kv);
                    }
                    EventKind::Delete if newer => {
                        map.remove(&ev.kv.key);
                    }
                    _ => continue,
                }
                // Under the write lock: whoever reads the new generation reads the new copy.
                generation.fetch_add(1, Ordering::Release);
            }
        };
        let result: Result<()> = synced.await;
        match result {
            Ok(()) => return, // the mirror was dropped
            Err(e) => tracing::warn!("mirror of {prefix:?}: {e}; keeping the last copy and starting again"),
        }
        if view.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

crate::delegate_store! {
    impl Store for Mirror => inner;
    pass: [put, delete, delete_prefix, compare_and_set, grant_lease, keep_alive, revoke_lease, watch, revision];

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.cached(key) {
            Some(kv) => Ok(Some(kv)),
            None => self.inner.get(key).await,
        }
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        if prefix.starts_with(&self.prefix)
            && let Ok(v) = self.view.read()
            && let Some(map) = v.as_ref()
        {
            return Ok(map
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, kv)| kv.clone())
                .collect());
        }
        self.inner.range(prefix).await
    }
}

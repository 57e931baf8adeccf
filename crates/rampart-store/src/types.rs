//! The values the store trait speaks in, shaped after etcd v3 (KeyValue, revisions, leases,
//! watch events) so that an etcd backend maps onto them one to one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::error::{Result, StoreError};

/// A store-wide, monotonically increasing version: every write transaction gets the next one.
pub type Revision = u64;

/// A lease: keys attached to it are deleted when it expires or is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

/// A key with its value and versions (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the key's creation.
    pub create_revision: Revision,
    /// Revision of the key's last modification.
    pub mod_revision: Revision,
    /// Number of modifications since creation (1 after the first put).
    pub version: u64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// The condition of a compare-and-set (one etcd transaction compare).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with this mod revision (it has not changed since it was read).
    ModRevision(Revision),
    /// The key must hold exactly this value.
    Value(Vec<u8>),
}

/// What a compare-and-set did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasOutcome {
    /// Whether the condition held and the write happened.
    pub succeeded: bool,
    /// The store's revision after the operation.
    pub revision: Revision,
    /// The key as it is now (after the write when it succeeded).
    pub current: Option<KeyValue>,
}

/// What changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (directly, by prefix, or by its lease ending).
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: the key with an empty value and the delete's
    /// revision as `mod_revision`).
    pub kv: KeyValue,
}

/// A stream of changes under a prefix, in revision order.
#[derive(Debug)]
pub struct Watch {
    pub(crate) rx: mpsc::Receiver<Event>,
    pub(crate) lagged: Arc<AtomicBool>,
    pub(crate) last: Revision,
}

impl Watch {
    /// A watch fed by `rx`; `lagged` is raised by the producer when it had to drop this watch.
    pub fn new(rx: mpsc::Receiver<Event>, lagged: Arc<AtomicBool>) -> Self {
        Watch { rx, lagged, last: 0 }
    }

    /// The next change, in order. `Err(Lagged)` when the watcher fell behind and was dropped
    /// (resume with a new watch from the revision after the last one seen); `Err(Closed)` when
    /// the store shut down.
    pub async fn next(&mut self) -> Result<Event> {
        match self.rx.recv().await {
            Some(ev) => {
                self.last = ev.kv.mod_revision;
                Ok(ev)
            }
            None if self.lagged.load(Ordering::Acquire) => Err(StoreError::Lagged(self.last)),
            None => Err(StoreError::Closed),
        }
    }

    /// The next change if one is already here, without waiting: a follower takes a burst of
    /// changes at once. `None` also when the watch ended ([`Watch::next`] then says why).
    pub fn try_next(&mut self) -> Option<Event> {
        let ev = self.rx.try_recv().ok()?;
        self.last = ev.kv.mod_revision;
        Some(ev)
    }
}

//! The embedded backend: one redb file under the home's `store/`, every write committed with
//! fsync before the call returns (redb's default `Durability::Immediate`), crash-safe by
//! redb's copy-on-write commits. One process at a time holds the file.
//!
//! Leases live in memory with their deadlines and are persisted by id and TTL only: after a
//! restart every lease gets a fresh full TTL, as etcd renews leases on a leader change.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::error::{Result, StoreError, check_key, check_value};
use crate::store::Store;
use crate::types::{CasOutcome, Event, EventKind, Expect, KeyValue, LeaseId, Revision, Watch};
use crate::watch::WatchHub;

/// key → record (see [`encode`]).
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// "<lease:016x>/<key>" → (), to find a lease's keys.
const LEASE_KEYS: TableDefinition<&str, ()> = TableDefinition::new("lease_keys");
/// lease id → TTL in milliseconds.
const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// "revision" and "next_lease".
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// How often the background task looks for expired leases.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The embedded store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Serialises writers so events are published in revision order.
    state: Mutex<State>,
    hub: Mutex<WatchHub>,
    /// Writes waiting for the next group commit.
    queue: Mutex<Vec<Job>>,
}

struct State {
    revision: Revision,
    next_lease: i64,
    leases: HashMap<i64, LeaseMeta>,
}

#[derive(Clone, Copy)]
struct LeaseMeta {
    ttl: Duration,
    deadline: Instant,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. Inside a tokio runtime it also starts the task that
    /// expires leases; the task ends when the last clone of the store is dropped.
    pub fn open(path: &Path) -> Result<Self> {
        // The registry holds password and token hashes: create the file private (redb then
        // initialises the empty file).
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(backend(format!("creating {}: {e}", path.display()))),
        }
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::InUse(path.to_owned())),
            Err(e) => return Err(backend(format!("opening {}: {e}", path.display()))),
        };
        let txn = db.begin_write().map_err(backend)?;
        let (revision, next_lease, leases) = {
            let meta = txn.open_table(META).map_err(backend)?;
            let revision = meta.get("revision").map_err(backend)?.map_or(0, |v| v.value());
            let next_lease = meta.get("next_lease").map_err(backend)?.map_or(1, |v| v.value());
            let table = txn.open_table(LEASES).map_err(backend)?;
            let now = Instant::now();
            let mut leases = HashMap::new();
            for entry in table.iter().map_err(backend)? {
                let (id, ttl) = entry.map_err(backend)?;
                let ttl = Duration::from_millis(ttl.value());
                leases.insert(id.value(), LeaseMeta { ttl, deadline: now + ttl });
            }
            drop((txn.open_table(KV).map_err(backend)?, txn.open_table(LEASE_KEYS).map_err(backend)?));
            (revision, i64::try_from(next_lease).unwrap_or(1), leases)
        };
        txn.commit().map_err(backend)?;
        let inner = Arc::new(Inner {
            db,
            path: path.to_owned(),
            state: Mutex::new(State { revision, next_lease, leases }),
            hub: Mutex::new(WatchHub::new(revision)),
            queue: Mutex::new(Vec::new()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&inner)));
        }
        Ok(EmbeddedStore { inner })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs a read. Reads are served inline (redb reads hit its page cache; handing them to the
    /// blocking pool would cost more than the read), unless a lease is due: expiring it writes.
    async fn read_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if !self.inner.lease_due() {
            let txn = self.inner.db.begin_read().map_err(backend)?;
            return f(&txn);
        }
        self.blocking(move |inner| inner.read(f)).await
    }

    /// Runs a blocking store operation off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|_| StoreError::Closed)?
    }
}

async fn sweep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let due = inner.lock_state().leases.values().any(|l| l.deadline <= Instant::now());
        if due {
            let _ = tokio::task::spawn_blocking(move || inner.write(|_, _| Ok(()))).await;
        }
    }
}

/// A write waiting for the next commit: `run` does it inside the batch's transaction and
/// returns how to answer its caller once the commit is known (and whether it broke the
/// transaction); `fail` answers a write that never ran.
struct Job {
    run: Box<RunJob>,
    fail: Box<dyn FnOnce(&str) + Send>,
}

/// Does a queued write inside the batch's transaction.
type RunJob = dyn FnOnce(&mut Tx<'_>, &mut State) -> Ran + Send;

/// A write that ran: how to answer it, and the backend error that broke the transaction, if any.
type Ran = (Completion, Option<String>);

/// Answers a write's caller: its own result if the commit succeeded, else the commit's error.
type Completion = Box<dyn FnOnce(Option<&str>) + Send>;

/// One write transaction in progress: the events it produces are published after commit.
struct Tx<'a> {
    txn: &'a WriteTransaction,
    rev: Revision,
    events: Vec<Event>,
    /// Whether anything was written (events, or lease bookkeeping).
    dirty: bool,
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters
        // more than stopping would; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a write transaction at the next revision (after expiring due leases in the
    /// same transaction), commits durably if anything changed, then publishes the events.
    ///
    /// Group commit: writers that arrive while a commit is under way queue up, and the next
    /// of them to take the lock runs every queued write in one transaction, one fsync for all
    /// (each still at its own revision, each answered only once the commit is durable). A
    /// registry serving many concurrent writers (envelope claims, records) is otherwise held
    /// to one fsync per write.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>, &mut State) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, result) = std::sync::mpsc::sync_channel::<Result<T>>(1);
        let fail = answer.clone();
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(Job {
            run: Box::new(move |tx, state| {
                let out = f(tx, state);
                let fatal = match &out {
                    Err(StoreError::Backend(why)) => Some(why.clone()),
                    _ => None,
                };
                let done: Completion = Box::new(move |failed| {
                    let _ = answer.send(match failed {
                        Some(why) => Err(StoreError::Backend(why.to_owned())),
                        None => out,
                    });
                });
                (done, fatal)
            }),
            fail: Box::new(move |why| {
                let _ = fail.send(Err(StoreError::Backend(why.to_owned())));
            }),
        });
        {
            let mut state = self.lock_state();
            let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !jobs.is_empty() {
                self.commit(&mut state, jobs);
            }
        }
        // Our write ran in this commit or in an earlier writer's.
        result.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Runs `jobs` in one transaction and answers each.
    fn commit(&self, state: &mut State, jobs: Vec<Job>) {
        let fail_all = |jobs: Vec<Job>, why: &str| jobs.into_iter().for_each(|j| (j.fail)(why));
        let txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => return fail_all(jobs, &e.to_string()),
        };
        let base = state.revision;
        let mut tx = Tx { txn: &txn, rev: base + 1, events: Vec::new(), dirty: false };
        let now = Instant::now();
        let due: Vec<i64> =
            state.leases.iter().filter(|(_, l)| l.deadline <= now).map(|(id, _)| *id).collect();
        for id in &due {
            if let Err(e) = tx.drop_lease(*id) {
                return fail_all(jobs, &e.to_string());
            }
        }
        let mut done = Vec::with_capacity(jobs.len());
        let mut fatal: Option<String> = None;
        for job in jobs {
            if let Some(why) = &fatal {
                (job.fail)(why);
                continue;
            }
            if !tx.events.is_empty() && tx.events.last().is_some_and(|e| e.kv.mod_revision == tx.rev) {
                tx.rev += 1; // the previous write took this revision
            }
            let (answer, failed) = (job.run)(&mut tx, state);
            if tx.events.last().is_some_and(|e| e.kv.mod_revision == tx.rev) {
                state.revision = tx.rev; // provisional: what later writes in the batch see
            }
            done.push(answer);
            fatal = failed;
        }
        let (events, dirty) = (std::mem::take(&mut tx.events), tx.dirty);
        let outcome = match &fatal {
            Some(why) => Err(why.clone()),
            None if !dirty => Ok(false), // nothing to commit; dropping `txn` aborts it
            None => self.finish(txn, state).map(|()| true),
        };
        match outcome {
            Ok(committed) => {
                if committed {
                    for id in due {
                        state.leases.remove(&id);
                    }
                    if !events.is_empty() {
                        self.hub.lock().unwrap_or_else(|p| p.into_inner()).publish(&events);
                    }
                }
                done.into_iter().for_each(|d| d(None));
            }
            Err(why) => {
                state.revision = base;
                done.into_iter().for_each(|d| d(Some(&why)));
            }
        }
    }

    /// Writes the revision and lease counter, and commits durably.
    fn finish(&self, txn: WriteTransaction, state: &State) -> std::result::Result<(), String> {
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            meta.insert("revision", state.revision).map_err(|e| e.to_string())?;
            meta.insert("next_lease", u64::try_from(state.next_lease).unwrap_or(1))
                .map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    fn lease_due(&self) -> bool {
        let now = Instant::now();
        self.lock_state().leases.values().any(|l| l.deadline <= now)
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        // Expire due leases first so that a read never sees a key whose lease has ended.
        if self.lease_due() {
            self.write(|_, _| Ok(()))?;
        }
        let txn = self.db.begin_read().map_err(backend)?;
        f(&txn)
    }
}

impl Tx<'_> {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let kv = self.txn.open_table(KV).map_err(backend)?;
        Ok(kv.get(key).map_err(backend)?.map(|v| decode(key, v.value())))
    }

    fn put(&mut self, state: &State, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<KeyValue> {
        if let Some(LeaseId(id)) = lease
            && !state.leases.contains_key(&id)
        {
            return Err(StoreError::LeaseNotFound(id));
        }
        let old = self.get(key)?;
        if let Some(LeaseId(old_lease)) = old.as_ref().and_then(|o| o.lease) {
            let mut lk = self.txn.open_table(LEASE_KEYS).map_err(backend)?;
            lk.remove(lease_key(old_lease, key).as_str()).map_err(backend)?;
        }
        let kv = KeyValue {
            key: key.to_owned(),
            create_revision: old.as_ref().map_or(self.rev, |o| o.create_revision),
            mod_revision: self.rev,
            version: old.as_ref().map_or(1, |o| o.version + 1),
            lease,
            value,
        };
        self.txn.open_table(KV).map_err(backend)?.insert(key, encode(&kv).as_slice()).map_err(backend)?;
        if let Some(LeaseId(id)) = lease {
            self.txn
                .open_table(LEASE_KEYS)
                .map_err(backend)?
                .insert(lease_key(id, key).as_str(), ())
                .map_err(backend)?;
        }
        self.events.push(Event { kind: EventKind::Put, kv: kv.clone() });
        self.dirty = true;
        Ok(kv)
    }

    fn delete(&mut self, key: &str) -> Result<bool> {
        let Some(old) = self.get(key)? else { return Ok(false) };
        self.txn.open_table(KV).map_err(backend)?.remove(key).map_err(backend)?;
        if let Some(LeaseId(id)) = old.lease {
            self.txn
                .open_table(LEASE_KEYS)
                .map_err(backend)?
                .remove(lease_key(id, key).as_str())
                .map_err(backend)?;
        }
        let kv = KeyValue { value: Vec::new(), mod_revision: self.rev, ..old };
        self.events.push(Event { kind: EventKind::Delete, kv });
        self.dirty = true;
        Ok(true)
    }

    /// Deletes a lease and every key attached to it.
    fn drop_lease(&mut self, id: i64) -> Result<()> {
        let prefix = format!("{id:016x}/");
        let keys: Vec<String> = {
            let lk = self.txn.open_table(LEASE_KEYS).map_err(backend)?;
            let mut keys = Vec::new();
            for entry in lk.range(prefix.as_str()..).map_err(backend)? {
                let (k, _) = entry.map_err(backend)?;
                let Some(key) = k.value().strip_prefix(prefix.as_str()) else { break };
                keys.push(key.to_owned());
            }
            keys
        };
        for key in keys {
            self.delete(&key)?;
        }
        self.txn.open_table(LEASES).map_err(backend)?.remove(id).map_err(backend)?;
        self.dirty = true;
        Ok(())
    }
}

fn lease_key(lease: i64, key: &str) -> String {
    format!("{lease:016x}/{key}")
}

/// Record layout: create_revision, mod_revision, version (u64 BE each), lease (i64 BE, 0 for
/// none), then the value. Fixed-width and versionless: the layout is this crate's alone.
fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + kv.value.len());
    out.extend_from_slice(&kv.create_revision.to_be_bytes());
    out.extend_from_slice(&kv.mod_revision.to_be_bytes());
    out.extend_from_slice(&kv.version.to_be_bytes());
    out.extend_from_slice(&kv.lease.map_or(0, |l| l.0).to_be_bytes());
    out.extend_from_slice(&kv.value);
    out
}

fn decode(key: &str, raw: &[u8]) -> KeyValue {
    let word =
        |i: usize| -> [u8; 8] { raw.get(i * 8..i * 8 + 8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]) };
    let lease = i64::from_be_bytes(word(3));
    KeyValue {
        key: key.to_owned(),
        create_revision: u64::from_be_bytes(word(0)),
        mod_revision: u64::from_be_bytes(word(1)),
        version: u64::from_be_bytes(word(2)),
        lease: (lease != 0).then_some(LeaseId(lease)),
        value: raw.get(32..).unwrap_or_default().to_vec(),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read_op(move |txn| {
            let kv = txn.open_table(KV).map_err(backend)?;
            Ok(kv.get(key.as_str()).map_err(backend)?.map(|v| decode(&key, v.value())))
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let prefix = prefix.to_owned();
        self.read_op(move |txn| {
            let kv = txn.open_table(KV).map_err(backend)?;
            let mut out = Vec::new();
            for entry in kv.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push(decode(k.value(), v.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        check_key(key)?;
        check_value(&value)?;
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner.write(move |tx, st| Ok(tx.put(st, &key, value, lease)?.mod_revision))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.blocking(move |inner| inner.write(move |tx, _| tx.delete(&key))).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.blocking(move |inner| {
            inner.write(move |tx, _| {
                let keys: Vec<String> = {
                    let kv = tx.txn.open_table(KV).map_err(backend)?;
                    let mut keys = Vec::new();
                    for entry in kv.range(prefix.as_str()..).map_err(backend)? {
                        let (k, _) = entry.map_err(backend)?;
                        if !k.value().starts_with(prefix.as_str()) {
                            break;
                        }
                        keys.push(k.value().to_owned());
                    }
                    keys
                };
                for key in &keys {
                    tx.delete(key)?;
                }
                Ok(keys.len() as u64)
            })
        })
        .await
    }

    async fn compare_and_set(
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
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner.write(move |tx, st| {
                let current = tx.get(&key)?;
                let holds = match (&expect, &current) {
                    (Expect::Absent, None) => true,
                    (Expect::ModRevision(r), Some(kv)) => kv.mod_revision == *r,
                    (Expect::Value(v), Some(kv)) => kv.value == *v,
                    _ => false,
                };
                if !holds {
                    return Ok(CasOutcome { succeeded: false, revision: st.revision, current });
                }
                let current = match value {
                    Some(v) => Some(tx.put(st, &key, v, lease)?),
                    None => {
                        tx.delete(&key)?;
                        None
                    }
                };
                Ok(CasOutcome { succeeded: true, revision: tx.rev, current })
            })
        })
        .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl = ttl.max(Duration::from_millis(100));
        self.blocking(move |inner| {
            inner.write(move |tx, st| {
                let id = st.next_lease;
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                tx.txn.open_table(LEASES).map_err(backend)?.insert(id, ms).map_err(backend)?;
                tx.dirty = true;
                st.next_lease += 1;
                st.leases.insert(id, LeaseMeta { ttl, deadline: Instant::now() + ttl });
                Ok(LeaseId(id))
            })
        })
        .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        // In memory only: deadlines are not persisted (see the module docs), so a heartbeat
        // costs no disk write.
        let mut st = self.inner.lock_state();
        let now = Instant::now();
        match st.leases.get_mut(&lease.0) {
            Some(meta) if meta.deadline > now => {
                meta.deadline = now + meta.ttl;
                Ok(meta.ttl)
            }
            _ => Err(StoreError::LeaseNotFound(lease.0)),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.blocking(move |inner| {
            inner.write(move |tx, st| {
                if st.leases.remove(&lease.0).is_none() {
                    return Err(StoreError::LeaseNotFound(lease.0));
                }
                tx.drop_lease(lease.0)
            })
        })
        .await
    }

    async fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<Watch> {
        let st = self.inner.lock_state();
        let mut hub = self.inner.hub.lock().unwrap_or_else(|p| p.into_inner());
        hub.subscribe(prefix, from, st.revision)
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.inner.lock_state().revision)
    }
}

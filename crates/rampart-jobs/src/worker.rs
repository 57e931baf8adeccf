//! A node's worker: it looks at the registry's jobs, claims a task nobody holds (a
//! put-if-absent attached to its own lease, so the claim vanishes if the node dies and the task
//! is claimed by another), counts it, and writes its result once (put-if-absent). A worker never
//! trusts that it still holds its claim: before writing, it checks that the claim is still the
//! one it made (its revision, the fencing token, goes into the result), and a result already
//! written is never replaced, so a late duplicate from a worker that lost its claim is refused
//! harmlessly. When every task has a result, whoever sees it first reduces the job and marks it
//! done (a compare-and-set on the record: once); a task that could not read the input fails the
//! job with its reason. A claim of the worker's own node that is still there when it looks is
//! one it dropped (the registry went away mid-count): it takes that task up again. Finished
//! jobs are removed after the retention period.
//!
//! Nothing lives only in a worker: a job is its records, so it survives any one process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rampart_store::{Expect, KeyValue, LeaseId, Store, StoreError};

use crate::count::{self, Limits};
use crate::model::{
    Claim, FAMILIES, Histogram, Job, JobState, Kind, Outcome, Task, TaskResult, idempotency_key, job_key,
    jobs_prefix, part_key, part_number, part_prefix,
};
use crate::submit::to_json;

/// How often a worker looks for work when it found none.
pub const POLL: Duration = Duration::from_millis(250);

/// What a worker tells the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// A task claimed again after its worker died or lost its claim.
    TaskReclaimed,
    /// A job reduced and done.
    Done,
    /// A job failed.
    Failed,
}

/// Who hears a worker's events (the node reports them to the gateway's audit log).
pub trait Events: Send + Sync {
    /// `event` happened to `job`, for this reason.
    fn job(&self, event: JobEvent, job: &Job, why: &str);
}

/// The lease a worker attaches its claims to (its node's registration), when it has one.
pub type LeaseOf = Arc<dyn Fn() -> Option<LeaseId> + Send + Sync>;

/// One node's worker.
pub struct Worker {
    store: Arc<dyn Store>,
    node: String,
    lease: LeaseOf,
    limits: Limits,
    events: Arc<dyn Events>,
    retention: Duration,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("node", &self.node).finish_non_exhaustive()
    }
}

/// What one look at a job did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing to do here now.
    Idle,
    /// A task counted (there may be more).
    Worked,
}

impl Worker {
    /// The worker of node `node`, claiming under `lease`, keeping finished jobs `retention`.
    pub fn new(
        store: Arc<dyn Store>,
        node: String,
        lease: LeaseOf,
        (limits, retention): (Limits, Duration),
        events: Arc<dyn Events>,
    ) -> Self {
        Worker { store, node, lease, limits, events, retention }
    }

    /// Works until dropped: a task after another while there are some, else a look every [`POLL`].
    pub async fn run(self) {
        loop {
            // Not before its node is registered: until then it may not read the jobs.
            if (self.lease)().is_none() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            match self.tick(now()).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!("jobs: the registry: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look at every job; whether a task was counted.
    pub async fn tick(&self, now: i64) -> Result<bool, StoreError> {
        let mut worked = false;
        for kv in self.store.range(&jobs_prefix()).await? {
            let Ok(job) = serde_json::from_slice::<Job>(&kv.value) else { continue };
            match job.state {
                JobState::Done | JobState::Failed => {
                    if job.finished.is_some_and(|f| f + self.retention.as_secs() as i64 <= now) {
                        remove(self.store.as_ref(), &job).await?;
                    }
                }
                // One job's trouble does not hold up the others.
                JobState::Queued | JobState::Running => match self.work_on(&kv, &job, now).await {
                    Ok(step) => worked |= step == Step::Worked,
                    Err(e) => tracing::warn!("jobs: job {}: {e}", job.id),
                },
            }
        }
        Ok(worked)
    }

    async fn work_on(&self, kv: &KeyValue, job: &Job, now: i64) -> Result<Step, StoreError> {
        let results = results_of(self.store.as_ref(), &job.id).await?;
        let failed = results.iter().find_map(|(n, r)| match &r.outcome {
            Outcome::Failed(why) => Some(format!("task {n}: {why}")),
            Outcome::Counted(_) => None,
        });
        if failed.is_some() || results.len() as u64 >= u64::from(job.tasks) {
            self.finish(kv, job, &results, failed, now).await?;
            return Ok(Step::Idle);
        }
        let Some(lease) = (self.lease)() else { return Ok(Step::Idle) };
        // A claim of this node's own that is still there is one it dropped (the registry went
        // away mid-count, its gateway restarted and its lease lived on): this worker counts one
        // task at a time, so it holds nothing now, and takes it up again under that claim.
        let mut claimed = BTreeSet::new();
        let mut own = None;
        for kv in self.store.range(&part_prefix("claims", &job.id)).await? {
            let Some(n) = part_number(&kv.key) else { continue };
            let mine = serde_json::from_slice::<Claim>(&kv.value).is_ok_and(|c| c.node == self.node);
            if mine && own.is_none() && !results.contains_key(&n) {
                own = Some((n, kv.mod_revision));
            }
            claimed.insert(n);
        }
        let (n, token) = match own {
            Some(dropped) => dropped,
            None => {
                let Some(n) = (0..job.tasks).find(|n| !results.contains_key(n) && !claimed.contains(n))
                else {
                    return Ok(Step::Idle);
                };
                let claim = Claim { node: self.node.clone(), at: now };
                let key = part_key("claims", &job.id, n);
                let out = self
                    .store
                    .compare_and_set(&key, Expect::Absent, Some(to_json(&claim)), Some(lease))
                    .await?;
                if !out.succeeded {
                    return Ok(Step::Idle); // another worker was quicker
                }
                (n, out.current.map_or(out.revision, |c| c.mod_revision))
            }
        };
        let key = part_key("claims", &job.id, n);
        let task = if own.is_some() { self.task(job, n).await? } else { self.note_claim(job, n).await? };
        let outcome = self.count(job, &task).await?;
        // Fencing: the claim must still be the one made (not lapsed, not another's since).
        let still = self.store.get(&key).await?.is_some_and(|c| c.mod_revision == token);
        if !still {
            tracing::warn!(
                "jobs: lost the claim of task {n} of job {} while counting; its result is dropped",
                job.id
            );
            return Ok(Step::Worked);
        }
        let result = TaskResult { node: self.node.clone(), claim: token, outcome };
        let written = self
            .store
            .compare_and_set(&part_key("results", &job.id, n), Expect::Absent, Some(to_json(&result)), None)
            .await?;
        if !written.succeeded {
            tracing::warn!("jobs: task {n} of job {} had a result already; this one was refused", job.id);
        }
        Ok(Step::Worked)
    }

    /// Task `n` of `job`.
    async fn task(&self, job: &Job, n: u32) -> Result<Task, StoreError> {
        let key = part_key("tasks", &job.id, n);
        let kv = self.store.get(&key).await?.ok_or_else(|| missing(&key))?;
        serde_json::from_slice(&kv.value).map_err(|e| bad(&key, &e))
    }

    /// Records that this node claimed task `n`; a claim after another's is a re-claim (its
    /// worker died or lost it), an event.
    async fn note_claim(&self, job: &Job, n: u32) -> Result<Task, StoreError> {
        let key = part_key("tasks", &job.id, n);
        let kv = self.store.get(&key).await?.ok_or_else(|| missing(&key))?;
        let mut task: Task = serde_json::from_slice(&kv.value).map_err(|e| bad(&key, &e))?;
        if let Some(before) = task.claimed_by.last() {
            let why = format!("task {n} of job {} (claimed by {before}) re-claimed by {}", job.id, self.node);
            self.events.job(JobEvent::TaskReclaimed, job, &why);
        }
        task.claimed_by.push(self.node.clone());
        self.store.put(&key, to_json(&task), None).await?;
        Ok(task)
    }

    /// The counts of `task`, or why the input could not be read.
    async fn count(&self, job: &Job, task: &Task) -> Result<Outcome, StoreError> {
        let first = match job.kind {
            Kind::Image => 0,
            Kind::Bytes => task.start / crate::model::CHUNK_BYTES as u64,
        };
        let last = match job.kind {
            Kind::Image => u64::from(job.chunks),
            Kind::Bytes => task.end.div_ceil(crate::model::CHUNK_BYTES as u64),
        };
        let mut data = Vec::new();
        for c in first..last {
            let key = part_key("chunks", &job.id, u32::try_from(c).unwrap_or(u32::MAX));
            match self.store.get(&key).await? {
                Some(kv) => data.extend_from_slice(&kv.value),
                // The same for every worker: the job cannot be done.
                None => return Ok(Outcome::Failed(format!("chunk {c} of the upload is missing"))),
            }
        }
        let (kind, limits, range) = (job.kind, self.limits, task.start..task.end);
        let offset = first * crate::model::CHUNK_BYTES as u64;
        // Decoding is CPU work: off the runtime's threads.
        let counted = tokio::task::spawn_blocking(move || match kind {
            Kind::Image => count::decode(&data, &limits).map(|img| {
                let rows = u32::try_from(range.start).unwrap_or(u32::MAX)
                    ..u32::try_from(range.end).unwrap_or(u32::MAX);
                count::image_rows(&img, rows)
            }),
            Kind::Bytes => {
                let (s, e) = ((range.start - offset) as usize, (range.end - offset) as usize);
                Ok(count::bytes(data.get(s..e).unwrap_or_default()))
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("counting: {e}")))?;
        Ok(match counted {
            Ok(h) => Outcome::Counted(h),
            Err(why) => Outcome::Failed(why),
        })
    }

    /// Reduces `job` (or fails it) and marks it finished: once, whoever sees it first.
    async fn finish(
        &self,
        kv: &KeyValue,
        job: &Job,
        results: &BTreeMap<u32, TaskResult>,
        failed: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut done = job.clone();
        done.finished = Some(now);
        match failed {
            Some(why) => {
                done.state = JobState::Failed;
                done.reason = Some(why);
            }
            None => {
                let mut sum = Histogram::default();
                for r in results.values() {
                    if let Outcome::Counted(h) = &r.outcome {
                        sum.add(h);
                    }
                }
                done.state = JobState::Done;
                done.result = Some(sum);
            }
        }
        let swapped = self
            .store
            .compare_and_set(&kv.key, Expect::ModRevision(kv.mod_revision), Some(to_json(&done)), None)
            .await?;
        if swapped.succeeded {
            let (event, why) = match done.state {
                JobState::Failed => (JobEvent::Failed, done.reason.clone().unwrap_or_default()),
                _ => (JobEvent::Done, format!("job {} done: {}", job.id, crate::model::tasks(job.tasks))),
            };
            self.events.job(event, &done, &why);
        }
        Ok(())
    }
}

/// Every result of job `id`, by task.
pub(crate) async fn results_of(store: &dyn Store, id: &str) -> Result<BTreeMap<u32, TaskResult>, StoreError> {
    let kvs = store.range(&part_prefix("results", id)).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| Some((part_number(&kv.key)?, serde_json::from_slice(&kv.value).ok()?)))
        .collect())
}

/// Removes `job` and everything of it.
async fn remove(store: &dyn Store, job: &Job) -> Result<(), StoreError> {
    for family in FAMILIES {
        store.delete_prefix(&part_prefix(family, &job.id)).await?;
    }
    if let Some(hash) = &job.idempotency {
        store.delete(&idempotency_key(hash)).await?;
    }
    store.delete(&job_key(&job.id)).await?;
    tracing::info!("jobs: job {} removed after its retention", job.id);
    Ok(())
}

fn missing(key: &str) -> StoreError {
    StoreError::Backend(format!("{key} is missing"))
}

fn bad(key: &str, e: &serde_json::Error) -> StoreError {
    StoreError::Backend(format!("{key}: {e}"))
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

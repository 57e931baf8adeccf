//! Distributed jobs, kept in the registry: a histogram engine (per-channel 256-bin histograms
//! of a PNG or JPEG, or of any bytes) whose tasks survive a worker's death and whose jobs survive
//! any one process, because a job is nothing but its records.
//!
//! - [`model`]: the records and where they live (`services/jobs/…`);
//! - [`count`]: what an upload is (from its header: bombs refused unread) and the counting;
//! - [`submit`]: a job recorded, split into tasks, its upload in chunks;
//! - [`worker`]: claim (bound to the node's lease), count, write once (fenced), reduce, remove;
//! - [`Jobs`]: what the `jobs` service answers: submission, status, result, each only to the
//!   job's owner (and admins).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod count;
pub mod model;
pub mod submit;
pub mod worker;

use std::collections::BTreeSet;
use std::sync::Arc;

use rampart_store::{Store, StoreError};
use serde_json::{Value, json};

pub use count::{InputError, Limits};
pub use model::{Histogram, Job, JobState, Kind};
pub use submit::{Submission, SubmitError};

/// The jobs of a network, as its nodes see them through the registry.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn Store>,
    limits: Limits,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// Who is asking about a job.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    /// The principal's name.
    pub principal: &'a str,
    /// Whether it is an admin (who may read every job).
    pub admin: bool,
}

/// A job's result, as far as there is one.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// No such job, or not this reader's (the same answer: ids reveal nothing).
    NotFound,
    /// Not done (yet, or ever: failed); its status.
    NotDone(Value),
    /// Its result.
    Done(Value),
}

impl Jobs {
    /// Jobs in `store`, uploads under `limits`.
    pub fn new(store: Arc<dyn Store>, limits: Limits) -> Self {
        Jobs { store, limits }
    }

    /// The registry they are kept in.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The limits uploads are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Submits a job: recorded, split and queued (or the one its key already gave).
    pub async fn submit(&self, s: &Submission<'_>) -> Result<Job, SubmitError> {
        submit::submit(self.store.as_ref(), s, &self.limits).await
    }

    /// The job `id` if `reader` may see it.
    async fn job(&self, id: &str, reader: Reader<'_>) -> Result<Option<Job>, StoreError> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let Some(kv) = self.store.get(&model::job_key(id)).await? else { return Ok(None) };
        let job: Job =
            serde_json::from_slice(&kv.value).map_err(|e| StoreError::Backend(format!("job {id}: {e}")))?;
        Ok((job.owner == reader.principal || reader.admin).then_some(job))
    }

    /// `GET /jobs/<id>`: where the job is, or `None` for the reader.
    pub async fn status(&self, id: &str, reader: Reader<'_>) -> Result<Option<Value>, StoreError> {
        let Some(job) = self.job(id, reader).await? else { return Ok(None) };
        Ok(Some(self.status_of(&job).await?))
    }

    async fn status_of(&self, job: &Job) -> Result<Value, StoreError> {
        let results = worker::results_of(self.store.as_ref(), &job.id).await?;
        let claims = self.store.range(&model::part_prefix("claims", &job.id)).await?;
        let mut nodes: BTreeSet<String> = results.values().map(|r| r.node.clone()).collect();
        // The nodes holding a claim of a task not done yet: working on it now.
        let mut working = BTreeSet::new();
        for kv in &claims {
            let Ok(claim) = serde_json::from_slice::<model::Claim>(&kv.value) else { continue };
            if model::part_number(&kv.key).is_some_and(|n| !results.contains_key(&n)) {
                working.insert(claim.node.clone());
            }
            nodes.insert(claim.node);
        }
        let state = match job.state {
            JobState::Queued if !results.is_empty() || !claims.is_empty() => JobState::Running,
            s => s,
        };
        let mut v = json!({
            "id": job.id,
            "state": state,
            "kind": job.kind,
            "tasks": {"done": results.len(), "total": job.tasks},
            "nodes": nodes,
            "working": working,
            "submitted": rfc3339(job.submitted),
        });
        if let Some(f) = job.finished {
            v["finished"] = json!(rfc3339(f));
        }
        if let Some(why) = &job.reason {
            v["reason"] = json!(why);
        }
        Ok(v)
    }

    /// The status of the `max` newest jobs, newest first (every owner's: for an admin's view).
    pub async fn list(&self, max: usize) -> Result<Vec<Value>, StoreError> {
        let mut jobs: Vec<Job> = self
            .store
            .range(&model::jobs_prefix())
            .await?
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        jobs.sort_by(|a, b| b.submitted.cmp(&a.submitted).then_with(|| a.id.cmp(&b.id)));
        let mut out = Vec::new();
        for job in jobs.iter().take(max) {
            let mut v = self.status_of(job).await?;
            v["owner"] = json!(job.owner);
            out.push(v);
        }
        Ok(out)
    }

    /// `GET /jobs/<id>/result`.
    pub async fn result(&self, id: &str, reader: Reader<'_>) -> Result<Outcome, StoreError> {
        let Some(job) = self.job(id, reader).await? else { return Ok(Outcome::NotFound) };
        let Some(histogram) = &job.result else { return Ok(Outcome::NotDone(self.status_of(&job).await?)) };
        Ok(Outcome::Done(match job.kind {
            Kind::Image => json!({
                "kind": "image",
                "width": job.width,
                "height": job.height,
                "channels": histogram.channels,
            }),
            Kind::Bytes => json!({
                "kind": "bytes",
                "bins": histogram.channels.get("bytes").cloned().unwrap_or_default(),
            }),
        }))
    }
}

/// `secs` since the Unix epoch as RFC 3339.
fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

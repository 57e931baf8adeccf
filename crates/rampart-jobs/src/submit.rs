//! A job submitted: the upload in chunks, the tasks, then the job's record (a worker looks only
//! at records, so it never sees a job whose parts are not all there). With an
//! `Idempotency-Key`, the same owner and key give the same job, even when the first attempt
//! stopped half way (its parts are written again, under the same id).

use rampart_store::{Expect, Store, StoreError};

use crate::count::{InputError, Limits, inspect, split};
use crate::model::{CHUNK_BYTES, Job, JobState, Kind, Task, idempotency_key, job_key, part_key};

/// The most tasks a job is split into.
pub const MAX_TASKS: u32 = 1024;
/// About how many bytes one task counts when the submitter does not say.
const BYTES_PER_TASK: u64 = 1 << 20;
/// About how many pixels. Each task decodes the whole image (PNG and JPEG decode from the
/// start), so bands pay off only for large images; a photo is one task by default.
const PIXELS_PER_TASK: u64 = 16 << 20;

/// Why a job was not submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The upload was refused.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The registry could not be written.
    #[error("the registry: {0}")]
    Store(#[from] StoreError),
}

/// What was asked.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The principal submitting.
    pub owner: &'a str,
    /// The upload.
    pub body: &'a [u8],
    /// Its `Idempotency-Key`, if it had one.
    pub key: Option<&'a str>,
    /// How many tasks to split it into (at most [`MAX_TASKS`], and one row or byte each);
    /// `None`: about 16 megapixels (or a mebibyte) each.
    pub tasks: Option<u32>,
    /// When, seconds since the Unix epoch.
    pub now: i64,
}

/// Records the job of `s` in `store` and returns it (the one already there for its key).
pub async fn submit(store: &dyn Store, s: &Submission<'_>, limits: &Limits) -> Result<Job, SubmitError> {
    let inspected = inspect(s.body, limits)?;
    let hash = s.key.map(|k| key_hash(s.owner, k));
    let id = match &hash {
        Some(hash) => {
            let fresh = new_id()?;
            let key = idempotency_key(hash);
            let out =
                store.compare_and_set(&key, Expect::Absent, Some(fresh.clone().into_bytes()), None).await?;
            match (out.succeeded, out.current) {
                (false, Some(kv)) => {
                    let id = String::from_utf8_lossy(&kv.value).into_owned();
                    if let Some(kv) = store.get(&job_key(&id)).await? {
                        return serde_json::from_slice(&kv.value)
                            .map_err(|e| SubmitError::Store(StoreError::Backend(format!("job {id}: {e}"))));
                    }
                    id // its first attempt stopped before the record: write it all again
                }
                _ => fresh,
            }
        }
        None => new_id()?,
    };
    let (units, dimensions) = match inspected.dimensions {
        Some((w, h)) => (u64::from(h), Some((w, h))),
        None => (s.body.len() as u64, None),
    };
    let per_task = match dimensions {
        Some((w, _)) => (PIXELS_PER_TASK / u64::from(w)).max(1),
        None => BYTES_PER_TASK,
    };
    let wanted = s.tasks.unwrap_or_else(|| u32::try_from(units.div_ceil(per_task)).unwrap_or(MAX_TASKS));
    let ranges = split(units, wanted.clamp(1, MAX_TASKS));
    let mut chunks = 0u32;
    for (n, chunk) in s.body.chunks(CHUNK_BYTES).enumerate() {
        chunks = u32::try_from(n + 1).unwrap_or(u32::MAX);
        store.put(&part_key("chunks", &id, chunks - 1), chunk.to_vec(), None).await?;
    }
    for (n, r) in ranges.iter().enumerate() {
        let task = Task { start: r.start, end: r.end, claimed_by: Vec::new() };
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        store.put(&part_key("tasks", &id, n), to_json(&task), None).await?;
    }
    let job = Job {
        id: id.clone(),
        owner: s.owner.to_owned(),
        kind: inspected.kind,
        size: s.body.len() as u64,
        chunks,
        tasks: u32::try_from(ranges.len()).unwrap_or(MAX_TASKS),
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
        state: JobState::Queued,
        submitted: s.now,
        finished: None,
        reason: None,
        result: None,
        idempotency: hash,
    };
    store.put(&job_key(&id), to_json(&job), None).await?;
    debug_assert!(job.kind == Kind::Bytes || job.width.is_some());
    Ok(job)
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A new job id: 128 random bits, so that ids reveal nothing and cannot be guessed.
fn new_id() -> Result<String, StoreError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| StoreError::Backend(format!("no randomness: {e}")))?;
    Ok(hex::encode(id))
}

/// Where an owner's key is kept: a hash, so that neither is readable in the registry's keys.
fn key_hash(owner: &str, key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(owner.as_bytes());
    ctx.update(&[0]);
    ctx.update(key.as_bytes());
    hex::encode(ctx.finish())
}

//! What a job is in the registry, and where each of its parts lives. Everything is under
//! `services/jobs/`, the `jobs` service's own state, which only nodes hosting it may touch:
//!
//! - `jobs/<id>`: the [`Job`] (written last at submission: a worker sees a job only whole);
//! - `chunks/<id>/<n>`: the upload, in chunks under the registry's value limit;
//! - `tasks/<id>/<n>`: each [`Task`] (a band of rows, or a byte range) and who claimed it;
//! - `claims/<id>/<n>`: a [`Claim`], bound to the claiming node's lease: it vanishes with it;
//! - `results/<id>/<n>`: a [`TaskResult`], written once (put-if-absent);
//! - `keys/<hash>`: the job of an `Idempotency-Key`, by owner.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the jobs service keeps its state.
pub const PREFIX: &str = "services/jobs/";
/// The most bytes of an upload per chunk (the registry takes values of up to 1 MiB; its API
/// carries them in base64).
pub const CHUNK_BYTES: usize = 512 << 10;

/// The parts of a job other than its record, each under `<family>/<id>/`.
pub(crate) const FAMILIES: [&str; 4] = ["chunks", "tasks", "claims", "results"];

pub(crate) fn jobs_prefix() -> String {
    format!("{PREFIX}jobs/")
}
pub(crate) fn job_key(id: &str) -> String {
    format!("{PREFIX}jobs/{id}")
}
pub(crate) fn part_prefix(family: &str, id: &str) -> String {
    format!("{PREFIX}{family}/{id}/")
}
pub(crate) fn part_key(family: &str, id: &str, n: u32) -> String {
    format!("{PREFIX}{family}/{id}/{n:06}")
}
pub(crate) fn idempotency_key(hash: &str) -> String {
    format!("{PREFIX}keys/{hash}")
}

/// The number at the end of a part's key.
pub(crate) fn part_number(key: &str) -> Option<u32> {
    key.rsplit('/').next()?.parse().ok()
}

/// "1 task", "12 tasks": for what a person reads.
pub fn tasks(n: u32) -> String {
    if n == 1 { "1 task".to_owned() } else { format!("{n} tasks") }
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A PNG or JPEG: 256 bins per channel of its decoded pixels.
    Image,
    /// Anything else: 256 bins of its bytes.
    Bytes,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// No task claimed yet.
    Queued,
    /// Some task claimed or done.
    Running,
    /// Reduced: its result is there.
    Done,
    /// A task could not be done (a corrupt input): its reason is there.
    Failed,
}

/// A job's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id (32 hexadecimal digits).
    pub id: String,
    /// The principal that submitted it: the only one, with admins, who may read it.
    pub owner: String,
    /// What is counted.
    pub kind: Kind,
    /// The upload's size, bytes.
    pub size: u64,
    /// How many chunks hold it.
    pub chunks: u32,
    /// How many tasks it was split into.
    pub tasks: u32,
    /// An image's width and height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// See `width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Queued until finished (running is seen from its tasks, never written).
    pub state: JobState,
    /// When it was submitted, seconds since the Unix epoch.
    pub submitted: i64,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its histogram, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Histogram>,
    /// The hash its `Idempotency-Key` is kept under, to remove it with the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<String>,
}

/// One task: rows `[start, end)` of an image, or bytes `[start, end)` of the upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The first row or byte.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// The nodes that claimed it, in order (more than one: a worker died or lost its claim).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed_by: Vec<String>,
}

/// A node's claim of a task, attached to its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The node.
    pub node: String,
    /// When, seconds since the Unix epoch.
    pub at: i64,
}

/// What a task came to, written once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The node that did it.
    pub node: String,
    /// The revision of its claim: the fencing token it held when it wrote.
    pub claim: u64,
    /// Its bins, or why it could not count.
    pub outcome: Outcome,
}

/// A task's bins, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Counted.
    Counted(Histogram),
    /// The input could not be read (it is the same for every worker: the job fails).
    Failed(String),
}

/// 256 bins per channel: `r`, `g`, `b` for colour images, `l` for grey ones, `bytes` for bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Each channel's bins.
    pub channels: BTreeMap<String, Vec<u64>>,
}

impl Histogram {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Histogram) {
        for (name, bins) in &other.channels {
            let mine = self.channels.entry(name.clone()).or_insert_with(|| vec![0; 256]);
            for (m, b) in mine.iter_mut().zip(bins) {
                *m += b;
            }
        }
    }
}

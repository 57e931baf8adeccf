//! The engine over a real embedded registry: workers share a job and its result is the one
//! process's count; a worker whose lease lapses loses its claim, its task is re-claimed by
//! another, and a late result of the first is refused; a corrupt image fails the job.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_jobs::count::{self, Limits};
use rampart_jobs::model::{Histogram, TaskResult};
use rampart_jobs::worker::{Events, JobEvent, Worker};
use rampart_jobs::{JobState, Jobs, Outcome, Reader, Submission};
use rampart_store::{EmbeddedStore, Expect, LeaseId, Store};

#[derive(Default)]
struct Heard(Mutex<Vec<(JobEvent, String)>>);

impl Events for Heard {
    fn job(&self, event: JobEvent, _job: &rampart_jobs::Job, why: &str) {
        self.0.lock().unwrap().push((event, why.to_owned()));
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, (y * 3) as u8, (x ^ y) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    heard: Arc<Heard>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("r.redb")).unwrap());
        World { _dir: dir, store, heard: Arc::default() }
    }

    async fn worker(&self, node: &str) -> (Worker, LeaseId) {
        let lease = self.store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let of = Arc::new(move || Some(lease));
        let w = Worker::new(
            self.store.clone(),
            node.into(),
            of,
            (Limits::default(), Duration::from_secs(3600)),
            self.heard.clone(),
        );
        (w, lease)
    }
}

impl World {
    /// Task 0 of job `id` claimed by `node` under `lease`, as its worker would have.
    async fn claim_by_hand(&self, id: &str, node: &str, lease: LeaseId) {
        let claim = format!("services/jobs/claims/{id}/000000");
        let value = serde_json::to_vec(&serde_json::json!({"node": node, "at": 1})).unwrap();
        let out = self.store.compare_and_set(&claim, Expect::Absent, Some(value), Some(lease)).await;
        assert!(out.unwrap().succeeded);
    }
}

const ALICE: Reader<'static> = Reader { principal: "user/alice", admin: false };

#[tokio::test]
async fn workers_share_a_job_and_its_histogram_is_the_one_process_count() {
    let w = World::new();
    let jobs = Jobs::new(w.store.clone(), Limits::default());
    let upload = png(64, 48);
    let s = Submission { owner: "user/alice", body: &upload, key: Some("k1"), tasks: Some(12), now: 1 };
    let job = jobs.submit(&s).await.unwrap();
    assert_eq!(job.tasks, 12);
    // The same key gives the same job; another owner's key is its own.
    assert_eq!(jobs.submit(&s).await.unwrap().id, job.id);
    let other = Submission { owner: "user/bob", ..s };
    assert_ne!(jobs.submit(&other).await.unwrap().id, job.id);
    assert_eq!(jobs.status(&job.id, ALICE).await.unwrap().unwrap()["state"], "queued");
    let bob = Reader { principal: "user/bob", admin: false };
    assert_eq!(jobs.status(&job.id, bob).await.unwrap(), None);
    assert_eq!(jobs.result(&job.id, bob).await.unwrap(), Outcome::NotFound);

    let workers = [w.worker("n1").await.0, w.worker("n2").await.0, w.worker("n3").await.0];
    let mut rounds = 0;
    while jobs.status(&job.id, ALICE).await.unwrap().unwrap()["state"] != "done" {
        for worker in &workers {
            worker.tick(2).await.unwrap();
        }
        rounds += 1;
        assert!(rounds < 100, "never done");
    }
    let status = jobs.status(&job.id, ALICE).await.unwrap().unwrap();
    assert_eq!(status["tasks"], serde_json::json!({"done": 12, "total": 12}));
    assert_eq!(status["nodes"], serde_json::json!(["n1", "n2", "n3"]));
    let Outcome::Done(result) = jobs.result(&job.id, ALICE).await.unwrap() else { panic!("not done") };
    let whole = count::image_rows(&count::decode(&upload, &Limits::default()).unwrap(), 0..48);
    assert_eq!(result["kind"], "image");
    assert_eq!(result["channels"], serde_json::to_value(&whole.channels).unwrap());
    for bins in whole.channels.values() {
        assert_eq!(bins.iter().sum::<u64>(), 64 * 48);
    }
    // An admin reads it too.
    let admin = Reader { principal: "spiffe://local/admin/root", admin: true };
    assert!(matches!(jobs.result(&job.id, admin).await.unwrap(), Outcome::Done(_)));
    assert!(w.heard.0.lock().unwrap().iter().any(|(e, _)| *e == JobEvent::Done));
}

#[tokio::test]
async fn a_claim_that_lapses_is_claimed_again_and_a_late_result_is_refused() {
    let w = World::new();
    let jobs = Jobs::new(w.store.clone(), Limits::default());
    let upload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let s = Submission { owner: "user/alice", body: &upload, key: None, tasks: Some(2), now: 1 };
    let job = jobs.submit(&s).await.unwrap();
    // n1 claims task 0 under its lease and dies before writing: its lease is revoked.
    let (_, lease) = w.worker("n1").await;
    w.claim_by_hand(&job.id, "n1", lease).await;
    let task = format!("services/jobs/tasks/{}/000000", job.id);
    let mut t: serde_json::Value =
        serde_json::from_slice(&w.store.get(&task).await.unwrap().unwrap().value).unwrap();
    t["claimed_by"] = serde_json::json!(["n1"]);
    w.store.put(&task, serde_json::to_vec(&t).unwrap(), None).await.unwrap();
    let (n2, _) = w.worker("n2").await;
    n2.tick(2).await.unwrap(); // task 1: task 0 is held
    assert!(w.heard.0.lock().unwrap().is_empty());
    w.store.revoke_lease(lease).await.unwrap();
    while jobs.status(&job.id, ALICE).await.unwrap().unwrap()["state"] != "done" {
        assert!(
            n2.tick(3).await.unwrap()
                || jobs.status(&job.id, ALICE).await.unwrap().unwrap()["state"] == "done"
        );
    }
    let heard = w.heard.0.lock().unwrap().clone();
    assert!(
        heard.iter().any(|(e, why)| *e == JobEvent::TaskReclaimed && why.contains("claimed by n1")),
        "{heard:?}"
    );
    // n1's result, arriving late, is refused: the first one stays.
    let late = TaskResult {
        node: "n1".into(),
        claim: 1,
        outcome: rampart_jobs::model::Outcome::Counted(Histogram::default()),
    };
    let result = format!("services/jobs/results/{}/000000", job.id);
    let out =
        w.store.compare_and_set(&result, Expect::Absent, Some(serde_json::to_vec(&late).unwrap()), None);
    assert!(!out.await.unwrap().succeeded);
    let Outcome::Done(v) = jobs.result(&job.id, ALICE).await.unwrap() else { panic!() };
    assert_eq!(v["bins"], serde_json::to_value(&count::bytes(&upload).channels["bytes"]).unwrap());
}

#[tokio::test]
async fn a_corrupt_image_fails_its_job_with_a_reason_and_finished_jobs_are_removed_after_retention() {
    let w = World::new();
    let jobs = Jobs::new(w.store.clone(), Limits::default());
    // A JPEG whose header reads and whose data stops short.
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([((x * 31) ^ (y * 17)) as u8, (x * y) as u8, (x + y) as u8])
    })
    .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
    .unwrap();
    jpeg.truncate(jpeg.len() * 3 / 5);
    let s = Submission { owner: "user/alice", body: &jpeg, key: None, tasks: Some(4), now: 1 };
    let job = jobs.submit(&s).await.unwrap();
    let (n1, _) = w.worker("n1").await;
    for _ in 0..10 {
        n1.tick(5).await.unwrap();
    }
    let status = jobs.status(&job.id, ALICE).await.unwrap().unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status["reason"].as_str().unwrap().starts_with("task "), "{status}");
    assert!(matches!(jobs.result(&job.id, ALICE).await.unwrap(), Outcome::NotDone(_)));
    // Past the retention (an hour here), nothing of it is left.
    n1.tick(5 + 3600).await.unwrap();
    assert!(w.store.range("services/jobs/").await.unwrap().is_empty());
    assert_eq!(JobState::Failed, serde_json::from_value(status["state"].clone()).unwrap());
}

#[tokio::test]
async fn a_worker_takes_up_again_a_claim_of_its_own_it_dropped() {
    let w = World::new();
    let jobs = Jobs::new(w.store.clone(), Limits::default());
    let upload = vec![1u8; 10_000];
    let s = Submission { owner: "user/alice", body: &upload, key: None, tasks: Some(1), now: 1 };
    let job = jobs.submit(&s).await.unwrap();
    // n1 claimed the task and lost the registry mid-count; its lease lived on.
    let (n1, lease) = w.worker("n1").await;
    w.claim_by_hand(&job.id, "n1", lease).await;
    let (n2, _) = w.worker("n2").await;
    assert!(!n2.tick(2).await.unwrap(), "another node leaves a live claim alone");
    assert!(n1.tick(2).await.unwrap(), "its own node takes it up again");
    n1.tick(2).await.unwrap();
    assert_eq!(jobs.status(&job.id, ALICE).await.unwrap().unwrap()["state"], "done");
}

#[tokio::test]
async fn a_job_missing_a_chunk_fails_and_holds_up_no_other() {
    let w = World::new();
    let jobs = Jobs::new(w.store.clone(), Limits::default());
    let upload = vec![3u8; 1000];
    let first = Submission { owner: "user/alice", body: &upload, key: None, tasks: Some(1), now: 1 };
    let broken = jobs.submit(&first).await.unwrap();
    w.store.delete(&format!("services/jobs/chunks/{}/000000", broken.id)).await.unwrap();
    let second = Submission { now: 2, ..first };
    let fine = jobs.submit(&second).await.unwrap();
    let (n1, _) = w.worker("n1").await;
    for _ in 0..6 {
        n1.tick(3).await.unwrap();
    }
    let status = jobs.status(&broken.id, ALICE).await.unwrap().unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status["reason"].as_str().unwrap().contains("missing"), "{status}");
    assert_eq!(jobs.status(&fine.id, ALICE).await.unwrap().unwrap()["state"], "done");
}

//! `jobs`: distributed histogram jobs ([`rampart_jobs`]) as a service, and the node's worker.
//!
//! - `POST /jobs/histogram[?tasks=N]` with a PNG, a JPEG or any bytes → 202 `{"id"}` at once
//!   (the same `Idempotency-Key` gives the same job); 413 over the size limit, 422 for an
//!   image whose header promises too much or does not read;
//! - `GET /jobs/<id>` → its status; `GET /jobs/<id>/result` → its histogram, 409 while not done;
//! - a job is read only by its owner and admins: 404 to anyone else, so ids reveal nothing.
//!
//! Every node hosting `jobs` also works on them ([`rampart_jobs::worker`]), claiming tasks
//! under its registration's lease.

use std::sync::Arc;

use http::{Method, StatusCode};
use rampart_events::EventKind;
use rampart_jobs::worker::{Events, JobEvent};
use rampart_jobs::{InputError, Jobs, Reader, Submission, SubmitError};
use rampart_store::StoreError;
use serde_json::json;

use crate::registration::{Membership, Report};
use crate::service::{Answer, Answering, Call, Service};

/// The `jobs` service.
#[derive(Debug)]
pub struct JobsService {
    jobs: Jobs,
    /// Where submissions are reported (set once the node's membership exists).
    events: std::sync::OnceLock<Arc<Membership>>,
}

impl JobsService {
    /// Jobs kept through `jobs`.
    pub fn new(jobs: Jobs) -> Self {
        JobsService { jobs, events: std::sync::OnceLock::new() }
    }

    /// Reports submissions to `membership`'s gateway, and starts this node's worker there:
    /// claims under its lease, finished jobs kept `retention`.
    pub fn work(&self, membership: Arc<Membership>, node: String, retention: std::time::Duration) {
        let _ = self.events.set(membership.clone());
        let of = membership.clone();
        let lease: rampart_jobs::worker::LeaseOf = Arc::new(move || of.lease());
        let worker = rampart_jobs::worker::Worker::new(
            self.jobs.store(),
            node,
            lease,
            (*self.jobs.limits(), retention),
            membership,
        );
        tokio::spawn(worker.run());
    }

    async fn answer(&self, call: Call<'_>) -> Answer {
        let reader = Reader { principal: call.principal, admin: call.role == "admin" };
        let segments: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        match (call.method, segments.as_slice()) {
            (&Method::POST, ["histogram"]) => self.submit(&call).await,
            (&Method::GET, [id]) => match self.jobs.status(id, reader).await {
                Ok(Some(status)) => Answer::json(StatusCode::OK, &status),
                Ok(None) => not_found(),
                Err(e) => unavailable(&e),
            },
            (&Method::GET, [id, "result"]) => match self.jobs.result(id, reader).await {
                Ok(rampart_jobs::Outcome::Done(v)) => Answer::json(StatusCode::OK, &v),
                Ok(rampart_jobs::Outcome::NotDone(status)) => {
                    let mut v =
                        json!({"error": "not_done", "reason": "the job is not done", "status": status});
                    if status["state"] == "failed" {
                        v["reason"] =
                            json!(format!("the job failed: {}", status["reason"].as_str().unwrap_or("")));
                    }
                    Answer::json(StatusCode::CONFLICT, &v)
                }
                Ok(rampart_jobs::Outcome::NotFound) => not_found(),
                Err(e) => unavailable(&e),
            },
            (_, ["histogram"] | [_] | [_, "result"]) => Answer::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "see the jobs service's paths",
            ),
            _ => Answer::error(
                StatusCode::NOT_FOUND,
                "not_found",
                "POST /jobs/histogram, GET /jobs/<id>, GET /jobs/<id>/result",
            ),
        }
    }

    async fn submit(&self, call: &Call<'_>) -> Answer {
        let tasks = match query_tasks(call.query) {
            Ok(t) => t,
            Err(why) => return Answer::error(StatusCode::BAD_REQUEST, "bad_request", why),
        };
        let s = Submission {
            owner: call.principal,
            body: &call.body,
            key: call.idempotency_key,
            tasks,
            now: rampart_jobs::worker::now(),
        };
        match self.jobs.submit(&s).await {
            Ok(job) => {
                if let Some(m) = self.events.get() {
                    let why = format!(
                        "job {} submitted: {} bytes, {}",
                        job.id,
                        job.size,
                        rampart_jobs::model::tasks(job.tasks)
                    );
                    report(m, EventKind::JobSubmitted, (call.client, &job.owner), &why);
                }
                Answer::json(StatusCode::ACCEPTED, &json!({"id": job.id}))
            }
            Err(SubmitError::Input(e)) => {
                let why = e.to_string();
                if let Some(m) = self.events.get() {
                    report(
                        m,
                        EventKind::JobRefused,
                        (call.client, call.principal),
                        &format!("upload refused: {why}"),
                    );
                }
                match e {
                    InputError::TooLarge { .. } => {
                        Answer::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &why)
                    }
                    _ => Answer::error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", &why),
                }
            }
            Err(SubmitError::Store(e)) => unavailable(&e),
        }
    }
}

impl Service for JobsService {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(self.answer(call))
    }
}

/// `tasks=N` of the query, if given.
fn query_tasks(query: Option<&str>) -> Result<Option<u32>, &'static str> {
    let Some(v) = query.unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("tasks=")) else {
        return Ok(None);
    };
    match v.parse::<u32>() {
        Ok(n) if (1..=rampart_jobs::submit::MAX_TASKS).contains(&n) => Ok(Some(n)),
        _ => Err("tasks must be a number from 1 to 1024"),
    }
}

fn not_found() -> Answer {
    Answer::error(StatusCode::NOT_FOUND, "not_found", "no such job")
}

fn unavailable(e: &StoreError) -> Answer {
    let mut a = Answer::error(StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable", &e.to_string());
    a.registry_down = true;
    a
}

/// The node's worker's events, for the gateway's audit log.
impl Events for Membership {
    fn job(&self, event: JobEvent, job: &rampart_jobs::Job, why: &str) {
        let kind = match event {
            JobEvent::TaskReclaimed => EventKind::JobTaskReclaimed,
            JobEvent::Done => EventKind::JobDone,
            JobEvent::Failed => EventKind::JobFailed,
        };
        report(self, kind, ("jobs", &job.owner), why);
    }
}

/// Reports event `kind` to the gateway: from `source` (the client's address, or `jobs` for the
/// worker's own), about `principal`'s job.
fn report(m: &Membership, kind: EventKind, (source, principal): (&str, &str), why: &str) {
    tracing::info!("{}: {why}", kind.as_str());
    let (m, source, owner, why) = (m.clone(), source.to_owned(), principal.to_owned(), why.to_owned());
    tokio::spawn(async move {
        let source = if source.is_empty() { "jobs" } else { source.as_str() };
        let r = Report { kind, source, principal: Some(&owner), service: Some("jobs"), reason: &why };
        m.report_event(r).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_bounded() {
        assert_eq!(query_tasks(Some("tasks=12")), Ok(Some(12)));
        assert_eq!(query_tasks(None), Ok(None));
        assert!(query_tasks(Some("tasks=0")).is_err() && query_tasks(Some("tasks=5000")).is_err());
    }
}

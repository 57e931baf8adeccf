//! Trying a request on a service's targets until one answers: each attempt ends in a typed
//! [`Outcome`], and whether another target is tried is decided in one place, [`rule`].
//!
//! A request that never reached a target (connect refused, TLS refused) is tried elsewhere
//! whatever its method. Once a target may have acted on it (it failed or hung after the request
//! was sent, or answered 502/503/504), it is tried elsewhere only if it is safe to repeat (an
//! idempotent method, or an `Idempotency-Key`); otherwise the caller is told the outcome is
//! unknown. Retries are capped, draw on the budget, are jittered and stop at the deadline.

use http::{Request, Response, StatusCode};
use rampart_net::Body;
use tokio::time::Instant;

use super::outgoing::finish;
use super::retry::{RetryBudget, RetryLimits, backoff};
use crate::reply;
use crate::upstream::{self, Failure, SendError, Target, TargetEvents, Transport, Upstreams, balance};

/// How one attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The target answered.
    Answered(Response<Body>),
    /// The target answered 502, 503 or 504: it may have acted, and another may do better.
    Unavailable(Response<Body>),
    /// The target could not reach the registry (`Rampart-Registry`): not its fault, and no
    /// other target would do better (they share it). Passed on, blaming nobody.
    RegistryDown(Response<Body>),
    /// The request never reached the target.
    NotSent(SendError),
    /// The target failed after the request was sent: it may have acted.
    MayHaveActed(SendError),
    /// No answer within the attempt's time.
    TimedOut,
}

impl Outcome {
    /// The outcome of an attempt that ended in `result` (`None`: it timed out).
    pub fn of(result: Option<Result<Response<Body>, SendError>>) -> Self {
        match result {
            None => Outcome::TimedOut,
            Some(Ok(r)) if r.headers().contains_key(rampart_net::contract::header::REGISTRY) => {
                Outcome::RegistryDown(r)
            }
            Some(Ok(r)) if matches!(r.status().as_u16(), 502..=504) => Outcome::Unavailable(r),
            Some(Ok(r)) => Outcome::Answered(r),
            Some(Err(e)) if e.maybe_sent => Outcome::MayHaveActed(e),
            Some(Err(e)) => Outcome::NotSent(e),
        }
    }

    fn failure(&self) -> Option<Failure<'_>> {
        match self {
            Outcome::Unavailable(r) => Some(Failure::Status(r.status())),
            Outcome::NotSent(e) | Outcome::MayHaveActed(e) => Some(Failure::Send(e)),
            Outcome::TimedOut => Some(Failure::TimedOut),
            Outcome::Answered(_) | Outcome::RegistryDown(_) => None,
        }
    }

    /// The caller's answer when this attempt is the last; `upstreams` names the target.
    fn into_finished(self, upstreams: &dyn Upstreams, target: &Target, attempts: u32) -> Finished {
        let who = upstreams.describe(target);
        Finished::Reply(match self {
            Outcome::Answered(r) | Outcome::Unavailable(r) => return Finished::Answered(r, attempts),
            Outcome::RegistryDown(r) => finish(r, attempts),
            Outcome::NotSent(_) => upstreams.unreachable(target),
            Outcome::MayHaveActed(_) => reply::error(
                StatusCode::BAD_GATEWAY,
                "outcome_unknown",
                &format!(
                    "{who} failed after receiving the request; it may or may not have acted on it, so it was not \
                     repeated (send an Idempotency-Key to make such requests safe to retry)"
                ),
            ),
            Outcome::TimedOut => reply::error(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                &format!(
                    "{who} did not answer in time; the outcome is unknown and the request was not repeated"
                ),
            ),
        })
    }
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The target's answer is the caller's.
    Deliver,
    /// Try another target if the limits allow, after a back-off or at once.
    Retry {
        /// Wait [`backoff`] first (the target failed fast: do not hammer the next at once).
        backoff: bool,
    },
    /// Stop: the attempt's failure is the caller's answer.
    GiveUp,
}

/// The retry rule: what follows `outcome` for a request that is `replay_safe` (idempotent, or
/// carrying an `Idempotency-Key`) or not.
pub fn rule(outcome: &Outcome, replay_safe: bool) -> Verdict {
    match outcome {
        Outcome::Answered(_) | Outcome::RegistryDown(_) => Verdict::Deliver,
        Outcome::NotSent(_) => Verdict::Retry { backoff: true },
        Outcome::Unavailable(_) if replay_safe => Verdict::Retry { backoff: false },
        // The target's own 5xx answer is all the caller can be told.
        Outcome::Unavailable(_) => Verdict::Deliver,
        Outcome::MayHaveActed(_) if replay_safe => Verdict::Retry { backoff: true },
        Outcome::TimedOut if replay_safe => Verdict::Retry { backoff: false },
        Outcome::MayHaveActed(_) | Outcome::TimedOut => Verdict::GiveUp,
    }
}

/// How a request ended.
#[derive(Debug)]
pub enum Finished {
    /// A target's answer, after this many attempts, its headers not yet cleaned: the answer
    /// an `Idempotency-Key` may record.
    Answered(Response<Body>, u32),
    /// Anything else, ready to send.
    Reply(Response<Body>),
}

/// The request each attempt sends: the same one, addressed to its target.
pub trait RequestFor: Sync {
    /// The request for `target`.
    fn to(&self, target: &Target) -> Request<Body>;
}

/// What the attempts of a request draw on.
pub struct Attempts<'a> {
    /// Where the service's targets come from.
    pub upstreams: &'a dyn Upstreams,
    /// How a request reaches one.
    pub transport: &'a dyn Transport,
    /// Who hears of ejections and returns.
    pub events: &'a dyn TargetEvents,
    /// The retry budget all requests share.
    pub budget: &'a RetryBudget,
    /// This request's limits.
    pub limits: RetryLimits,
}

impl std::fmt::Debug for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Attempts<'_> {
    /// Tries `service`'s targets with the requests `request` makes for each, until one answers
    /// or the rule, the limits or the targets run out.
    pub async fn run(&self, service: &str, replay_safe: bool, request: &dyn RequestFor) -> Finished {
        self.budget.request();
        let deadline = Instant::now() + self.limits.deadline;
        let mut tried: Vec<String> = Vec::new();
        // A target's own 502/503/504, passed on if no other target does better.
        let mut last: Option<Response<Body>> = None;
        loop {
            let targets = self.upstreams.targets(service);
            let Some(target) = balance::pick(&targets, &tried) else {
                return Finished::Reply(last.unwrap_or_else(|| {
                    reply::unavailable(&format!("no live node hosts {service:?} right now"))
                }));
            };
            tried.push(target.name.clone());
            let attempt = tried.len() as u32;
            let try_timeout = self.limits.try_timeout.min(deadline.saturating_duration_since(Instant::now()));
            let in_flight = target.health.start();
            let sent = tokio::time::timeout(try_timeout, self.transport.send(request.to(target))).await;
            let outcome = Outcome::of(sent.ok());
            let verdict = rule(&outcome, replay_safe);
            match (outcome.failure(), verdict) {
                (_, Verdict::Deliver) if matches!(outcome, Outcome::RegistryDown(_)) => drop(in_flight),
                (_, Verdict::Deliver) | (None, _) => {
                    upstream::answered(self.events, target, in_flight, "answered again")
                }
                (Some(failure), _) => {
                    upstream::failed(self.upstreams, self.events, target, in_flight, failure)
                }
            }
            let Verdict::Retry { backoff: wait } = verdict else {
                return outcome.into_finished(self.upstreams, target, attempt);
            };
            if !self.may_retry(attempt, deadline) {
                return match outcome {
                    Outcome::Unavailable(r) => Finished::Reply(finish(r, attempt)),
                    other => other.into_finished(self.upstreams, target, attempt),
                };
            }
            if let Outcome::Unavailable(r) = outcome {
                last = Some(finish(r, attempt));
            }
            if wait {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }

    /// Whether another attempt is allowed: under the attempt cap, before the deadline, and
    /// within the retry budget (which this call draws on).
    fn may_retry(&self, attempt: u32, deadline: Instant) -> bool {
        attempt < self.limits.max_attempts && Instant::now() < deadline && self.budget.try_retry()
    }
}

#[cfg(test)]
mod tests;

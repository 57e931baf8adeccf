//! The retry rule, the budget, the back-off, the deadline and ejection, in-process: targets
//! that refuse, break, hang or answer on cue, and virtual time.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use rampart_net::Body;

use super::*;
use crate::upstream::health::InFlight;
use crate::upstream::{NodeRecord, Nodes, Sent};

/// What a target does with every request.
#[derive(Clone, Copy, Debug)]
enum Acts {
    /// Answers with this status.
    Status(u16),
    /// Refuses the connection (the request is never sent).
    Refuses,
    /// Breaks after the request was sent.
    Breaks,
    /// Never answers.
    Hangs,
    /// Answers 503 saying the registry is out of reach.
    RegistryDown,
}

/// Targets on ports 1, 2, 3…, each acting as told; every request is counted.
#[derive(Default)]
struct Fake {
    acts: HashMap<u16, Acts>,
    calls: Mutex<Vec<u16>>,
}

impl Fake {
    fn new(acts: &[Acts]) -> Self {
        Fake { acts: (1..).zip(acts.iter().copied()).collect(), calls: Mutex::default() }
    }
    fn calls(&self) -> Vec<u16> {
        self.calls.lock().unwrap().clone()
    }
}

impl Transport for Fake {
    fn send(&self, req: Request<Body>) -> Sent {
        let port = req.uri().port_u16().unwrap();
        self.calls.lock().unwrap().push(port);
        let acts = self.acts[&port];
        let error = move |maybe_sent| SendError {
            maybe_sent,
            refused_certificate: None,
            detail: format!("{acts:?}"),
        };
        Box::pin(async move {
            match acts {
                Acts::Status(s) => {
                    let mut r = Response::new(rampart_net::full(""));
                    *r.status_mut() = StatusCode::from_u16(s).unwrap();
                    Ok(r)
                }
                Acts::RegistryDown => {
                    let mut r = Response::new(rampart_net::full(""));
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    r.headers_mut().insert(
                        rampart_net::contract::header::REGISTRY,
                        http::HeaderValue::from_static("unavailable"),
                    );
                    Ok(r)
                }
                Acts::Refuses => Err(error(false)),
                Acts::Breaks => Err(error(true)),
                Acts::Hangs => std::future::pending().await,
            }
        })
    }
}

/// Records what the attempts report.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl TargetEvents for Heard {
    fn rejoined(&self, target: &str, _: &str) {
        self.0.lock().unwrap().push(format!("rejoined {target}"));
    }
    fn ejected(&self, target: &str, _: &str) {
        self.0.lock().unwrap().push(format!("ejected {target}"));
    }
    fn certificate_refused(&self, target: &str, _: &str) {
        self.0.lock().unwrap().push(format!("refused {target}"));
    }
}

/// A world of `n` targets of `svc`, named t1, t2… on ports 1, 2…
struct World {
    nodes: Nodes,
    /// Requests held in flight on targets, to make them look busy.
    held: Mutex<Vec<InFlight>>,
    fake: Fake,
    heard: Heard,
    budget: RetryBudget,
    limits: RetryLimits,
}

const TRY: Duration = Duration::from_secs(3);

impl World {
    fn new(acts: &[Acts]) -> Self {
        let nodes = Nodes::default();
        let records = (1..=acts.len() as u16)
            .map(|p| NodeRecord {
                timeouts_ms: Default::default(),
                public: None,
                name: format!("t{p}"),
                addr: ([127, 0, 0, 1], p).into(),
                services: vec!["svc".into()],
                lease: 1,
            })
            .collect();
        nodes.replace(records);
        World {
            nodes,
            held: Mutex::default(),
            fake: Fake::new(acts),
            heard: Heard::default(),
            budget: RetryBudget::new(0.2, 10.0, Duration::from_secs(10)),
            limits: RetryLimits { max_attempts: 3, try_timeout: TRY, deadline: Duration::from_secs(15) },
        }
    }

    /// Makes target `port` look busy, so that of two targets the other is always tried first
    /// (power of two choices compares both).
    fn busy(self, port: u16) -> Self {
        let health = self.nodes.board().get(&format!("t{port}"));
        self.held.lock().unwrap().extend((0..5).map(|_| health.start()));
        self
    }

    /// One request; its status, and the ports it was sent to in order.
    async fn call(&self, replay_safe: bool) -> (StatusCode, Vec<u16>) {
        let before = self.fake.calls().len();
        let attempts = Attempts {
            upstreams: &self.nodes,
            transport: &self.fake,
            events: &self.heard,
            budget: &self.budget,
            limits: self.limits,
        };
        let status = match attempts.run("svc", replay_safe, &Get).await {
            Finished::Answered(r, _) | Finished::Reply(r) => r.status(),
        };
        (status, self.fake.calls()[before..].to_vec())
    }
}

/// A GET of `/`.
struct Get;

impl RequestFor for Get {
    fn to(&self, t: &Target) -> Request<Body> {
        Request::get(format!("https://{}/", t.addr)).body(rampart_net::full("")).unwrap()
    }
}

fn distinct(ports: &[u16]) -> bool {
    let mut p = ports.to_vec();
    p.sort();
    p.dedup();
    p.len() == ports.len()
}

#[test]
fn the_rule_retries_what_never_arrived_and_what_is_safe_to_repeat() {
    let sent = || SendError { maybe_sent: true, refused_certificate: None, detail: String::new() };
    let not_sent = || SendError { maybe_sent: false, ..sent() };
    let status = |s: u16| {
        let mut r = Response::new(rampart_net::full(""));
        *r.status_mut() = StatusCode::from_u16(s).unwrap();
        r
    };
    for safe in [true, false] {
        assert_eq!(rule(&Outcome::of(Some(Ok(status(200)))), safe), Verdict::Deliver);
        assert_eq!(rule(&Outcome::of(Some(Ok(status(500)))), safe), Verdict::Deliver, "a 500 is an answer");
        assert_eq!(rule(&Outcome::of(Some(Err(not_sent()))), safe), Verdict::Retry { backoff: true });
        let down = Outcome::RegistryDown(status(503));
        assert_eq!(rule(&down, safe), Verdict::Deliver, "no other target would do better");
    }
    for s in [502, 503, 504] {
        assert_eq!(rule(&Outcome::of(Some(Ok(status(s)))), true), Verdict::Retry { backoff: false });
        assert_eq!(rule(&Outcome::of(Some(Ok(status(s)))), false), Verdict::Deliver);
    }
    assert_eq!(rule(&Outcome::of(Some(Err(sent()))), true), Verdict::Retry { backoff: true });
    assert_eq!(rule(&Outcome::of(Some(Err(sent()))), false), Verdict::GiveUp);
    assert_eq!(rule(&Outcome::of(None), true), Verdict::Retry { backoff: false });
    assert_eq!(rule(&Outcome::of(None), false), Verdict::GiveUp);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_arrived_is_tried_elsewhere_whatever_its_method() {
    for safe in [true, false] {
        let w = World::new(&[Acts::Refuses, Acts::Refuses, Acts::Status(200)]);
        // P2C picks at random: whichever order, the refusing targets are passed over.
        let (status, calls) = w.call(safe).await;
        assert_eq!(status, StatusCode::OK);
        assert!(distinct(&calls) && calls.last() == Some(&3), "{calls:?}");
    }
    let w = World::new(&[Acts::Refuses, Acts::Refuses, Acts::Refuses]);
    let (status, calls) = w.call(false).await;
    assert_eq!((status, calls.len()), (StatusCode::BAD_GATEWAY, 3), "upstream_unreachable after the cap");
}

#[tokio::test(start_paused = true)]
async fn a_target_that_may_have_acted_is_not_repeated_unless_safe() {
    let w = World::new(&[Acts::Breaks]);
    assert_eq!(w.call(false).await, (StatusCode::BAD_GATEWAY, vec![1]), "outcome unknown, tried once");
    let w = World::new(&[Acts::Breaks, Acts::Status(200)]);
    let (status, calls) = w.call(true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(calls.ends_with(&[2]));
    let w = World::new(&[Acts::Status(503)]);
    assert_eq!(w.call(false).await, (StatusCode::SERVICE_UNAVAILABLE, vec![1]), "its own 503, passed on");
    let w = World::new(&[Acts::Status(502), Acts::Status(502)]);
    let (status, calls) = w.call(true).await;
    assert_eq!(
        (status, calls.len()),
        (StatusCode::BAD_GATEWAY, 2),
        "every target tried, the last 502 passed on"
    );
}

#[tokio::test(start_paused = true)]
async fn a_registry_outage_is_passed_on_at_once_blaming_nobody() {
    let w = World::new(&[Acts::RegistryDown, Acts::RegistryDown]);
    for _ in 0..5 {
        let (status, calls) = w.call(true).await;
        assert_eq!((status, calls.len()), (StatusCode::SERVICE_UNAVAILABLE, 1));
    }
    assert!(!w.nodes.board().get("t1").is_ejected() && !w.nodes.board().get("t2").is_ejected());
}

/// Within a millisecond of `expected` (the timer wheel's granularity).
fn took(started: Instant, expected: Duration) -> bool {
    let t = started.elapsed();
    t >= expected && t <= expected + Duration::from_millis(1)
}

#[tokio::test(start_paused = true)]
async fn a_hung_target_costs_one_try_timeout_then_the_next_answers() {
    let w = World::new(&[Acts::Hangs, Acts::Status(200)]).busy(2);
    let started = Instant::now();
    assert_eq!(w.call(true).await, (StatusCode::OK, vec![1, 2]));
    assert!(took(started, TRY), "one attempt's time, no back-off after a timeout: {:?}", started.elapsed());
    let w = World::new(&[Acts::Hangs]);
    let started = Instant::now();
    assert_eq!(w.call(false).await, (StatusCode::GATEWAY_TIMEOUT, vec![1]), "outcome unknown: not repeated");
    assert!(took(started, TRY));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_the_last_attempt_short() {
    let mut w = World::new(&[Acts::Hangs, Acts::Hangs, Acts::Hangs]);
    w.limits.deadline = Duration::from_secs(5);
    let started = Instant::now();
    let (status, calls) = w.call(true).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(calls.len(), 2, "3 s, then the 2 s left; no third attempt after the deadline");
    assert!(took(started, Duration::from_secs(5)), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_spent() {
    let mut w = World::new(&[Acts::Refuses, Acts::Status(200)]).busy(2);
    w.budget = RetryBudget::new(0.0, 0.1, Duration::from_secs(10)); // one retry per 10 s
    assert_eq!(w.call(true).await, (StatusCode::OK, vec![1, 2]), "the budget's one retry");
    assert_eq!(w.call(true).await, (StatusCode::BAD_GATEWAY, vec![1]), "spent: the refusal is the answer");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(w.call(true).await, (StatusCode::OK, vec![1, 2]), "refilled as the window slid");
}

#[tokio::test(start_paused = true)]
async fn a_fast_failure_is_followed_by_a_jittered_backoff() {
    let w = World::new(&[Acts::Refuses, Acts::Status(200)]).busy(2);
    let started = Instant::now();
    assert_eq!(w.call(false).await, (StatusCode::OK, vec![1, 2]));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(5) && waited <= Duration::from_millis(16), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_target_is_ejected_and_the_cap_keeps_half_the_pool() {
    // The working targets look busy, so the failing ones are tried first in most requests
    // (left to chance, one of them might not fail three times in forty requests).
    let w = World::new(&[Acts::Breaks, Acts::Breaks, Acts::Status(200), Acts::Status(200)]).busy(3).busy(4);
    for _ in 0..40 {
        let (status, _) = w.call(true).await;
        assert_eq!(status, StatusCode::OK, "a safe request always finds a working target");
    }
    let board = w.nodes.board();
    assert!(board.get("t1").is_ejected() && board.get("t2").is_ejected());
    assert!(!board.get("t3").is_ejected() && !board.get("t4").is_ejected());
    let heard = w.heard.0.lock().unwrap().clone();
    assert!(
        heard.contains(&"ejected t1".to_owned()) && heard.contains(&"ejected t2".to_owned()),
        "{heard:?}"
    );
    // Ejected targets are skipped while others are live.
    let (_, calls) = w.call(true).await;
    assert!(!calls.contains(&1) && !calls.contains(&2), "{calls:?}");
}

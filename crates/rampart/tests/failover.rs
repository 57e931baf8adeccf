//! Killing, stopping or terminating one of three nodes under concurrent load loses no request
//! and doubles no write; a write whose node died mid-request is never silently re-run; an
//! outage does not become a retry storm.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::{Network, admin_client, request, stdout};

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
    acked: Mutex<HashSet<String>>,
    retried: AtomicU64,
}

/// Clients sending GETs and keyed POSTs until `stop`, at most `limit` requests each.
async fn load(
    net_url: String,
    client: rampart_net::client::HttpsClient,
    clients: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, client, stop, tally) = (net_url.clone(), client.clone(), stop.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let result = if i % 2 == 0 {
                    request(&client, "GET", &format!("{url}/hello"), &[], "").await
                } else {
                    let key = format!("client{c}-req{i}");
                    let body = format!(r#"{{"client":{c},"i":{i}}}"#);
                    request(&client, "POST", &format!("{url}/data"), &[("idempotency-key", &key)], &body)
                        .await
                };
                match result {
                    Ok((200, body, headers)) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if headers.contains_key("rampart-attempts") {
                            tally.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        if i % 2 == 1 {
                            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                            tally.acked.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned());
                        }
                    }
                    Ok((status, body, _)) => tally.failures.lock().unwrap().push(format!("{status} {body}")),
                    Err(e) => tally.failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Three nodes under load; `act` is done to node 0 part-way; the load goes on past its lease.
fn survive(act: impl FnOnce(&mut Network)) {
    let mut net = Network::start(3, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = rt.block_on(async { admin_client(&net.home) });
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let driver = rt.spawn(load(net.url.clone(), client.clone(), 6, stop.clone(), tally.clone()));
    let warm = Instant::now();
    while tally.ok.load(Ordering::Relaxed) < 200 && warm.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    act(&mut net);
    let after = tally.ok.load(Ordering::Relaxed);
    // Keep the load on past the lease (3 s) so ejection, lapse and rerouting all happen.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) || tally.ok.load(Ordering::Relaxed) < after + 200 {
        std::thread::sleep(Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(30), "the load stalled");
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(driver).unwrap();
    support::assert_none_failed(&tally.failures.lock().unwrap());
    let acked = tally.acked.lock().unwrap().clone();
    let stored_ids = support::stored_record_ids(&net.home, &net.url);
    assert_eq!(stored_ids, acked, "stored records differ from acknowledged POSTs");
    eprintln!(
        "{} requests ok, {} needed a retry, {} records",
        tally.ok.load(Ordering::Relaxed),
        tally.retried.load(Ordering::Relaxed),
        stored_ids.len()
    );
}

#[test]
fn sigkill_of_a_node_under_load_loses_nothing() {
    survive(|net| net.nodes[0].signal("KILL"));
}

#[test]
fn sigterm_of_a_node_under_load_loses_nothing() {
    survive(|net| net.nodes[0].signal("TERM"));
}

#[test]
fn sigstop_of_a_node_under_load_loses_nothing() {
    survive(|net| net.nodes[0].signal("STOP"));
}

/// An app that holds every request open (reporting it) until the test ends, counting them.
fn holding_app() -> (u16, mpsc::Receiver<()>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut s) = stream else { continue };
            let (tx, seen) = (tx.clone(), seen.clone());
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).unwrap_or(0) > 0 {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(());
                    let _ = s.read(&mut buf); // hold until the peer goes away
                }
            });
        }
    });
    (port, rx, count)
}

#[test]
fn a_post_whose_node_dies_mid_request_is_not_rerun() {
    let (port, seen, count) = holding_app();
    let upstream = format!("slow=http://127.0.0.1:{port}");
    let mut net = Network::start(0, &[]);
    net.add_node("n1", &["--upstream", &upstream]);
    let url = format!("{}/slow/pay", net.url);
    let home = net.home.clone();
    let caller =
        std::thread::spawn(move || support::run(&home, &["call", &url, "-d", r#"{"amount":3}"#], ""));
    seen.recv_timeout(Duration::from_secs(20)).expect("the app got the request");
    // A second node that could take a retry, then the first dies holding the request.
    net.add_node("n2", &["--upstream", &upstream]);
    net.nodes[0].signal("KILL");
    let out = caller.join().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"], "outcome_unknown", "{body}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "the POST was sent twice");
}

/// An app that always answers 503 and counts what it gets.
fn failing_app() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2_000) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).unwrap_or(0) > 0 {
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    s,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown"
                );
            }
        }
    });
    (port, count)
}

#[test]
fn retries_stay_within_the_budget_when_every_replica_fails() {
    let (port, hits) = failing_app();
    let upstream = format!("flaky=http://127.0.0.1:{port}");
    let mut net = Network::start_with(0, &[], &[("retry_ratio", "0.2"), ("retry_floor_per_sec", "0.5")]);
    for n in ["n1", "n2", "n3"] {
        net.add_node(n, &["--upstream", &upstream]);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async { admin_client(&net.home) });
    let requests = 100u64;
    rt.block_on(async {
        for _ in 0..requests {
            let (status, _, _) =
                request(&client, "GET", &format!("{}/flaky/x", net.url), &[], "").await.unwrap();
            assert_eq!(status, 503);
        }
    });
    let sent = hits.load(Ordering::SeqCst);
    // Without a budget each request would try all three nodes (300). The budget allows
    // 0.2 per request plus 0.5/s over a 10 s window.
    let budget = (requests as f64 * 0.2 + 0.5 * 10.0).ceil() as u64;
    assert!(sent >= requests, "every request reached a node at least once ({sent})");
    assert!(
        sent <= requests + budget,
        "{sent} attempts for {requests} requests: over the budget of {budget} retries"
    );
}

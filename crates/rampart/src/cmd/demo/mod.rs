//! `rampart demo`: a whole network on this machine — a gateway and three nodes as child
//! processes of this binary — under encrypted and plain load from concurrent clients; one node
//! is killed with SIGKILL a third of the way in and restarted at two thirds. It prints live
//! progress and a final table, and exits non-zero if any request failed or any acknowledged
//! write is missing or doubled. Ctrl-C stops everything it started. With `--serve` the network
//! keeps running afterwards until Ctrl-C, with the dashboard's address and calls to try.
//! `--federation` runs the two-network demo instead (`federation.rs`).

mod federation;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http::Request;
use http_body_util::BodyExt;
use rampart_net::client::HttpsClient;
use rampart_net::contract::{header as wire, media};

use crate::cli::DemoArgs;
use crate::home::Home;

/// A child process of the demo, killed when dropped.
struct Proc {
    child: Child,
    ready: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rampart --home HOME ARGS` (its log in HOME) and waits for its `ready` line.
fn spawn(home: &Path, args: &[&str], ready: &str) -> Result<Proc> {
    let exe = std::env::current_exe().context("finding this binary")?;
    // gateway.log, n1.log, …: a node's log is named after the node.
    let name = if args.first() == Some(&"node") { args.get(2) } else { args.first() };
    let log = std::fs::File::create(home.join(format!("{}.log", name.copied().unwrap_or("child"))))?;
    let mut child = Command::new(exe)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("RAMPART_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting rampart {}", args.join(" ")))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with(ready) => return Ok(Proc { child, ready: line }),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                bail!("rampart {} did not start (see {})", args.join(" "), home.display());
            }
        }
    }
}

#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    per_node: Mutex<[BTreeMap<String, u64>; 3]>,
    acked: Mutex<HashSet<String>>,
    failures: Mutex<Vec<String>>,
    /// The phase a request belongs to: 0 before the kill, 1 while n2 is down, 2 after restart.
    phase: AtomicU64,
}

pub fn run(explicit_home: Option<PathBuf>, args: DemoArgs) -> Result<()> {
    if args.federation {
        return federation::run(explicit_home, &args);
    }
    let temp = match &explicit_home {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("rampart-demo-").tempdir()?),
    };
    let root = explicit_home
        .clone()
        .unwrap_or_else(|| temp.as_ref().map(|t| t.path().join("home")).unwrap_or_default());
    let mut net = Network::start(&root)?;
    println!(
        "gateway {}; nodes n1 n2 n3; {} clients for {:?}; n2 is killed at {:?} and restarted at {:?}",
        net.url,
        args.clients,
        args.duration,
        args.duration / 3,
        args.duration * 2 / 3
    );
    let home = Home::new(root.clone());
    let config = home.config()?;
    let keyring = rampart_crypto::file::load(&home.keyring_path())?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = rt.block_on(async { home.admin_client(&config) })?;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    rt.block_on(wait_serving(&client, &net.url))?;
    let load =
        rt.spawn(load(args.clients, (client.clone(), net.url.clone()), stats.clone(), stop.clone(), keyring));
    {
        let (interrupted, stop) = (interrupted.clone(), stop.clone());
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let start = Instant::now();
    let mut timeline = Timeline::new(args.duration);
    while start.elapsed() < args.duration && !interrupted.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let url = net.url.clone();
        timeline.tick(start.elapsed(), &mut net, &stats, || rt.block_on(live_nodes(&client, &url)))?;
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed();
    rt.block_on(load)?;
    let stored = rt.block_on(count_records(&client, &net.url));
    report(&stats, elapsed, timeline.left_after, timeline.serving_after, stored);
    let served = args.serve && !interrupted.load(Ordering::SeqCst);
    if served {
        serve(&root, &net.url, explicit_home.is_some(), args.keep);
        while !interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("stopping the network");
    } else if !args.serve {
        println!();
        println!("rampart demo --serve keeps the network running afterwards, to look at it on the dashboard");
    }
    drop(net);
    if let Some(t) = temp
        && args.keep
    {
        println!("kept {}", t.keep().display());
    }
    if interrupted.load(Ordering::SeqCst) && !served {
        bail!("interrupted; everything the demo started was stopped");
    }
    verdict(&stats, stored)
}

/// The demo's network: a gateway and three nodes, child processes stopped when it is dropped.
struct Network {
    root: PathBuf,
    url: String,
    nodes: Vec<Option<Proc>>,
    _gateway: Proc,
}

impl Network {
    /// `rampart init` in a fresh `root`, then the gateway and nodes n1, n2, n3.
    fn start(root: &Path) -> Result<Self> {
        if Home::new(root.to_owned()).config_path().exists() {
            bail!(
                "{} already holds a network; the demo needs a fresh home (omit --home for a temporary one)",
                root.display()
            );
        }
        println!("rampart demo: a gateway and three nodes in {}", root.display());
        let init = Command::new(std::env::current_exe()?)
            .arg("--home")
            .arg(root)
            .arg("init")
            .stdout(Stdio::null())
            .status()?;
        if !init.success() {
            bail!("rampart init failed");
        }
        let gateway = spawn(root, &["gateway", "--listen", "127.0.0.1:0"], "rampart gateway listening on ")?;
        let url = gateway.ready.split_whitespace().nth(4).context("gateway ready line")?.to_owned();
        let mut net = Network { root: root.to_owned(), url, nodes: Vec::new(), _gateway: gateway };
        for n in ["n1", "n2", "n3"] {
            let node = net.node(n)?;
            net.nodes.push(Some(node));
        }
        Ok(net)
    }

    /// Starts node `name`.
    fn node(&self, name: &str) -> Result<Proc> {
        spawn(
            &self.root,
            &["node", "--name", name, "--listen", "127.0.0.1:0", "--gateway", &self.url],
            "rampart node ",
        )
    }
}

/// The clients' load: `clients` loops until `stop`.
async fn load(
    clients: usize,
    (client, url): (HttpsClient, String),
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    keyring: rampart_crypto::Keyring,
) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, stats, stop, keyring) =
            (client.clone(), url.clone(), stats.clone(), stop.clone(), keyring.clone());
        tasks.push(tokio::spawn(async move { client_loop(c, client, url, stats, stop, keyring).await }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// What happens when: n2 killed at a third, restarted at two thirds; what was seen of it, and
/// the progress line each second.
struct Timeline {
    kill_at: Duration,
    restart_at: Duration,
    killed_at: Option<Instant>,
    restarted_at: Option<Instant>,
    /// How long after its death n2 left the pool.
    left_after: Option<Duration>,
    /// How long after its restart n2 served again.
    serving_after: Option<Duration>,
    last_print: Instant,
    last_ok: u64,
}

impl Timeline {
    fn new(duration: Duration) -> Self {
        Timeline {
            kill_at: duration / 3,
            restart_at: duration * 2 / 3,
            killed_at: None,
            restarted_at: None,
            left_after: None,
            serving_after: None,
            last_print: Instant::now(),
            last_ok: 0,
        }
    }

    /// Acts and reports at `t` into the run; `live` asks the gateway for the pool (only while
    /// n2's leaving is awaited).
    fn tick(
        &mut self,
        t: Duration,
        net: &mut Network,
        stats: &Stats,
        live: impl FnOnce() -> Option<Vec<String>>,
    ) -> Result<()> {
        let at = t.as_secs_f64();
        if self.killed_at.is_none() && t >= self.kill_at {
            if let Some(p) = net.nodes[1].as_mut() {
                let _ = p.child.kill(); // SIGKILL: no goodbye, no drain
            }
            net.nodes[1] = None;
            self.killed_at = Some(Instant::now());
            stats.phase.store(1, Ordering::SeqCst);
            println!("{at:>6.1}s  SIGKILL n2");
        }
        if let (Some(k), None) = (self.killed_at, self.left_after)
            && live().is_some_and(|n| !n.contains(&"n2".to_owned()))
        {
            self.left_after = Some(k.elapsed());
            println!("{at:>6.1}s  n2 left the pool {:.2}s after it died", k.elapsed().as_secs_f64());
        }
        if self.restarted_at.is_none() && t >= self.restart_at {
            net.nodes[1] = Some(net.node("n2")?);
            self.restarted_at = Some(Instant::now());
            stats.phase.store(2, Ordering::SeqCst);
            println!("{at:>6.1}s  restarted n2");
        }
        if let (Some(r), None) = (self.restarted_at, self.serving_after)
            && stats.per_node.lock().map(|p| p[2].get("n2").copied().unwrap_or(0) > 0).unwrap_or(false)
        {
            self.serving_after = Some(r.elapsed());
            println!("{at:>6.1}s  n2 serving again {:.2}s after restart", r.elapsed().as_secs_f64());
        }
        if self.last_print.elapsed() >= Duration::from_secs(1) {
            let ok = stats.ok.load(Ordering::Relaxed);
            let rate = (ok - self.last_ok) as f64 / self.last_print.elapsed().as_secs_f64();
            println!(
                "{at:>6.1}s  {rate:>7.0} req/s   ok {ok:>8}   failed {:>3}   retried {:>4}",
                stats.failed.load(Ordering::Relaxed),
                stats.retried.load(Ordering::Relaxed)
            );
            (self.last_ok, self.last_print) = (ok, Instant::now());
        }
        Ok(())
    }
}

/// The demo passes when no request failed and every acknowledged write is stored once.
fn verdict(stats: &Stats, stored: Option<usize>) -> Result<()> {
    let acked = stats.acked.lock().map(|a| a.len()).unwrap_or(0);
    let failed = stats.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let examples =
            stats.failures.lock().map(|f| f.iter().take(3).cloned().collect::<Vec<_>>()).unwrap_or_default();
        bail!("{failed} requests failed, e.g. {examples:?}");
    }
    match stored {
        Some(n) if n == acked => Ok(()),
        Some(n) => bail!("{acked} writes were acknowledged but {n} records are stored"),
        None => bail!("could not count the stored records"),
    }
}

/// What to look at while `--serve` keeps the network running.
fn serve(root: &Path, url: &str, explicit_home: bool, keep: bool) {
    let home = root.display();
    let cli =
        if explicit_home { format!("rampart --home {home}") } else { format!("RAMPART_HOME={home} rampart") };
    println!();
    let removed = if explicit_home || keep { "" } else { " and removes its home" };
    println!("The network keeps running; Ctrl-C stops it{removed}.");
    println!("  dashboard  {url}/_rampart/ui");
    println!("  sign in    with the admin token in {home}/admin.token");
    println!("  try        {cli} call {url}/hello");
    println!("             {cli} call {url}/data -d '{{\"name\":\"ada\"}}' --encrypt");
    println!("             {cli} status");
}

async fn wait_serving(client: &HttpsClient, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if live_nodes(client, url).await.is_some_and(|n| n.len() == 3) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the nodes did not all join within 20 s")
}

async fn get(client: &HttpsClient, url: &str) -> Option<Vec<u8>> {
    let req = Request::get(url).body(rampart_net::full("")).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await.ok()?.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    Some(resp.into_body().collect().await.ok()?.to_bytes().to_vec())
}

async fn live_nodes(client: &HttpsClient, url: &str) -> Option<Vec<String>> {
    let body = get(client, &format!("{url}/_rampart/status")).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(v["nodes"].as_array()?.iter().filter_map(|n| n["name"].as_str().map(str::to_owned)).collect())
}

async fn count_records(client: &HttpsClient, url: &str) -> Option<usize> {
    let body = get(client, &format!("{url}/data")).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(v.as_array()?.len())
}

async fn client_loop(
    c: usize,
    client: HttpsClient,
    url: String,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    keyring: rampart_crypto::Keyring,
) {
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let started = Instant::now();
        let phase = stats.phase.load(Ordering::Relaxed) as usize;
        let Some((req, sealed, post)) = demo_request(&url, c, i, &keyring) else { continue };
        match send(&client, req).await {
            Ok((node, retried, body)) => {
                let plain = if sealed {
                    match std::str::from_utf8(&body).ok().and_then(|t| keyring.decrypt(t, Some(300)).ok()) {
                        Some(o) => o.plaintext,
                        None => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                } else {
                    body.to_vec()
                };
                stats.served(&plain, post, (node, retried, phase), started.elapsed());
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut f) = stats.failures.lock() {
                    f.push(e);
                }
            }
        }
    }
}

/// Client `c`'s `i`-th request: two in five a plain hello, two an encrypted keyed write, one
/// an encrypted echo; with whether its answer comes sealed and whether it is a write.
fn demo_request(
    url: &str,
    c: usize,
    i: u64,
    keyring: &rampart_crypto::Keyring,
) -> Option<(Request<rampart_net::Body>, bool, bool)> {
    let (req, sealed, post) = match i % 5 {
        0 | 1 => (Request::get(format!("{url}/hello")).body(rampart_net::full("")), false, false),
        2 | 3 => {
            let record = format!(r#"{{"client":{c},"seq":{i}}}"#);
            let token = keyring.encrypt(record.as_bytes()).ok()?;
            let req = Request::post(format!("{url}/data"))
                .header(http::header::CONTENT_TYPE, media::FERNET)
                .header(http::header::ACCEPT, media::FERNET)
                .header(wire::IDEMPOTENCY_KEY, format!("demo-{c}-{i}"))
                .body(rampart_net::full(token));
            (req, true, true)
        }
        _ => (
            Request::get(format!("{url}/echo/demo?c={c}"))
                .header(http::header::ACCEPT, media::FERNET)
                .body(rampart_net::full("")),
            true,
            false,
        ),
    };
    Some((req.ok()?, sealed, post))
}

/// Sends one request: the node that answered, whether it took a retry, and the body; or why
/// it failed.
async fn send(
    client: &HttpsClient,
    req: Request<rampart_net::Body>,
) -> Result<(String, bool, bytes::Bytes), String> {
    match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status();
            let node = resp.headers().get(wire::NODE).and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
            let retried = resp.headers().contains_key(wire::ATTEMPTS);
            match resp.into_body().collect().await {
                Ok(b) if status.is_success() => Ok((node, retried, b.to_bytes())),
                Ok(b) => Err(format!("{status} {}", String::from_utf8_lossy(&b.to_bytes()))),
                Err(e) => Err(e.to_string()),
            }
        }
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("no answer in 30 s".into()),
    }
}

impl Stats {
    /// Counts an answered request: the write it acknowledged (`post`), the node, a retry, the
    /// phase it fell in, its latency.
    fn served(
        &self,
        plain: &[u8],
        post: bool,
        (node, retried, phase): (String, bool, usize),
        took: Duration,
    ) {
        if post
            && let Some(id) = serde_json::from_slice::<serde_json::Value>(plain)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
            && let Ok(mut a) = self.acked.lock()
        {
            a.insert(id);
        }
        self.ok.fetch_add(1, Ordering::Relaxed);
        if retried {
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut p) = self.per_node.lock() {
            *p[phase.min(2)].entry(node).or_default() += 1;
        }
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
}

fn report(
    stats: &Stats,
    elapsed: Duration,
    left_after: Option<Duration>,
    serving_after: Option<Duration>,
    stored: Option<usize>,
) {
    let mut lat = stats.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let ok = stats.ok.load(Ordering::Relaxed);
    let secs =
        |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
    println!();
    println!("{:<34}{}", "requests", ok + stats.failed.load(Ordering::Relaxed));
    println!("{:<34}{}", "failed", stats.failed.load(Ordering::Relaxed));
    println!("{:<34}{}", "answered after a retry", stats.retried.load(Ordering::Relaxed));
    println!("{:<34}{:.0}", "requests per second", ok as f64 / elapsed.as_secs_f64());
    println!(
        "{:<34}{:.2} ms / {:.2} ms",
        "latency p50 / p99",
        pct(0.5) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0
    );
    println!("{:<34}{}", "n2 left the pool after SIGKILL", secs(left_after));
    println!("{:<34}{}", "n2 serving again after restart", secs(serving_after));
    let acked = stats.acked.lock().map(|a| a.len()).unwrap_or(0);
    println!(
        "{:<34}{} acknowledged, {} stored",
        "encrypted writes",
        acked,
        stored.map_or("?".into(), |s| s.to_string())
    );
    println!();
    println!("{:<8}{:>16}{:>16}{:>16}", "node", "before kill", "n2 down", "after restart");
    if let Ok(p) = stats.per_node.lock() {
        for n in ["n1", "n2", "n3"] {
            let c = |i: usize| p[i].get(n).copied().unwrap_or(0);
            println!("{n:<8}{:>16}{:>16}{:>16}", c(0), c(1), c(2));
        }
    }
}

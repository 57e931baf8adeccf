//! `rampart demo --federation`: two networks on this machine, `east` and `west`, each its own
//! home, trust domain and CA. West hosts `echo` and exports it to east; east's users call it
//! through east's gateway. West's policy serves alice and refuses bob; then west's gateway is
//! SIGKILLed (east answers 503 at once) and restarted (east serves again, nothing done there).
//! Exits non-zero if any step did not turn out as it should.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use rampart_net::client::HttpsClient;

use super::{Proc, spawn};
use crate::cli::DemoArgs;

/// Runs `rampart --home HOME ARGS`; its standard output.
fn rampart(home: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running rampart {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("rampart {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One network of the demo: its home, gateway and node.
struct Net {
    home: PathBuf,
    url: String,
    gateway: Option<Proc>,
    _node: Proc,
}

impl Net {
    /// `init --domain DOMAIN`, a gateway, and a node hosting `service`.
    fn start(root: &Path, domain: &str, service: &str) -> Result<Self> {
        let home = root.join(domain);
        rampart(&home, &["init", "--domain", domain])?;
        let gateway = spawn(&home, &["gateway", "--listen", "127.0.0.1:0"], "rampart gateway listening on ")?;
        let url = gateway.ready.split_whitespace().nth(4).context("gateway ready line")?.to_owned();
        let node = format!("{}1", &domain[..1]);
        let args =
            ["node", "--name", &node, "--listen", "127.0.0.1:0", "--gateway", &url, "--service", service];
        let node = spawn(&home, &args, "rampart node ")?;
        Ok(Net { home, url, gateway: Some(gateway), _node: node })
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.home.join("audit.jsonl")).unwrap_or_default()
    }
}

/// A client of east's gateway that verifies it by east's CA and sends a token.
fn client_of(east: &Net) -> Result<HttpsClient> {
    let (roots, _) = rampart_net::TlsMaterial::load_roots(&east.home.join("pki/east/ca.pem"), None)?;
    let domain = rampart_pki::TrustDomain::new("east")?;
    let tls =
        rampart_net::tls::client_config(&domain, roots, Vec::new(), None, &[rampart_pki::Role::Gateway])?;
    Ok(rampart_net::client::https_client(tls, Duration::from_secs(2)))
}

/// `GET url` with `token`: the status, the Retry-After header and the body.
async fn call(client: &HttpsClient, url: &str, token: &str) -> (u16, Option<String>, serde_json::Value) {
    let Ok(req) = http::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(rampart_net::full(""))
    else {
        return (0, None, serde_json::Value::Null);
    };
    match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            (status, retry, serde_json::from_slice(&body).unwrap_or_default())
        }
        _ => (0, None, serde_json::Value::Null),
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; how long it took.
async fn until<F: Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

pub fn run(explicit_home: Option<PathBuf>, args: &DemoArgs) -> Result<()> {
    let temp = match &explicit_home {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("rampart-federation-").tempdir()?),
    };
    let root = explicit_home
        .clone()
        .unwrap_or_else(|| temp.as_ref().map(|t| t.path().to_owned()).unwrap_or_default());
    if root.join("east").exists() || root.join("west").exists() {
        bail!("{} already holds the demo's networks; use a fresh directory", root.display());
    }
    println!("rampart demo --federation: two networks, east and west, in {}", root.display());
    let east = Net::start(&root, "east", "hello")?;
    let mut west = Net::start(&root, "west", "echo")?;
    println!("  east  gateway {} (hosts hello)", east.url);
    println!("  west  gateway {} (hosts echo)", west.url);

    // Peering, one way at a time: each trusts the other's CA bundle, by its fingerprint.
    let east_pem = root.join("east.pem");
    rampart(&east.home, &["pki", "bundle", "--out", east_pem.to_str().context("path")?])?;
    let west_fp = fingerprint(&west.home)?;
    rampart(&east.home, &["network", "add", "west", "--url", &west.url, "--fingerprint", &west_fp])?;
    rampart(
        &west.home,
        &["network", "add", "east", "--url", &east.url, "--bundle", east_pem.to_str().context("path")?],
    )?;
    rampart(&west.home, &["network", "export", "echo", "--to", "east"])?;
    println!("  peered: east trusts west's bundle {west_fp}; west trusts east's; west exports echo to east");
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        rampart(&east.home, &["user", "add", user, "--no-password"])?;
        tokens.push(rampart(&east.home, &["token", "issue", "--user", user])?.trim().to_owned());
        rampart(
            &east.home,
            &["policy", "allow", "--service", "echo", "--principal", &format!("user/{user}")],
        )?;
    }
    rampart(&west.home, &["policy", "allow", "--service", "echo", "--principal", "peer:east/user/alice"])?;
    rampart(&west.home, &["policy", "deny", "--service", "echo", "--principal", "peer:east/user/bob"])?;
    println!(
        "  east lets alice and bob use echo; west serves peer:east/user/alice and denies peer:east/user/bob"
    );

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = client_of(&east)?;
    let echo = format!("{}/echo/hello?from=east", east.url);
    let (alice, bob) = (tokens[0].as_str(), tokens[1].as_str());
    let mut wrong = Vec::new();
    let learnt =
        rt.block_on(until(Duration::from_secs(15), || async { call(&client, &echo, alice).await.0 == 200 }));
    let Some(learnt) = learnt else { bail!("east never learnt west's catalog (see {})", root.display()) };
    println!();
    println!("east learnt west's catalog in {:.2} s", learnt.as_secs_f64());

    let (status, _, body) = rt.block_on(call(&client, &echo, alice));
    println!("  alice  GET {echo} → {status}, west's node saw {}", body["principal"]);
    if status != 200 || body["principal"] != "peer:east/user/alice" {
        wrong.push(format!("alice: {status} {body}"));
    }
    let (status, _, body) = rt.block_on(call(&client, &echo, bob));
    println!("  bob    GET {echo} → {status}: {}", body["reason"].as_str().unwrap_or(""));
    if status != 403 || !west.events().contains("\"policy_denied\"") {
        wrong.push(format!("bob: {status} {body}"));
    }
    println!("         west recorded it: policy_denied for peer:east/user/bob");

    // West's gateway killed: east says so at once.
    let listen = west.url.trim_start_matches("https://").to_owned();
    drop(west.gateway.take());
    let killed = Instant::now();
    let unavailable = rt.block_on(until(Duration::from_secs(5), || async {
        let (status, retry, _) = call(&client, &echo, alice).await;
        status == 503 && retry.is_some()
    }));
    let down =
        rt.block_on(until(Duration::from_secs(5), || async { east.events().contains("\"peer_down\"") }));
    match (unavailable, down) {
        (Some(u), Some(_)) => println!(
            "\nSIGKILL west's gateway: east answers 503 with Retry-After after {:.2} s, peer_down after {:.2} s",
            u.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        ),
        _ => wrong.push("after the kill: no 503 with Retry-After, or no peer_down event".into()),
    }

    // Restarted where it was: east serves again with nothing done there.
    west.gateway =
        Some(spawn(&west.home, &["gateway", "--listen", &listen], "rampart gateway listening on ")?);
    let restarted = Instant::now();
    let back =
        rt.block_on(until(Duration::from_secs(15), || async { call(&client, &echo, alice).await.0 == 200 }));
    match back {
        Some(_) => println!(
            "restarted west's gateway: alice served again after {:.2} s",
            restarted.elapsed().as_secs_f64()
        ),
        None => wrong.push("west restarted, but east never served alice again".into()),
    }
    drop((east, west));
    if let Some(t) = temp
        && args.keep
    {
        println!("kept {}", t.keep().display());
    }
    if !wrong.is_empty() {
        bail!("the federation demo went wrong: {}", wrong.join("; "));
    }
    println!("\nok: every step turned out as it should");
    Ok(())
}

/// The fingerprint `rampart pki bundle` prints (on standard error) for `home`'s domain.
fn fingerprint(home: &Path) -> Result<String> {
    let out =
        Command::new(std::env::current_exe()?).arg("--home").arg(home).args(["pki", "bundle"]).output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| l.starts_with("sha256:"))
        .map(|l| l.trim().to_owned())
        .context("no fingerprint printed")
}

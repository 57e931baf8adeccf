//! Real processes for the data-path tests: a home, a gateway and nodes of the `rampart` binary
//! on 127.0.0.1 (port 0), each waited for by its ready line, killed when the test ends.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod federation;
pub mod passthrough;

pub const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub ready: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits until the process is gone (and the files it held are let go: `kill`
    /// returns before that).
    pub fn kill_and_reap(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status().unwrap();
        assert!(ok.success(), "kill -{sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rampart --home HOME ARGS` and waits (bounded) for a stdout line starting with
/// `ready`. Its stderr goes to `HOME/<log>.log` for post-mortems.
pub fn spawn(home: &Path, args: &[&str], ready: &str, log: &str) -> Proc {
    let log_file = std::fs::File::create(home.join(format!("{log}.log"))).unwrap();
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("RAMPART_HOME")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(ready) => return Proc { child, ready: line },
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(home.join(format!("{log}.log"))).unwrap_or_default();
                panic!("{args:?} never printed {ready:?}; its log:\n{log}");
            }
        }
    }
}

/// Runs a one-shot command with `stdin` as its input.
pub fn run(home: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("RAMPART_HOME")
        .env_remove("RAMPART_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command may refuse (and exit) before reading its input: a broken pipe is its answer.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_ref()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing to rampart {args:?}: {e}");
    }
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; its stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    ok_in(home, args, "")
}

/// [`ok`] with `stdin` as input.
pub fn ok_in(home: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> String {
    String::from_utf8(ok_bytes(home, args, stdin)).unwrap()
}

/// [`ok_in`], stdout as bytes.
pub fn ok_bytes(home: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> Vec<u8> {
    let out = run(home, args, stdin);
    let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "rampart {args:?}: {o}{e}");
    out.stdout
}

/// Runs a command that must fail cleanly: non-zero exit, nothing on stdout, one `error:`
/// message on stderr, no panic. Its stderr.
pub fn refused(home: &Path, args: &[&str], stdin: impl AsRef<[u8]>) -> String {
    let out = run(home, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "rampart {args:?} succeeded");
    assert!(out.stdout.is_empty(), "rampart {args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.starts_with("error: ") && !stderr.contains("panicked"), "rampart {args:?}: {stderr}");
    stderr
}

/// A network: a home, its gateway, and nodes.
pub struct Network {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub url: String,
    pub gateway: Proc,
    pub nodes: Vec<Proc>,
}

impl Network {
    /// `rampart init`, a gateway on a free port with `gateway_args`, and `nodes` nodes
    /// (n1, n2, …) with the built-in services; returns once every node serves `hello`.
    pub fn start(nodes: usize, gateway_args: &[&str]) -> Self {
        Self::start_with(nodes, gateway_args, &[])
    }

    /// As [`Network::start`], with settings of `rampart.toml` replaced first (`key = value`
    /// lines, each key present once in the file).
    pub fn start_with(nodes: usize, gateway_args: &[&str], settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        ok(&home, &["init"]);
        let path = home.join("rampart.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (key, value) in settings {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .expect("setting present")
                .to_owned();
            text = text.replace(&line, &format!("{key} = {value}"));
        }
        std::fs::write(&path, text).unwrap();
        Self::launch(dir, home, nodes, gateway_args)
    }

    /// A network of trust domain `domain` with a gateway and no node yet.
    pub fn start_in(domain: &str, gateway_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join(domain);
        ok(&home, &["init", "--domain", domain]);
        Self::launch(dir, home, 0, gateway_args)
    }

    /// A gateway and `nodes` nodes on a home `rampart init` already made inside `dir`.
    pub fn launch(dir: tempfile::TempDir, home: PathBuf, nodes: usize, gateway_args: &[&str]) -> Self {
        let mut args = vec!["gateway", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(gateway_args);
        let gateway = spawn(&home, &args, "rampart gateway listening on ", "gateway");
        let url = gateway.ready.split_whitespace().nth(4).unwrap().to_owned();
        let mut net = Network { dir, home, url, gateway, nodes: Vec::new() };
        for i in 1..=nodes {
            net.add_node(&format!("n{i}"), &[]);
        }
        net
    }

    /// Starts a node and waits until it is registered.
    pub fn add_node(&mut self, name: &str, extra: &[&str]) {
        let mut args = vec!["node", "--name", name, "--listen", "127.0.0.1:0", "--gateway", &self.url];
        args.extend_from_slice(extra);
        let node = spawn(&self.home, &args, "rampart node ", name);
        self.nodes.push(node);
        let want = self.nodes.len();
        assert!(
            self.eventually(Duration::from_secs(10), || self.node_count() == want),
            "node {name} never joined the pool"
        );
    }

    /// The internal address of node `i` (from its ready line).
    pub fn node_addr(&self, i: usize) -> String {
        let url = self.nodes[i].ready.split_whitespace().nth(5).unwrap().trim_end_matches(',');
        url.strip_prefix("https://").unwrap().to_owned()
    }

    /// `rampart call URL/PATH ARGS` (admin certificate unless ARGS say otherwise).
    pub fn call(&self, path: &str, args: &[&str]) -> Output {
        let url = format!("{}{path}", self.url);
        let mut all = vec!["call", url.as_str()];
        all.extend_from_slice(args);
        run(&self.home, &all, "")
    }

    /// Live nodes according to the gateway's status API.
    pub fn node_count(&self) -> usize {
        let out = self.call("/_rampart/status", &[]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["nodes"].as_array().map_or(0, Vec::len)
    }

    /// Polls `check` every 50 ms until it holds or `limit` passes.
    pub fn eventually(&self, limit: Duration, mut check: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        check()
    }

    /// A user with a token (and optionally a certificate), for calls as someone other than admin.
    pub fn user(&self, name: &str) -> String {
        ok(&self.home, &["user", "add", name, "--no-password"]);
        ok(&self.home, &["token", "issue", "--user", name]).trim().to_owned()
    }

    pub fn pki_file(&self, name: &str) -> String {
        self.home.join("pki/local/issued").join(name).display().to_string()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An in-process HTTPS client with the home's admin certificate, for load.
pub fn admin_client(home: &Path) -> rampart_net::client::HttpsClient {
    let dir = home.join("pki/local");
    let m = rampart_net::TlsMaterial::load(
        rampart_pki::TrustDomain::new("local").unwrap(),
        &dir.join("ca.pem"),
        &dir.join("issued/admin.pem"),
        &dir.join("issued/admin.key"),
        Some(&dir.join("crl.pem")),
    )
    .unwrap();
    let tls = m.client_config(&[rampart_pki::Role::Gateway]).unwrap();
    rampart_net::client::https_client(tls, Duration::from_secs(2))
}

/// One request; (status, body, headers).
pub async fn request(
    client: &rampart_net::client::HttpsClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String, http::HeaderMap), String> {
    use http_body_util::BodyExt;
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(rampart_net::full(body.to_owned())).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:#}"))?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status.as_u16(), String::from_utf8_lossy(&bytes).into_owned(), parts.headers))
}

/// The ids of the `data` service's records, read through the gateway at `url` with the admin
/// certificate; fails the test if any record is stored twice.
pub fn stored_record_ids(home: &Path, url: &str) -> std::collections::HashSet<String> {
    let out = run(home, &["call", &format!("{url}/data")], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let stored: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: std::collections::HashSet<String> =
        stored.iter().map(|r| r["_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), stored.len(), "a record stored twice");
    ids
}

/// Fails the test with a few examples when any request failed.
pub fn assert_none_failed(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// `curl -sS --max-time 10 ARGS`: whether it succeeded, and what it printed (both streams).
pub fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The subject of the certificate `addr` presents for `sni` (none: no SNI), without spaces.
pub fn subject_for(addr: &str, sni: Option<&str>) -> String {
    let mut args = vec!["s_client", "-connect", addr];
    match sni {
        Some(name) => args.extend(["-servername", name]),
        None => args.push("-noservername"),
    }
    let shown =
        Command::new("openssl").args(&args).stdin(Stdio::null()).stderr(Stdio::null()).output().unwrap();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin.take().unwrap().write_all(&shown.stdout).unwrap();
    String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout).replace(' ', "")
}

/// A PNG of `width`×`height` whose three channels differ (for the jobs tests).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 + y) as u8, (y * 13) as u8, ((x * y) >> 3) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// The registry's `services/jobs/<family>/<id>/` through the gateway at `url`'s
/// store API (the admin certificate): each task number with its value.
pub fn job_parts(home: &Path, url: &str, family: &str, id: &str) -> Vec<(u32, serde_json::Value)> {
    use base64::Engine as _;
    let pki = home.join("pki/local/issued");
    let (cert, key) = (pki.join("admin.pem"), pki.join("admin.key"));
    let ask = serde_json::json!({"op": "range", "prefix": format!("services/jobs/{family}/{id}/")});
    let (_, said) = curl(&[
        "--cacert",
        home.join("pki/local/ca.pem").to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "-H",
        "Content-Type: application/json",
        "-d",
        &ask.to_string(),
        &format!("{url}/_rampart/store"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&said).unwrap_or_default();
    v["kvs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            let n = kv["key"].as_str()?.rsplit('/').next()?.parse().ok()?;
            let value = base64::engine::general_purpose::STANDARD.decode(kv["value"].as_str()?).ok()?;
            Some((n, serde_json::from_slice(&value).ok()?))
        })
        .collect()
}

/// A one-pixel PNG whose header declares `width`×`height` (its CRC fixed): a decompression bomb
/// as its header tells.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&width.to_be_bytes());
    bomb[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

/// The services folder of `net`, which programs (run as nobody) can reach.
pub fn folder(net: &Network) -> PathBuf {
    let dir = net.dir.path().join("services");
    std::fs::create_dir(&dir).unwrap();
    for d in [net.dir.path(), &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// A node's arguments serving the programs in `dir` as nobody, with tight limits (1 s, a body of
/// 1 KiB) and the given output cap and number of runs at once, then `extra`.
pub fn program_node_args(dir: &Path, max_output: usize, max_runs: usize, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--run-as", "nobody", "--services-dir"].map(String::from).to_vec();
    args.push(dir.to_str().unwrap().to_owned());
    args.extend(["--program-timeout", "1s", "--program-max-body", "1024"].map(String::from));
    args.extend(["--program-max-output".to_owned(), max_output.to_string()]);
    args.extend(["--program-max-runs".to_owned(), max_runs.to_string()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// Installs `script` as `name` the safe way: written beside, then renamed into place.
pub fn install(dir: &Path, name: &str, script: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

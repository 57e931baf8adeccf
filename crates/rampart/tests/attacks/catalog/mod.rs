//! The catalog: named attacks in families, one test (and one network) per family. Each case
//! comes from a loopback address of its own (127.10.F.C), so that the events, rates and bans it
//! causes are its own. For each case the runner checks
//!
//! - the answer: a status, or a connection refused or closed without one;
//! - the event the operator sees: its kind, recorded for that address;
//! - that no secret of the network (a token, a private key, a payload key) is in the answer;
//! - that a well-behaved client is served right after.
//!
//! A well-behaved client also calls all along, from an address of its own, and must never be
//! refused; at the end the logs (the gateway's, the nodes', the audit log) are searched for every
//! secret. Every failing case is reported by name, then the test fails.

pub mod certificates;
pub mod envelopes;
pub mod federation;
pub mod http1;
pub mod http2;
pub mod jobs;
pub mod passthrough;
pub mod paths;
pub mod poisoning;
pub mod policy;
pub mod programs;
pub mod registry;
pub mod tokens;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::Network;

/// One named attack.
pub struct Case {
    /// What it tries, as the report names it.
    pub name: String,
    pub attack: Attack,
    pub expect: Expect,
    /// The event kind it must cause, for its address.
    pub event: Option<&'static str>,
}

impl Case {
    pub fn new(name: impl Into<String>, attack: Attack, expect: Expect, event: Option<&'static str>) -> Self {
        Case { name: name.into(), attack, expect, event }
    }
}

/// An attack of its own: it connects from the address it is given.
pub type Exchange = dyn Fn(&Network, IpAddr) -> Seen;

/// How an attack is sent.
pub enum Attack {
    /// `curl ARGS` on a path of the gateway, as someone.
    Curl { args: Vec<String>, path: String, cred: Cred },
    /// These bytes over TLS (no client certificate): everything answered until the gateway
    /// closes or 10 s pass.
    Raw(Vec<u8>),
    /// Anything else: it connects from the address it is given.
    Custom(Box<Exchange>),
}

/// The credential a curl attack presents.
pub enum Cred {
    None,
    Token(String),
    /// The home's admin certificate.
    Admin,
    /// A certificate and key (files).
    Cert(PathBuf, PathBuf),
}

/// curl on `path` as `cred`, with `args`.
pub fn curl(cred: Cred, path: impl Into<String>, args: &[&str]) -> Attack {
    Attack::Curl { args: args.iter().map(|a| (*a).to_owned()).collect(), path: path.into(), cred }
}

/// What an attack must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An answer with this status (the first, over raw bytes).
    Status(u16),
    /// No answer: the handshake refused or the connection closed.
    NoAnswer,
    /// One answer at most, then the connection closed: a request smuggled behind the first was
    /// never read as one.
    OneAnswer,
    /// An answer whose text holds this (the frames an HTTP/2 exchange saw, say).
    Text(&'static str),
    /// Any answer, or none, while the gateway's resident memory grows by less than 32 MiB: a
    /// flood it absorbs (the well-behaved client is checked as for every case).
    Absorbed,
}

/// What an attack got.
#[derive(Debug, Default)]
pub struct Seen {
    /// The first answer's status (none: refused or closed).
    pub status: Option<u16>,
    /// Everything answered (a raw exchange: every status line and body).
    pub text: String,
}

impl Seen {
    /// An exchange's text, its first status line read.
    pub fn of_raw(text: String) -> Self {
        let status =
            text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
        Seen { status, text }
    }

    /// How many answers a raw exchange holds.
    pub fn answers(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }
}

/// A family's address block: 127.10.F.C for case C (from 1), the well-behaved client at .250.
fn address(family: u8, case: usize) -> IpAddr {
    IpAddr::from([127, 10, family, u8::try_from(case).expect("at most 240 cases a family")])
}

/// What every family needs: the network under attack and what must never leak.
pub struct Target<'a> {
    pub net: &'a Network,
    /// Secrets that no answer and no log may hold.
    pub secrets: Vec<String>,
    /// A well-behaved request: curl arguments and a path (admin certificate), answered 200.
    pub good: (Vec<String>, String),
}

impl<'a> Target<'a> {
    /// `net`, its keys and `tokens` as secrets, `GET /hello` as the well-behaved request.
    pub fn new(net: &'a Network, tokens: &[&str]) -> Self {
        let mut secrets: Vec<String> = tokens.iter().map(|t| (*t).to_owned()).collect();
        secrets.extend(key_material(&net.home));
        Target { net, secrets, good: (Vec::new(), "/hello".to_owned()) }
    }
}

/// Lines of every private key and payload keyring in `home` (a line of base64 is enough to
/// find a leak).
pub fn key_material(home: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![home.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "key" || e == "keys") {
                files.push(path);
            }
        }
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| l.len() >= 32 && !l.starts_with("-----") && !l.starts_with('#'))
                .filter_map(|l| l.rsplit(' ').next().unwrap_or(l).get(..32).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs `cases` of family `family` (its number, 1 to 200) against `target`, and fails with
/// every case that did not hold, by name.
pub fn run(family: &str, number: u8, target: &Target<'_>, cases: Vec<Case>) {
    let net = target.net;
    let stop = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    // The well-behaved client, all along (bounded: 10,000 requests or the family's end).
    let background = {
        let (stop, served, refused) = (stop.clone(), served.clone(), refused.clone());
        let (good, home, url) = (target.good.clone(), net.home.clone(), net.url.clone());
        let from = address(number, 250);
        std::thread::spawn(move || {
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match call_curl(&home, &url, from, &Cred::Admin, &good.0, &good.1) {
                    Seen { status: Some(200), .. } => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => refused.lock().unwrap().push(format!("{other:?}")),
                }
            }
        })
    };
    let mut failures = Vec::new();
    let count = cases.len();
    for (i, case) in cases.into_iter().enumerate() {
        let from = address(number, i + 1);
        if let Err(why) = check(target, from, &case) {
            failures.push(format!("{family} / {}: {why}", case.name));
        }
        let after = call_curl(
            &net.home,
            &net.url,
            address(number, 249),
            &Cred::Admin,
            &target.good.0,
            &target.good.1,
        );
        if after.status != Some(200) {
            failures.push(format!(
                "{family} / {}: the well-behaved client was refused after it: {after:?}",
                case.name
            ));
        }
    }
    stop.store(true, Ordering::Relaxed);
    background.join().unwrap();
    let refused = refused.lock().unwrap();
    if !refused.is_empty() {
        failures.push(format!(
            "{family}: the well-behaved client was refused {} times: {:?}",
            refused.len(),
            refused.first()
        ));
    }
    for leak in leaks(&net.home, &target.secrets) {
        failures.push(format!("{family}: a secret is in {leak}"));
    }
    eprintln!(
        "{family}: {count} cases, {} failed; the well-behaved client was served {} times meanwhile",
        failures.len(),
        served.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} of {count} {family} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One case: its answer, its event and no secret in the answer.
fn check(target: &Target<'_>, from: IpAddr, case: &Case) -> Result<(), String> {
    let net = target.net;
    let before = crate::audit(net).last().and_then(|e| e["id"].as_u64()).unwrap_or(0);
    let rss_before = resident_kib(net.gateway.pid());
    let seen = match &case.attack {
        Attack::Curl { args, path, cred } => call_curl(&net.home, &net.url, from, cred, args, path),
        Attack::Raw(bytes) => raw(net, from, bytes),
        Attack::Custom(f) => f(net, from),
    };
    match case.expect {
        Expect::Status(s) if seen.status != Some(s) => return Err(format!("expected {s}, got {seen:?}")),
        Expect::NoAnswer if seen.status.is_some() => return Err(format!("expected no answer, got {seen:?}")),
        Expect::OneAnswer if seen.answers() > 1 => return Err(format!("expected one answer, got {seen:?}")),
        Expect::Text(t) if !seen.text.contains(t) => return Err(format!("expected {t:?}, got {seen:?}")),
        Expect::Absorbed => {
            let grew = resident_kib(net.gateway.pid()).saturating_sub(rss_before);
            if grew > 32 << 10 {
                return Err(format!("the gateway grew by {grew} KiB"));
            }
        }
        _ => {}
    }
    if let Some(secret) = target.secrets.iter().find(|s| seen.text.contains(s.as_str())) {
        return Err(format!("the answer holds a secret ({}…)", &secret[..8]));
    }
    if let Some(kind) = case.event {
        let source = from.to_string();
        // From the case's address, or one the network recorded of itself during the case (a
        // job's worker: its source is no address).
        let mine = |e: &serde_json::Value| {
            e["source"] == source.as_str()
                || (e["id"].as_u64() > Some(before)
                    && e["source"].as_str().is_some_and(|s| s.parse::<IpAddr>().is_err()))
        };
        let found = net.eventually(Duration::from_secs(10), || crate::events_of(net, kind).iter().any(mine));
        if !found {
            let mine: Vec<String> = crate::audit(net)
                .into_iter()
                .filter(|e| e["source"] == source.as_str())
                .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
                .collect();
            return Err(format!("no {kind} event from {source} (its events: {mine:?}); answer {seen:?}"));
        }
    }
    Ok(())
}

/// The trust domain of `home` (`domain = "…"` in its rampart.toml).
fn domain_of(home: &Path) -> String {
    let config = std::fs::read_to_string(home.join("rampart.toml")).unwrap_or_default();
    let line = config.lines().find(|l| l.starts_with("domain = ")).unwrap_or("domain = \"local\"");
    line.trim_start_matches("domain = ").trim_matches('"').to_owned()
}

/// The PKI folder of `home`'s own trust domain.
fn pki_of(home: &Path) -> PathBuf {
    home.join("pki").join(domain_of(home))
}

/// A process's resident memory (`VmRSS`), in KiB (0 if unknown).
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// curl from `from` (its status and body; no status when it got no answer).
fn call_curl(home: &Path, url: &str, from: IpAddr, cred: &Cred, args: &[String], path: &str) -> Seen {
    let pki = pki_of(home);
    let ca = pki.join("ca.pem");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--max-time", "20", "--interface", &from.to_string(), "--cacert"])
        .arg(&ca);
    let issued = pki.join("issued");
    match cred {
        Cred::None => {}
        Cred::Token(t) => {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        Cred::Admin => {
            cmd.arg("--cert").arg(issued.join("admin.pem")).arg("--key").arg(issued.join("admin.key"));
        }
        Cred::Cert(cert, key) => {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
    }
    let out = cmd
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("{url}{path}"))
        .output()
        .expect("curl is installed by scripts/test");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = code.trim().parse().ok().filter(|s| *s != 0);
    Seen { status, text: body.to_owned() + &String::from_utf8_lossy(&out.stderr) }
}

/// `bytes` over TLS from `from` without a client certificate; all that comes back within 10 s.
pub fn raw(net: &Network, from: IpAddr, bytes: &[u8]) -> Seen {
    let Some(mut tls) = tls_from(net, from, None) else { return Seen::default() };
    if tls.write_all(bytes).and_then(|()| tls.flush()).is_err() {
        return Seen::default();
    }
    Seen::of_raw(read_all(&mut tls, Duration::from_secs(10)))
}

/// A TLS connection to the gateway from `from`, presenting `identity` if given; `None` when the
/// handshake is refused.
pub fn tls_from(
    net: &Network,
    from: IpAddr,
    identity: Option<rampart_net::tls::LiveIdentity>,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    tls_with(net, from, identity, &[])
}

/// [`tls_from`], offering the protocols `alpn` (`h2`, say).
pub fn tls_with(
    net: &Network,
    from: IpAddr,
    identity: Option<rampart_net::tls::LiveIdentity>,
    alpn: &[&[u8]],
) -> Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let pki = pki_of(&net.home);
    let (roots, _) = rampart_net::TlsMaterial::load_roots(&pki.join("ca.pem"), None).unwrap();
    let domain = rampart_pki::TrustDomain::new(&domain_of(&net.home)).unwrap();
    let mut config =
        rampart_net::tls::client_config(&domain, roots, Vec::new(), identity, &[rampart_pki::Role::Gateway])
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let to: SocketAddr = net.url.trim_start_matches("https://").parse().unwrap();
    let tcp = bind_connect(from, to)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    Some(tls)
}

/// A TCP connection from `from` to `to`.
pub fn bind_connect(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&SocketAddr::new(from, 0).into()).ok()?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5)).ok()?;
    Some(socket.into())
}

/// Everything `r` gives until it closes, fails or `limit` passes, as text.
pub fn read_all(r: &mut impl Read, limit: Duration) -> String {
    String::from_utf8_lossy(&read_bytes(r, limit)).into_owned()
}

/// Everything `r` gives until it closes, fails or `limit` passes (1 MiB at most).
pub fn read_bytes(r: &mut impl Read, limit: Duration) -> Vec<u8> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while start.elapsed() < limit && out.len() < 1 << 20 {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// The logs of `home` holding one of `secrets`.
fn leaks(home: &Path, secrets: &[String]) -> Vec<String> {
    let logs = std::fs::read_dir(home)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "jsonl"));
    logs.filter(|p| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        secrets.iter().any(|s| text.contains(s.as_str()))
    })
    .map(|p| p.display().to_string())
    .collect()
}

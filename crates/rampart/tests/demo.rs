//! `rampart demo`: the README's main command runs a whole network, survives the kill, and
//! leaves nothing running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && cmd.contains("rampart") {
                out.push(cmd);
            }
        }
    }
    out
}

/// Starts `rampart --home HOME demo ARGS` with its stdout piped.
fn spawn_demo(home: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("--home")
        .arg(home)
        .arg("demo")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Sends SIGINT (Ctrl-C) to `child` and waits for it.
fn interrupt(mut child: std::process::Child) -> std::process::ExitStatus {
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    child.wait().unwrap()
}

#[test]
fn demo_runs_with_a_failover_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo-home");
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["demo", "--duration", "10s", "--clients", "4"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("SIGKILL n2") && text.contains("restarted n2"), "{text}");
    assert!(text.contains("demo --serve"), "the demo does not say that --serve exists: {text}");
    let failed = text.lines().find(|l| l.starts_with("failed ")).unwrap();
    assert_eq!(failed.split_whitespace().last(), Some("0"), "{text}");
    assert!(processes_mentioning(home.to_str().unwrap()).is_empty(), "the demo left processes running");
    // A home that already holds a network is refused.
    let again =
        Command::new(BIN).arg("--home").arg(&home).args(["demo", "--duration", "1s"]).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("fresh home"));
}

#[test]
fn ctrl_c_stops_everything_the_demo_started() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo-home");
    let mut child = spawn_demo(&home, &["--duration", "60s", "--clients", "2"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    loop {
        let line = lines.next().expect("demo output").unwrap();
        if line.contains("req/s") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no progress line");
    }
    assert!(!processes_mentioning(home.to_str().unwrap()).is_empty());
    let status = interrupt(child);
    assert!(!status.success(), "an interrupted demo must not report success");
    assert!(processes_mentioning(home.to_str().unwrap()).is_empty(), "the demo left processes running");
}

#[test]
fn serve_keeps_the_network_up_for_the_dashboard_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo-home");
    let mut child = spawn_demo(&home, &["--serve", "--duration", "3s", "--clients", "2"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut dashboard, mut token_file) = (None, None);
    let start = Instant::now();
    while dashboard.is_none() || token_file.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no dashboard address printed");
        let line = lines.next().expect("demo output").unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["dashboard", url] => dashboard = Some((*url).to_owned()),
            ["sign", "in", .., file] => token_file = Some((*file).to_owned()),
            _ => {}
        }
    }
    let (dashboard, token_file) = (dashboard.unwrap(), token_file.unwrap());
    let token = std::fs::read_to_string(&token_file).unwrap();
    let ca = home.join("pki/local/ca.pem");
    let curl = |url: &str, token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "--cacert"]).arg(&ca);
        if let Some(t) = token {
            c.arg("-H").arg(format!("Authorization: Bearer {}", t.trim()));
        }
        let out = c.args(["-w", "\n%{http_code}", url]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = curl(&dashboard, None);
    assert!(page.ends_with("\n200") && page.contains("<html"), "{page}");
    let base = dashboard.trim_end_matches("/_rampart/ui");
    let status = curl(&format!("{base}/_rampart/status"), Some(&token));
    assert!(status.ends_with("\n200") && status.contains("\"n1\""), "{status}");
    // The network stays up past the load phase (the dashboard answered after it): Ctrl-C ends it.
    let status = interrupt(child);
    assert!(status.success(), "a served demo ended by Ctrl-C is a success");
    assert!(processes_mentioning(home.to_str().unwrap()).is_empty(), "the demo left processes running");
}

#[test]
fn the_federation_demo_shows_each_step_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fed");
    let out = Command::new(BIN)
        .arg("--home")
        .arg(&root)
        .args(["demo", "--federation"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in [
        "west's node saw \"peer:east/user/alice\"",
        "→ 403",
        "policy_denied for peer:east/user/bob",
        "east answers 503 with Retry-After",
        "alice served again",
        "ok: every step",
    ] {
        assert!(text.contains(step), "{step:?} missing from:\n{text}");
    }
    assert!(processes_mentioning(root.to_str().unwrap()).is_empty(), "the demo left processes running");
}

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
    let mut child = Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["demo", "--duration", "60s", "--clients", "2"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted demo must not report success");
    assert!(processes_mentioning(home.to_str().unwrap()).is_empty(), "the demo left processes running");
}

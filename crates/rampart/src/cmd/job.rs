//! `rampart job`: submit a file to the `jobs` service and follow it (a progress bar on a
//! terminal), a job's status, its histogram drawn as a bar per channel or as JSON. Requests go
//! through `rampart call`'s client: the home's admin certificate by default, or a token.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cli::{CallArgs, JobCommand, JobVia};
use crate::cmd::call::{HttpStatus, fetch};
use crate::home::Home;

/// How often `--wait` asks.
const POLL: Duration = Duration::from_millis(250);

pub fn run(home: &Home, c: JobCommand) -> Result<()> {
    match c {
        JobCommand::Submit { file, wait, tasks, via } => {
            let query = tasks.map(|n| format!("?tasks={n}")).unwrap_or_default();
            let data = format!("@{}", file.display());
            // One key per submission: a retry through another gateway gives the same job.
            let key = format!("Idempotency-Key: {}", random_key()?);
            let headers = vec!["Content-Type: application/octet-stream".to_owned(), key];
            let args = call_args(home, &via, &format!("/jobs/histogram{query}"), Some(data), headers)?;
            let id = json_of(home, &args)?["id"].as_str().context("the service answered no id")?.to_owned();
            if !wait {
                outln!("{id}");
                return Ok(());
            }
            eprintln!("job {id} submitted");
            follow(home, &via, &id)?;
            print_result(&json_of(
                home,
                &call_args(home, &via, &format!("/jobs/{id}/result"), None, vec![])?,
            )?);
            Ok(())
        }
        JobCommand::Status { id, json, via } => {
            let v =
                json_of(home, &call_args(home, &via, &format!("/jobs/{}", checked(&id)?), None, vec![])?)?;
            if json {
                outln!("{v}");
            } else {
                print_status(&v);
            }
            Ok(())
        }
        JobCommand::Result { id, json, via } => {
            let path = format!("/jobs/{}/result", checked(&id)?);
            let v = json_of(home, &call_args(home, &via, &path, None, vec![])?)?;
            if json {
                outln!("{v}");
            } else {
                print_result(&v);
            }
            Ok(())
        }
    }
}

/// Waits until job `id` is finished, drawing its progress; an error if it failed.
fn follow(home: &Home, via: &JobVia, id: &str) -> Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} tasks  {msg}  {elapsed}")?
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let args = call_args(home, via, &format!("/jobs/{id}"), None, vec![])?;
    loop {
        let v = json_of(home, &args)?;
        bar.set_length(v["tasks"]["total"].as_u64().unwrap_or(0));
        bar.set_position(v["tasks"]["done"].as_u64().unwrap_or(0));
        bar.set_message(format!("{} on {}", v["state"].as_str().unwrap_or("?"), nodes(&v)));
        match v["state"].as_str() {
            Some("done") => {
                bar.finish_and_clear();
                eprintln!("job {id} done in {:.1} s on {}", started.elapsed().as_secs_f64(), nodes(&v));
                return Ok(());
            }
            Some("failed") => {
                bar.finish_and_clear();
                bail!("job {id} failed: {}", v["reason"].as_str().unwrap_or("no reason given"));
            }
            _ => std::thread::sleep(POLL),
        }
    }
}

fn nodes(v: &Value) -> String {
    let names: Vec<&str> = v["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if names.is_empty() { "no node yet".to_owned() } else { names.join(", ") }
}

fn print_status(v: &Value) {
    outln!(
        "job {}: {} ({} of {} tasks) on {}",
        v["id"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["tasks"]["done"],
        v["tasks"]["total"],
        nodes(v)
    );
    outln!("submitted {}", v["submitted"].as_str().unwrap_or("?"));
    if let Some(f) = v["finished"].as_str() {
        outln!("finished  {f}");
    }
    if let Some(r) = v["reason"].as_str() {
        outln!("reason    {r}");
    }
}

/// Each channel as a bar of 64 columns (4 bins each), scaled to its highest column.
fn print_result(v: &Value) {
    let channels: Vec<(String, Vec<u64>)> = match v["kind"].as_str() {
        Some("bytes") => vec![("bytes".to_owned(), counts(&v["bins"]))],
        _ => v["channels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, bins)| (name.clone(), counts(bins)))
            .collect(),
    };
    if let (Some(w), Some(h)) = (v["width"].as_u64(), v["height"].as_u64()) {
        outln!("image {w}×{h}: {} pixels", w * h);
    }
    for (name, bins) in channels {
        let total: u64 = bins.iter().sum();
        outln!("{name:>5} {}  {total} counted", spark(&bins));
    }
    outln!("{:>5} 0{:>63}", "", "255");
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array().into_iter().flatten().map(|n| n.as_u64().unwrap_or(0)).collect()
}

fn spark(bins: &[u64]) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let columns: Vec<u64> = bins.chunks(4).map(|c| c.iter().sum()).collect();
    let top = columns.iter().copied().max().unwrap_or(0).max(1);
    columns.iter().map(|&c| if c == 0 { ' ' } else { LEVELS[((c * 7) / top) as usize] }).collect()
}

/// The answer of `args` as JSON, or an error saying the service's reason.
fn json_of(home: &Home, args: &CallArgs) -> Result<Value> {
    let a = fetch(home, args, None)?;
    let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    if !a.status.is_success() {
        let why =
            v["reason"].as_str().map_or_else(|| String::from_utf8_lossy(&a.body).into_owned(), str::to_owned);
        eprintln!("rampart job: {}: {why}", a.status);
        return Err(HttpStatus(a.status.as_u16()).into());
    }
    Ok(v)
}

fn call_args(
    home: &Home,
    via: &JobVia,
    path: &str,
    data: Option<String>,
    headers: Vec<String>,
) -> Result<CallArgs> {
    let base = match &via.gateway {
        Some(g) => g.trim_end_matches('/').to_owned(),
        None => home.gateway_url(&home.config()?),
    };
    Ok(CallArgs {
        url: format!("{base}{path}"),
        gateways: Vec::new(),
        method: None,
        data,
        headers,
        encrypt: false,
        credentials: via.credentials.clone(),
        verbose: false,
    })
}

/// A job id as the service makes them (32 hexadecimal digits), or a clear error.
fn checked(id: &str) -> Result<&str> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        bail!("{id:?} is not a job id (32 hexadecimal digits, as `rampart job submit` prints)")
    }
}

fn random_key() -> Result<String> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

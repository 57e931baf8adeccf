//! A program as a service: an executable run once per request, CGI-style (`cgi`), in its own
//! process group with an empty environment plus the request's variables, under limits — a
//! timeout (504; the whole group killed, so a backgrounded child dies too), an output cap (502,
//! read in bounded pieces, never buffered whole), a body cap (413 before it starts) and a cap
//! on concurrent runs (429 at once). Its stderr goes to the node's log, bounded, never into the
//! answer. `folder` finds programs in a services folder and follows it.

pub mod cgi;
pub mod folder;
pub mod limits;
pub mod watch;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

pub use self::limits::{Limits, LimitsBook, LimitsError, Overrides};
use crate::service::{Answer, Answering, Call, Service};

/// Most stderr kept for the log, per run.
const MAX_STDERR: usize = 16 << 10;

/// How a program is started: through a launcher (the `rampart run-program` command) that sets
/// its resource limits and `no_new_privs`, and its user, then execs it — in the child alone,
/// after the fork, where the node itself cannot reach without unsafe code.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// The launcher: the rampart binary.
    pub launcher: PathBuf,
    /// The user (uid, gid) programs run as; `None`: the node's.
    pub run_as: Option<(u32, u32)>,
    /// Most open files of a run.
    pub max_files: u64,
    /// Largest file a run may write, in bytes.
    pub max_file_bytes: u64,
    /// Most processes of the user programs run as.
    pub max_procs: u64,
}

impl Sandbox {
    /// The launcher's arguments for `exe` with a CPU time limit of `cpu_secs`.
    fn args(&self, cpu_secs: u64, exe: &std::path::Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "run-program".into(),
            format!("--cpu-secs={cpu_secs}").into(),
            format!("--max-files={}", self.max_files).into(),
            format!("--max-file-bytes={}", self.max_file_bytes).into(),
            format!("--max-procs={}", self.max_procs).into(),
            format!("--parent={}", std::process::id()).into(),
        ];
        if let Some((uid, gid)) = self.run_as {
            args.push(format!("--uid={uid}").into());
            args.push(format!("--gid={gid}").into());
        }
        args.push("--".into());
        args.push(exe.as_os_str().to_owned());
        args
    }
}

/// Who hears of programs that failed or were refused: the gateway's audit log, through the node.
pub trait Failures: Send + Sync {
    /// `service`'s program failed for `why`, called by `principal`.
    fn failed(&self, service: &str, principal: &str, why: &str);
    /// A file of the services folder, `name`, is not run, for `why`.
    fn refused(&self, name: &str, why: &str);
}

/// One program, hosted as a service.
pub struct Program {
    name: String,
    path: PathBuf,
    limits: Limits,
    sandbox: Option<Sandbox>,
    runs: Arc<Semaphore>,
    failures: Option<Arc<dyn Failures>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("name", &self.name).field("path", &self.path).finish_non_exhaustive()
    }
}

/// How a run ended, before it is an answer.
enum Ran {
    Exited(std::process::ExitStatus, Vec<u8>),
    OutputTooLarge,
    TimedOut,
}

impl Program {
    /// The program at `path`, served as `name` under `limits`, started through `sandbox`
    /// (directly without one).
    pub fn new(
        name: String,
        path: PathBuf,
        (limits, sandbox): (Limits, Option<Sandbox>),
        failures: Option<Arc<dyn Failures>>,
    ) -> Self {
        Program {
            name,
            path,
            runs: Arc::new(Semaphore::new(limits.max_runs.max(1))),
            limits,
            sandbox,
            failures,
        }
    }

    /// Its executable.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    async fn run(&self, call: Call<'_>) -> Answer {
        if call.body.len() > self.limits.max_body {
            let why = format!("{} takes request bodies of at most {} bytes", self.name, self.limits.max_body);
            return Answer::error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &why);
        }
        let Ok(_slot) = self.runs.clone().try_acquire_owned() else {
            let why = format!("{} runs at most {} at once; try again", self.name, self.limits.max_runs);
            let mut a = Answer::error(StatusCode::TOO_MANY_REQUESTS, "busy", &why);
            a.headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return a;
        };
        let principal = call.principal.to_owned();
        let fail = |status: StatusCode, kind: &str, why: String| {
            tracing::warn!("service {}: {why}", self.name);
            if let Some(f) = &self.failures {
                f.failed(&self.name, &principal, &why);
            }
            Answer::error(status, kind, &why)
        };
        // Removed, with whatever the run left in it, when the run is over.
        let tmp = match self.private_tmp() {
            Ok(t) => t,
            Err(e) => {
                let why = format!("could not make its temporary directory: {e}");
                return fail(StatusCode::BAD_GATEWAY, "program_failed", why);
            }
        };
        let mut child = match self.spawn(&call, tmp.path()).await {
            Ok(c) => c,
            Err(e) => {
                return fail(StatusCode::BAD_GATEWAY, "program_failed", format!("could not start: {e}"));
            }
        };
        let group = child.id().and_then(|pid| rustix::process::Pid::from_raw(pid as i32));
        let ran = self.wait(&mut child, call.body).await;
        // Whatever it left behind in its group (a backgrounded child) goes with it.
        if let Some(pgid) = group {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = child.wait().await;
        match ran {
            Ran::Exited(status, out) if status.success() => match cgi::answer(out) {
                Ok(a) => a,
                Err(why) => fail(StatusCode::BAD_GATEWAY, "bad_program_answer", format!("its answer: {why}")),
            },
            Ran::Exited(status, _) => {
                fail(StatusCode::BAD_GATEWAY, "program_failed", format!("the program ended with {status}"))
            }
            Ran::OutputTooLarge => fail(
                StatusCode::BAD_GATEWAY,
                "program_failed",
                format!("the program wrote more than {} bytes; it was stopped", self.limits.max_output),
            ),
            Ran::TimedOut => fail(
                StatusCode::GATEWAY_TIMEOUT,
                "program_timeout",
                format!("the program ran past {} ms; it was stopped", self.limits.timeout.as_millis()),
            ),
        }
    }

    /// A temporary directory for one run (its `TMPDIR`), the program's user's alone (0700): runs
    /// of other services, or other runs of this one, cannot read or plant files in it.
    fn private_tmp(&self) -> std::io::Result<tempfile::TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("rampart-{}-", self.name))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        if let Some((uid, gid)) = self.sandbox.as_ref().and_then(|s| s.run_as) {
            let (uid, gid) = (rustix::process::Uid::from_raw(uid), rustix::process::Gid::from_raw(gid));
            rustix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        Ok(dir)
    }

    /// Starts the program, retrying (bounded) while its file is still being written.
    async fn spawn(&self, call: &Call<'_>, tmp: &std::path::Path) -> std::io::Result<tokio::process::Child> {
        let dir = self.path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let mut delay = Duration::from_millis(10);
        loop {
            let mut cmd = match &self.sandbox {
                Some(sandbox) => {
                    let mut cmd = tokio::process::Command::new(&sandbox.launcher);
                    cmd.args(sandbox.args(self.limits.timeout.as_secs() + 1, &self.path));
                    cmd
                }
                None => tokio::process::Command::new(&self.path),
            };
            cmd.env_clear()
                .envs(cgi::environment(call, &self.name))
                .env("TMPDIR", tmp)
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            match cmd.spawn() {
                Err(e)
                    if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                        && delay < Duration::from_millis(700) =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// Feeds the body, reads the output under the cap, and waits, all within the timeout.
    /// Feeding and the stderr log run beside it, and end when the group is killed at the latest.
    async fn wait(&self, child: &mut tokio::process::Child, body: Vec<u8>) -> Ran {
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                // A program that does not read its body closes the pipe: not an error.
                let _ = stdin.write_all(&body).await;
            });
        }
        if let Some(err) = child.stderr.take() {
            let name = self.name.clone();
            tokio::spawn(async move {
                let text = keep_first(err, MAX_STDERR).await;
                for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.is_empty()) {
                    tracing::warn!("service {name} (stderr): {line}");
                }
            });
        }
        let stdout = child.stdout.take();
        let max = self.limits.max_output;
        let run = async move {
            let (out, over) = match stdout {
                Some(out) => read_capped(out, max).await,
                None => (Vec::new(), false),
            };
            if over {
                return Ran::OutputTooLarge;
            }
            match child.wait().await {
                Ok(status) => Ran::Exited(status, out),
                Err(_) => Ran::OutputTooLarge,
            }
        };
        tokio::time::timeout(self.limits.timeout, run).await.unwrap_or(Ran::TimedOut)
    }
}

/// Reads `from` to its end, keeping its first `max` bytes (the rest is read and dropped, so a
/// chatty program is not stopped by a full pipe).
async fn keep_first(mut from: impl AsyncRead + Unpin, max: usize) -> Vec<u8> {
    let (mut kept, mut chunk) = (Vec::new(), vec![0u8; 8192]);
    while let Ok(n) = from.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// Reads `from` to its end or to `max` bytes; whether there was more.
async fn read_capped(from: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut limited = from.take(max as u64 + 1);
    let _ = limited.read_to_end(&mut buf).await;
    let over = buf.len() > max;
    buf.truncate(max);
    (buf, over)
}

impl Service for Program {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(self.run(call))
    }

    fn takes(&self) -> Option<Duration> {
        Some(self.limits.timeout)
    }
}

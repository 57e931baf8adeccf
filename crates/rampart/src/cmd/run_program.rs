//! `rampart run-program`: how a node starts one of its programs. Between the node's fork and
//! the program's exec, limits must be set in the child alone; doing it in the node would take
//! unsafe code (`pre_exec`). So the node starts this command instead, which sets the resource
//! limits and `no_new_privs` on itself, takes the user asked for (supplementary groups
//! dropped), asks to be killed if the node dies, and execs the program.
//!
//! The user is changed here, by syscalls, and not by `Command::uid` at the exec: a change of
//! user clears the parent-death signal, which must therefore be set after it. This process has
//! one thread, so the per-thread `setres[ug]id` of the kernel is the whole process's.

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result, bail};
use rustix::process::{Gid, Pid, Resource, Rlimit, Signal, Uid, setrlimit};

use crate::cli::RunProgramArgs;

pub fn run(args: RunProgramArgs) -> Result<()> {
    let limit = |resource, n: u64, what: &str| {
        setrlimit(resource, Rlimit { current: Some(n), maximum: Some(n) })
            .with_context(|| format!("limiting {what}"))
    };
    limit(Resource::Cpu, args.cpu_secs, "CPU time")?;
    limit(Resource::Nofile, args.max_files, "open files")?;
    limit(Resource::Fsize, args.max_file_bytes, "file size")?;
    limit(Resource::Nproc, args.max_procs, "processes")?;
    rustix::thread::set_no_new_privs(true).context("setting no_new_privs")?;
    if let (Some(uid), Some(gid)) = (args.uid, args.gid) {
        let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
        rustix::thread::set_thread_groups(&[]).context("dropping supplementary groups")?;
        rustix::thread::set_thread_res_gid(gid, gid, gid).context("changing group")?;
        rustix::thread::set_thread_res_uid(uid, uid, uid).context("changing user")?;
    }
    // A node that dies (even by SIGKILL) takes its running programs with it: none goes on
    // answering nobody, holding the node's resources, after a restart.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .context("setting the parent-death signal")?;
    if let Some(node) = args.parent
        && rustix::process::getppid() != Pid::from_raw(node)
    {
        bail!("the node that started this program is gone");
    }
    let mut program = std::process::Command::new(&args.program);
    // A file still open for writing (an install under way, written in place) is refused by
    // the kernel with ETXTBSY until its writer is done: wait for that, a bounded while.
    let (started, mut delay) = (std::time::Instant::now(), std::time::Duration::from_millis(5));
    loop {
        let err = program.exec();
        let busy = err.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error());
        if !busy || started.elapsed() > BUSY_FOR {
            bail!("starting {}: {err}", args.program.display())
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(std::time::Duration::from_millis(100));
    }
}

/// How long a file still being written is waited for.
const BUSY_FOR: std::time::Duration = std::time::Duration::from_secs(2);

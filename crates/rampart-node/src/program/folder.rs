//! A services folder (`rampart node --services-dir DIR`): each executable regular file in it,
//! or folder holding an executable `run`, is a service named after it. Watched (`watch`), and
//! looked at again every `every` as a safety net: the node then hosts the new set and
//! registers it. What may not be run is left out with an event: a file others may write,
//! one owned by someone else than root or the node's user, a name that is no service name.
//! Dot-files and editors' and installers' temporary files (`~`, `.tmp`, `.part`) are passed over
//! quietly: an install writes such a file, then renames it into place. A file written in
//! place is taken only once it has not changed for [`SETTLE`]; while a writer still holds it
//! open, the kernel refuses to run it (`ETXTBSY`) and the launcher waits: a program is never
//! run half-written.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::watch::Watch;
use super::{Failures, LimitsBook, Program, Sandbox};
use crate::Services;

/// How long a new file must have been left alone before it is served: it may still be being
/// written.
pub const SETTLE: Duration = Duration::from_millis(300);

/// What a scan found: the programs by service name, and what was left out and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Service name → executable.
    pub programs: BTreeMap<String, PathBuf>,
    /// Entry name → why it is not a service.
    pub refused: BTreeMap<String, String>,
    /// Programs changed less than [`SETTLE`] ago: their executable, and when it will have
    /// settled.
    pub settling: BTreeMap<String, (PathBuf, SystemTime)>,
}

/// Looks at `dir` once.
pub fn scan(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    let me = rustix::process::getuid().as_raw();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let temporary = [".tmp", ".part", "~", ".swp"].iter().any(|s| name.ends_with(s));
        if name.starts_with('.') || temporary {
            continue;
        }
        match runnable(&entry.path(), me) {
            Ok(exe) if rampart_auth::ServiceName::parse(&name).is_ok() => match settles_at(&exe) {
                Some(at) => drop(found.settling.insert(name, (exe, at))),
                None => drop(found.programs.insert(name, exe)),
            },
            Ok(_) => {
                found.refused.insert(name, "not a service name (letters, digits, '.', '-', '_')".into());
            }
            Err(Some(why)) => {
                found.refused.insert(name, why);
            }
            Err(None) => {}
        }
    }
    Ok(found)
}

/// When `exe`, changed less than [`SETTLE`] ago, will have been left alone that long; `None`
/// when it has been (a modification time ahead of the clock counts as settled: it would
/// otherwise never be).
fn settles_at(exe: &Path) -> Option<SystemTime> {
    let changed = std::fs::metadata(exe).and_then(|m| m.modified()).ok()?;
    let age = SystemTime::now().duration_since(changed).ok()?;
    (age < SETTLE).then(|| changed + SETTLE)
}

/// The executable of an entry: the file itself, or `run` in a folder. `Err(None)`: not meant
/// as a program (a plain data file); `Err(Some(why))`: meant as one, but refused.
fn runnable(path: &Path, me: u32) -> Result<PathBuf, Option<String>> {
    let exe = if path.is_dir() { path.join("run") } else { path.to_owned() };
    let Ok(meta) = std::fs::metadata(&exe) else { return Err(None) };
    let mode = meta.permissions().mode();
    if !meta.is_file() || mode & 0o111 == 0 {
        return Err(None);
    }
    if mode & 0o002 != 0 {
        return Err(Some(format!("{} is writable by anyone: not run", exe.display())));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Some(format!(
            "{} belongs to user {}, neither root nor this node's: not run",
            exe.display(),
            meta.uid()
        )));
    }
    Ok(exe)
}

/// Keeps `node` hosting `base` (its built-ins and apps) plus the programs of `dir`, looking
/// again whenever the folder changes and every `every` anyway, until the task is stopped. A
/// program already hosted stays the same service (its run count goes on) while its file stays
/// where it was; each run execs the file anew, so a replaced file answers from its next run.
pub async fn follow(
    dir: PathBuf,
    node: Arc<crate::Node>,
    base: Services,
    (limits, sandbox): (LimitsBook, Option<Sandbox>),
    failures: Option<Arc<dyn Failures>>,
    every: Duration,
) {
    let mut watch = match Watch::new(&dir) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("services folder {}: not watched ({e}); looked at every {every:?}", dir.display());
            None
        }
    };
    let mut hosted: BTreeMap<String, Arc<Program>> = BTreeMap::new();
    let mut warned: BTreeSet<(String, String)> = BTreeSet::new();
    let mut first = true;
    loop {
        let mut next_look = every;
        match scan(&dir) {
            Ok(found) => {
                for (name, why) in &found.refused {
                    if warned.insert((name.clone(), why.clone())) {
                        tracing::warn!("services folder {}: {name}: {why}", dir.display());
                        if let Some(f) = &failures {
                            f.refused(name, why);
                        }
                    }
                }
                if let Some(at) = found.settling.values().map(|(_, at)| at).min() {
                    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                    next_look = next_look.min(wait + Duration::from_millis(10));
                }
                if let Some(w) = &watch {
                    for exe in found.programs.values().filter(|exe| exe.ends_with("run")) {
                        if let Some(folder) = exe.parent() {
                            let _ = w.add(folder);
                        }
                    }
                }
                // A program already served whose file was just replaced goes on being served:
                // a renamed-in file is whole, and one still being written in place cannot run
                // (ETXTBSY) until its writer is done. Only a new name waits for its file to settle.
                let mut programs = found.programs;
                for (name, (exe, _)) in found.settling {
                    if hosted.get(&name).is_some_and(|p| p.path() == exe) {
                        programs.insert(name, exe);
                    }
                }
                let next: BTreeMap<String, Arc<Program>> = programs
                    .into_iter()
                    .map(|(name, exe)| {
                        let program = match hosted.get(&name) {
                            Some(p) if p.path() == exe => p.clone(),
                            _ => Arc::new(Program::new(
                                name.clone(),
                                exe,
                                (limits.of(&name), sandbox.clone()),
                                failures.clone(),
                            )),
                        };
                        (name, program)
                    })
                    .collect();
                let changed = first
                    || next.keys().ne(hosted.keys())
                    || next.iter().any(|(n, p)| !hosted.get(n).is_some_and(|h| Arc::ptr_eq(h, p)));
                if changed {
                    let mut services = base.clone();
                    for (name, program) in &next {
                        if services.contains_key(name) {
                            tracing::warn!("services folder: {name} is hosted already; the folder's is not");
                            continue;
                        }
                        services.insert(name.clone(), program.clone());
                    }
                    let names: Vec<&str> = next.keys().map(String::as_str).collect();
                    tracing::info!("services folder {}: {}", dir.display(), names.join(", "));
                    node.replace_services(services);
                    hosted = next;
                    first = false;
                }
            }
            Err(e) => tracing::warn!("services folder {}: {e}", dir.display()),
        }
        match &mut watch {
            Some(w) => {
                tokio::select! {
                    changed = w.changed() => if changed.is_err() {
                        tokio::time::sleep(next_look).await;
                    },
                    () = tokio::time::sleep(next_look) => {}
                }
            }
            None => tokio::time::sleep(next_look).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A program written a while ago (settled).
    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = write_now(dir, name, mode);
        let file = std::fs::File::options().write(true).open(&p).unwrap();
        file.set_modified(SystemTime::now() - SETTLE * 2).unwrap();
        p
    }

    fn write_now(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_file_just_written_waits_until_it_has_settled() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_now(dir.path(), "fresh", 0o755);
        let found = scan(dir.path()).unwrap();
        assert!(found.programs.is_empty());
        let (_, at) = found.settling["fresh"];
        assert!(at > SystemTime::now() && at <= SystemTime::now() + SETTLE);
        let file = std::fs::File::options().write(true).open(&p).unwrap();
        file.set_modified(SystemTime::now() - SETTLE).unwrap();
        assert_eq!(scan(dir.path()).unwrap().programs["fresh"], p);
    }

    #[test]
    fn a_scan_takes_executables_and_run_folders_and_says_what_it_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "hello", 0o755);
        write(d, "notes.txt", 0o644);
        write(d, ".hidden", 0o755);
        write(d, "half.tmp", 0o755);
        write(d, "open", 0o777);
        write(d, "bad name", 0o755);
        std::fs::create_dir(d.join("sorter")).unwrap();
        write(&d.join("sorter"), "run", 0o755);
        std::fs::create_dir(d.join("empty")).unwrap();
        let found = scan(d).unwrap();
        let names: Vec<&str> = found.programs.keys().map(String::as_str).collect();
        assert_eq!(names, ["hello", "sorter"]);
        assert_eq!(found.programs["sorter"], d.join("sorter/run"));
        let refused: Vec<&str> = found.refused.keys().map(String::as_str).collect();
        assert_eq!(refused, ["bad name", "open"]);
        assert!(found.refused["open"].contains("writable by anyone"));
    }
}

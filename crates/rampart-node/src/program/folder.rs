//! A services folder (`rampart node --services-dir DIR`): each executable regular file in it,
//! or folder holding an executable `run`, is a service named after it. Looked at again every
//! `every` (a file added, replaced or removed shows within it): the node then hosts the new set
//! and registers it. What may not be run is left out with an event: a file others may write,
//! one owned by someone else than root or the node's user, a name that is no service name.
//! Dot-files and editors' and installers' temporary files (`~`, `.tmp`, `.part`) are passed over
//! quietly: an install writes such a file, then renames it into place.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Failures, Limits, Program, Sandbox};
use crate::Services;

/// What a scan found: the programs by service name, and what was left out and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Service name → executable.
    pub programs: BTreeMap<String, PathBuf>,
    /// Entry name → why it is not a service.
    pub refused: BTreeMap<String, String>,
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
            Ok(exe) if rampart_auth::ServiceName::parse(&name).is_ok() => {
                found.programs.insert(name, exe);
            }
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
/// every `every`, until the task is stopped. A program already hosted stays the same service
/// (its run count goes on) while its file stays where it was; each run execs the file anew, so
/// a replaced file answers from its next run.
pub async fn follow(
    dir: PathBuf,
    node: Arc<crate::Node>,
    base: Services,
    (limits, sandbox): (Limits, Option<Sandbox>),
    failures: Option<Arc<dyn Failures>>,
    every: Duration,
) {
    let mut hosted: BTreeMap<String, Arc<Program>> = BTreeMap::new();
    let mut warned: BTreeSet<(String, String)> = BTreeSet::new();
    let mut first = true;
    loop {
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
                let next: BTreeMap<String, Arc<Program>> = found
                    .programs
                    .into_iter()
                    .map(|(name, exe)| {
                        let program = match hosted.get(&name) {
                            Some(p) if p.path() == exe => p.clone(),
                            _ => Arc::new(Program::new(
                                name.clone(),
                                exe,
                                (limits, sandbox.clone()),
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
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
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

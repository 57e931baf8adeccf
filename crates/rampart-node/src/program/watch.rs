//! Wakes the services folder's follower as soon as something in the folder changes (Linux
//! inotify), so a dropped file answers at once rather than at the next periodic look, which
//! stays as the safety net (an overflowed queue, a filesystem that sends no events). rustix, already a dependency, binds inotify; the `notify` crate would add
//! a thread and a dozen crates to watch a few folders on one platform.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::sync::mpsc;

/// An inotify instance watching some folders. Its events are read by a thread of its own
/// (blocking reads: tokio's `AsyncFd` would take unsafe code, which the workspace forbids);
/// the thread ends at the first event after the watch is dropped.
#[derive(Debug)]
pub struct Watch {
    fd: Arc<OwnedFd>,
    woke: mpsc::Receiver<()>,
}

impl Watch {
    /// Watches `dir`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC)?);
        let (tx, woke) = mpsc::channel(1);
        let watch = Watch { fd: fd.clone(), woke };
        watch.add(dir)?;
        std::thread::Builder::new().name("services-folder-watch".into()).spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match rustix::io::read(&*fd, &mut buf) {
                    // A wake-up already pending says the same: the folder is looked at whole.
                    Ok(_) => match tx.try_send(()) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                        Err(mpsc::error::TrySendError::Closed(())) => return,
                    },
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
            }
        })?;
        Ok(watch)
    }

    /// Watches `dir` too (a folder service's folder: its `run` may be replaced). Watching a
    /// folder again is harmless: the kernel keeps one watch per folder.
    pub fn add(&self, dir: &Path) -> io::Result<()> {
        let what = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::ATTRIB
            | WatchFlags::ONLYDIR;
        inotify::add_watch(&*self.fd, dir, what)?;
        Ok(())
    }

    /// Waits until something changed since the last call: what changed is not needed, the
    /// follower looks at the whole folder again. An error once the watch broke down.
    pub async fn changed(&mut self) -> io::Result<()> {
        self.woke.recv().await.ok_or_else(|| io::Error::other("the folder watch stopped"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_file_dropped_into_a_watched_folder_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut watch = Watch::new(dir.path()).unwrap();
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed()).await;
        assert!(quiet.is_err(), "nothing changed yet");
        std::fs::write(dir.path().join("hello"), "#!/bin/sh\n").unwrap();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed()).await;
        assert!(woke.unwrap().is_ok());
    }
}

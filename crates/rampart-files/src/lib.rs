#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Crash-safe file writes with the right permissions from the first byte, for everything a
//! rampart home holds (keys, certificates, keyrings, tokens, configuration).
//!
//! Every file is written to a temporary file in the same directory (created 0600 by
//! `tempfile`), flushed to disk, given its final mode, renamed over the target and the directory
//! is synced, so a reader sees the old file or the new one, never half of one, and a private key
//! is never readable by others, not even for an instant.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file operation that failed, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FileError {
    /// What was being done ("writing", "renaming into", …).
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// The error for `action` on `path`, for `map_err`.
    pub fn at(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| FileError { action, path, source }
    }

    /// Whether the file was simply not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::NotFound
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = FileError> = std::result::Result<T, E>;

/// Mode of files holding private keys.
pub const PRIVATE: u32 = 0o600;
/// Mode of certificates, CRLs and other public files.
pub const PUBLIC: u32 = 0o644;
/// Mode of directories under a network's home (they hold keys).
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `bytes` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(FileError::at("creating a temporary file in", dir))?;
    // tempfile creates the file 0600; only widen it (for public files), never the reverse.
    if mode != PRIVATE {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(FileError::at("setting permissions of", tmp.path()))?;
    }
    tmp.write_all(bytes).map_err(FileError::at("writing", path))?;
    tmp.as_file().sync_all().map_err(FileError::at("syncing", path))?;
    tmp.persist(path).map_err(|e| FileError {
        action: "renaming into",
        path: path.to_owned(),
        source: e.error,
    })?;
    sync_dir(dir)
}

/// Creates `path` and its missing parents with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(path)
        .map_err(FileError::at("creating directory", path))
}

/// Flushes a directory's entries (after a rename) so the rename survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(FileError::at("syncing directory", dir))
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(FileError::at("reading", path))
}

/// Fails unless `path` is private to its owner (no group or other permission bits), the way
/// ssh treats private keys. Returns the mode on failure, for the message.
pub fn check_private(path: &Path) -> Result<std::result::Result<(), u32>> {
    let mode = fs::metadata(path).map_err(FileError::at("reading", path))?.permissions().mode() & 0o777;
    Ok(if mode & 0o077 == 0 { Ok(()) } else { Err(mode) })
}

/// Renames `from` to `to` and syncs both directories.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(FileError::at("renaming", from))?;
    sync_dir(parent(to))?;
    sync_dir(parent(from))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An exclusive advisory lock on a directory, held until dropped, so that two commands working
/// on the same CA at once (two `issue`s, say) cannot lose each other's index updates.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Blocks until the lock on `dir` is held.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(FileError::at("opening lock file", &path))?;
        file.lock().map_err(FileError::at("locking", &path))?;
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just makes it explicit.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        write_atomic(&p, b"one", PRIVATE).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        write_atomic(&p, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let c = dir.path().join("c.pem");
        write_atomic(&c, b"cert", PUBLIC).unwrap();
        assert_eq!(fs::metadata(&c).unwrap().mode() & 0o777, 0o644);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}

//! The keyring file, `keys/payload.keys` (DESIGN.md): one urlsafe-base64 key a line, newest
//! last, mode 0600. Blank lines and `#` comments are ignored when reading.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_files as files;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::key::PayloadKey;
use crate::keyring::Keyring;

/// Reads a keyring, refusing a file that others may read and naming any bad line (never its
/// content).
pub fn load(path: &Path) -> Result<Keyring> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CryptoError::NoKeyring(path.to_owned()));
        }
        Err(e) => {
            return Err(CryptoError::Io { action: "reading", path: path.to_owned(), source: e });
        }
    };
    if let Err(mode) = files::check_private(path)? {
        return Err(CryptoError::InsecurePermissions { path: path.to_owned(), mode });
    }
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PayloadKey::from_base64(line)
            .ok_or(CryptoError::BadKey { path: path.to_owned(), line: i + 1 })?;
        keys.push(key);
    }
    Keyring::new(keys).ok_or_else(|| CryptoError::EmptyKeyring(path.to_owned()))
}

/// Writes a keyring atomically, 0600 from the first byte.
pub fn save(path: &Path, keyring: &Keyring) -> Result<()> {
    let mut text = Zeroizing::new(String::new());
    for key in keyring.keys() {
        text.push_str(&key.to_base64());
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        files::create_private_dir(dir)?;
    }
    Ok(files::write_atomic(path, text.as_bytes(), files::PRIVATE)?)
}

/// Creates a keyring of one fresh key. Refuses to replace an existing file unless `force`;
/// then the old file is kept beside it as `<name>.replaced-<unix time>` (0600), since tokens
/// made with its keys could not be opened otherwise. Returns where the old one went.
pub fn create(path: &Path, force: bool) -> Result<(Keyring, Option<PathBuf>)> {
    let mut kept = None;
    if path.exists() {
        if !force {
            return Err(CryptoError::KeyringExists(path.to_owned()));
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".replaced-{secs}"));
        let aside = path.with_file_name(name);
        files::rename(path, &aside)?;
        kept = Some(aside);
    }
    let keyring = Keyring::new(vec![PayloadKey::generate()?]).ok_or(CryptoError::Random("no key".into()))?;
    save(path, &keyring)?;
    Ok((keyring, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_load_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/payload.keys");
        let (kr, _) = create(&path, false).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&path).unwrap().newest().fingerprint(), kr.newest().fingerprint());
        assert!(matches!(create(&path, false), Err(CryptoError::KeyringExists(_))));
        let (_, kept) = create(&path, true).unwrap();
        assert!(kept.unwrap().exists());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load(&path), Err(CryptoError::InsecurePermissions { mode: 0o644, .. })));
        std::fs::write(&path, "# comment\n\nnot-a-key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey { line: 3, .. }), "{err}");
        assert!(!err.to_string().contains("not-a-key"));
        std::fs::write(&path, "# only a comment\n").unwrap();
        assert!(matches!(load(&path), Err(CryptoError::EmptyKeyring(_))));
    }
}

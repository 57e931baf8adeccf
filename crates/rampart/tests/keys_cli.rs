//! `rampart keys` as a user runs it: files, permissions, rotation, refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn keyring(home: &Path) -> Vec<String> {
    fs::read_to_string(home.join("keys/payload.keys")).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn init_makes_a_private_keyring_and_new_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok_bytes(&home, &["init"], b"");
    let path = home.join("keys/payload.keys");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let first = keyring(&home);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].len(), 44);

    let err = support::refused(&home, &["keys", "new"], b"");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(keyring(&home), first);
    let out = String::from_utf8(support::ok_bytes(&home, &["keys", "new", "--force"], b"")).unwrap();
    assert!(out.contains("kept as"), "{out}");
    assert_ne!(keyring(&home), first);
    // The replaced keyring is kept, private.
    let kept: Vec<_> = fs::read_dir(home.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".replaced-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs::read_to_string(&kept[0]).unwrap().trim(), first[0]);
    assert_eq!(fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn rotation_keeps_old_tokens_until_their_key_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok_bytes(&home, &["init"], b"");
    let old = support::ok_bytes(&home, &["keys", "encrypt"], b"first");
    support::ok_bytes(&home, &["keys", "rotate"], b"");
    support::ok_bytes(&home, &["keys", "rotate"], b"");
    assert_eq!(keyring(&home).len(), 3);
    assert_eq!(support::ok_bytes(&home, &["keys", "decrypt"], &old), b"first");
    let list = String::from_utf8(support::ok_bytes(&home, &["keys", "list"], b"")).unwrap();
    assert!(list.contains("3 keys") && list.contains("newest"), "{list}");
    for key in keyring(&home) {
        assert!(!list.contains(&key[..20]), "list shows a key: {list}");
    }
    let exported = String::from_utf8(support::ok_bytes(&home, &["keys", "export-key"], b"")).unwrap();
    assert_eq!(exported.trim(), keyring(&home)[2]);

    support::ok_bytes(&home, &["keys", "rotate", "--keep", "2"], b"");
    assert_eq!(keyring(&home).len(), 2);
    let err = support::refused(&home, &["keys", "decrypt"], &old);
    assert!(err.contains("matches no key"), "{err}");
}

#[test]
fn files_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok_bytes(&home, &["init"], b"");
    let plain = dir.path().join("plain.bin");
    let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&plain, &message).unwrap();
    let token = dir.path().join("token.txt");
    let back = dir.path().join("back.bin");
    support::ok_bytes(
        &home,
        &["keys", "encrypt", "--in", plain.to_str().unwrap(), "--out", token.to_str().unwrap()],
        b"",
    );
    support::ok_bytes(
        &home,
        &["keys", "decrypt", "--ttl", "60", "--in", token.to_str().unwrap(), "--out", back.to_str().unwrap()],
        b"",
    );
    assert_eq!(fs::read(&back).unwrap(), message);
    assert_eq!(fs::metadata(&back).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn bad_tokens_and_bad_keyrings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let err = support::refused(&home, &["keys", "list"], b"");
    assert!(err.contains("rampart init"), "{err}");
    support::ok_bytes(&home, &["init"], b"");
    let token = support::ok_bytes(&home, &["keys", "encrypt"], b"secret");

    let mut tampered = token.clone();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    assert!(support::refused(&home, &["keys", "decrypt"], &tampered).contains("matches no key"));
    assert!(support::refused(&home, &["keys", "decrypt"], b"").contains("not a Fernet token"));
    assert!(
        support::refused(&home, &["keys", "decrypt"], &token[..token.len() / 2])
            .contains("not a Fernet token")
    );
    assert!(support::refused(&home, &["keys", "decrypt"], [0xff, 0xfe, 0x00]).contains("not a Fernet token"));

    let path = home.join("keys/payload.keys");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(support::refused(&home, &["keys", "encrypt"], b"x").contains("chmod 600"));
    fs::write(&path, "definitely-not-a-key\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = support::refused(&home, &["keys", "encrypt"], b"x");
    assert!(err.contains("line 1") && !err.contains("definitely-not-a-key"), "{err}");
    fs::remove_file(&path).unwrap();
    assert!(support::refused(&home, &["keys", "rotate"], b"").contains("rampart keys new"));
}

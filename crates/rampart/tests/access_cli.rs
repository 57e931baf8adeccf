//! `rampart user`, `token` and `policy` as a user runs them, offline on the home's registry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

fn home() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok_in(&home, &["init"], "");
    (dir, home)
}

#[test]
fn init_makes_the_first_admin_and_its_token() {
    let (_d, home) = home();
    let token_file = home.join("admin.token");
    assert_eq!(fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = fs::read_to_string(&token_file).unwrap();
    assert!(token.starts_with("rpt_") && token.ends_with('\n'));
    let id = &token[4..20];
    let list = support::ok_in(&home, &["token", "list", "--user", "admin"], "");
    assert!(list.contains(id) && list.contains("live"), "{list}");
    assert!(!list.contains(&token[21..40]), "token list shows a secret");
    let users = support::ok_in(&home, &["user", "list"], "");
    assert!(users.contains("admin") && users.contains("spiffe://local/admin/admin"), "{users}");
    let store = home.join("store/registry.redb");
    assert_eq!(fs::metadata(&store).unwrap().permissions().mode() & 0o777, 0o600);
    // Nothing secret in the store file in the clear.
    let raw = fs::read(&store).unwrap();
    assert!(!raw.windows(20).any(|w| w == &token.as_bytes()[21..41]), "token secret stored in the clear");

    // A forced re-init keeps the admin user and replaces its token.
    support::ok_in(&home, &["init", "--force"], "");
    let list = support::ok_in(&home, &["token", "list", "--user", "admin"], "");
    assert!(list.lines().any(|l| l.contains(id) && l.contains("revoked")), "{list}");
}

#[test]
fn users_passwords_tokens_and_policy() {
    let (_d, home) = home();
    support::ok_in(&home, &["user", "add", "alice", "--password-stdin"], "correct horse\n");
    let err = support::refused(&home, &["user", "add", "alice", "--no-password"], "");
    assert!(err.contains("already exists"), "{err}");
    let err = support::refused(&home, &["user", "add", "eve"], "");
    assert!(err.contains("--password-stdin"), "{err}");
    let err = support::refused(&home, &["user", "add", "../eve", "--no-password"], "");
    assert!(err.contains("invalid user name"), "{err}");
    let json = support::ok_in(&home, &["user", "list", "--json"], "");
    assert!(json.contains("\"alice\"") && !json.contains("argon2"), "{json}");
    support::ok_in(&home, &["user", "passwd", "alice", "--password-stdin"], "battery staple\n");

    let out =
        support::run(&home, &["token", "issue", "--user", "alice", "--ttl", "2h", "--service", "data"], "");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("rpt_"), "{token}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown once"));
    let list = support::ok_in(&home, &["token", "list", "--json"], "");
    assert!(list.contains("\"data\"") && !list.contains(&token[21..]), "{list}");
    let err = support::refused(&home, &["token", "issue", "--user", "alice", "--ttl", "3650d"], "");
    assert!(err.contains("maximum"), "{err}");
    let err = support::refused(&home, &["token", "issue", "--user", "nobody"], "");
    assert!(err.contains("no user named"), "{err}");
    // Revoke by the full token as well as by id.
    support::ok_in(&home, &["token", "revoke", &token], "");
    let list = support::ok_in(&home, &["token", "list", "--user", "alice"], "");
    assert!(list.contains("revoked"), "{list}");
    let err = support::refused(&home, &["token", "revoke", "0000000000000000"], "");
    assert!(err.contains("no token"), "{err}");

    support::ok_in(&home, &["token", "issue", "--user", "alice"], "");
    let out = support::ok_in(
        &home,
        &["policy", "allow", "--service", "data", "--principal", "user/alice", "--method", "get"],
        "",
    );
    let rule_id = out.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_owned();
    support::ok_in(
        &home,
        &["policy", "deny", "--service", "*", "--principal", "role:user", "--method", "DELETE"],
        "",
    );
    let list = support::ok_in(&home, &["policy", "list"], "");
    assert!(list.contains("user/alice") && list.contains("GET") && list.contains("deny"), "{list}");
    for bad in ["alice", "role:king", "spiffe://nope"] {
        let err = support::refused(&home, &["policy", "allow", "--service", "data", "--principal", bad], "");
        assert!(err.contains("invalid principal pattern"), "{err}");
    }
    let err = support::refused(&home, &["policy", "allow", "--service", "a/b", "--principal", "*"], "");
    assert!(err.contains("invalid service name"), "{err}");
    support::ok_in(&home, &["policy", "remove", &rule_id], "");
    assert!(!support::ok_in(&home, &["policy", "list"], "").contains("user/alice"));

    let out = support::ok_in(&home, &["user", "remove", "alice"], "");
    assert!(out.contains("revoked 1 token"), "{out}");
    let list = support::ok_in(&home, &["token", "list", "--user", "alice"], "");
    assert!(list.contains("user removed"), "{list}");
}

#[test]
fn a_held_registry_is_a_clear_error() {
    let (_d, home) = home();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _held =
        rt.block_on(async { rampart_store::EmbeddedStore::open(&home.join("store/registry.redb")).unwrap() });
    let err = support::refused(&home, &["user", "list"], "");
    assert!(
        err.contains("held by another process") && err.contains("no gateway of this home answers"),
        "{err}"
    );
}

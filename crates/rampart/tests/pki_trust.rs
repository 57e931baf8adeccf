//! `rampart pki trust`: the steps for each kind of system, and on this Debian machine (as root)
//! the real thing: once installed, curl verifies the gateway with no `--cacert`; uninstalled,
//! it no longer does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{Network, ok, refused};

/// The CA stays in the system's store no longer than the test, even when it fails.
struct Uninstall<'a>(&'a std::path::Path);

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        let _ = support::run(self.0, &["pki", "trust", "--uninstall"], "");
    }
}

/// curl's exit code reaching `url` with the system's store only (60: the peer's certificate
/// did not verify).
fn curl_system_store(url: &str) -> i32 {
    let out = Command::new("curl").args(["-s", "-o", "/dev/null", url]).status().unwrap();
    out.code().unwrap_or(-1)
}

#[test]
fn the_ca_is_explained_and_once_installed_verifies_the_gateway_without_cacert() {
    // A domain of its own: the machine's store is shared with everything else on it.
    let domain = format!("trust{}", std::process::id());
    let net = Network::start_in(&domain, &[]);
    let steps = ok(&net.home, &["pki", "trust"]);
    let ca = net.home.join(format!("pki/{domain}/ca.pem"));
    for want in [ca.to_str().unwrap(), "sha256:", "update-ca-certificates", "update-ca-trust", "certutil"] {
        assert!(steps.contains(want), "{want} missing:\n{steps}");
    }

    let debian = std::path::Path::new("/usr/sbin/update-ca-certificates").exists();
    if !rustix::process::geteuid().is_root() || !debian {
        let why = refused(&net.home, &["pki", "trust", "--install"], "");
        assert!(why.contains("root") || why.contains("Debian-like"), "{why}");
        eprintln!("not root on a Debian-like system: the store itself is not changed here");
        return;
    }
    let url = format!("{}/hello", net.url);
    assert_eq!(curl_system_store(&url), 60, "trusted before it was installed");
    let _undo = Uninstall(&net.home);
    ok(&net.home, &["pki", "trust", "--install"]);
    assert_eq!(curl_system_store(&url), 0, "curl does not trust the installed CA");
    // Installing again replaces, never duplicates.
    ok(&net.home, &["pki", "trust", "--install"]);
    let ours = std::fs::read_dir("/usr/local/share/ca-certificates")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("rampart-{domain}")))
        .count();
    assert_eq!(ours, 1);
    ok(&net.home, &["pki", "trust", "--uninstall"]);
    assert_eq!(curl_system_store(&url), 60, "still trusted after --uninstall");
    let again = ok(&net.home, &["pki", "trust", "--uninstall"]);
    assert!(again.contains("nothing to do"), "{again}");
}

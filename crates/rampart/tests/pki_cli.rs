//! `rampart init` and `rampart pki` as a user runs them, checked with OpenSSL as an outside
//! verifier.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(args: &[&str]) -> (bool, String) {
    let out =
        Command::new("openssl").args(args).output().expect("openssl is installed (scripts/test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn domain_dir(home: &Path, d: &str) -> PathBuf {
    home.join("pki").join(d)
}

fn verify(home: &Path, domain: &str, cert: &Path, crl: bool) -> (bool, String) {
    let ca = domain_dir(home, domain).join("ca.pem");
    let crl_path = domain_dir(home, domain).join("crl.pem");
    let mut args = vec!["verify".to_owned(), "-CAfile".into(), ca.display().to_string()];
    if crl {
        args.extend(["-crl_check".into(), "-CRLfile".into(), crl_path.display().to_string()]);
    }
    args.push(cert.display().to_string());
    openssl(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Every file under `dir` with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = fs::metadata(&p).unwrap().mode();
                out.insert(p.clone(), (fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

#[test]
fn init_makes_a_verifiable_network_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let out = support::ok(&home, &["init"]);
    assert!(out.contains("spiffe://local/gateway/gateway"), "{out}");
    let local = domain_dir(&home, "local");
    for name in ["gateway", "admin"] {
        let (good, text) = verify(&home, "local", &local.join("issued").join(format!("{name}.pem")), true);
        assert!(good, "{name}: {text}");
    }
    let (_, text) =
        openssl(&["x509", "-noout", "-text", "-in", local.join("issued/gateway.pem").to_str().unwrap()]);
    assert!(text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"), "{text}");
    assert!(text.contains("IP Address:0:0:0:0:0:0:0:1"), "{text}");

    let (_, ca) = openssl(&["x509", "-noout", "-text", "-in", local.join("ca.pem").to_str().unwrap()]);
    assert!(ca.contains("CA:TRUE, pathlen:0"), "{ca}");
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");
    assert!(ca.contains("X509v3 Subject Key Identifier"), "{ca}");

    let before = snapshot(&home);
    let err = support::refused(&home, &["init"], "");
    assert!(err.contains("--force"), "{err}");
    let err = support::refused(&home, &["init", "--domain", "other"], "");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(before, snapshot(&home), "a refused init changed the home");

    // --force replaces the CA and keeps the old one aside.
    let out = support::ok(&home, &["init", "--force"]);
    assert!(out.contains("moved to"), "{out}");
    assert_ne!(fs::read(local.join("ca.pem")).unwrap(), before[&local.join("ca.pem")].0);
    assert!(home.join("pki/.replaced").read_dir().unwrap().count() == 1);
}

#[test]
fn every_role_and_key_type_verifies_with_the_right_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init", "--domain", "prod"]);
    let issued = domain_dir(&home, "prod").join("issued");
    let cases = [
        ("node", "web-1", "p256", true),
        ("gateway", "gw-2", "p384", true),
        ("peer", "partner", "ed25519", true),
        ("user", "alice", "rsa2048", false),
        ("admin", "root-op", "rsa3072", false),
    ];
    for (role, name, key_type, server) in cases {
        let out = support::ok(
            &home,
            &["pki", "issue", "--domain", "prod", "--role", role, "--name", name, "--key-type", key_type],
        );
        assert!(out.contains(&format!("spiffe://prod/{role}/{name}")), "{out}");
        let cert = issued.join(format!("{name}.pem"));
        let (good, text) = verify(&home, "prod", &cert, true);
        assert!(good, "{role}: {text}");
        let (_, text) = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
        assert_eq!(text.matches("URI:").count(), 1, "{text}");
        assert!(text.contains(&format!("URI:spiffe://prod/{role}/{name}")), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("Digital Signature"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert_eq!(text.contains("TLS Web Server Authentication"), server, "{role}: {text}");
        assert_eq!(text.contains("DNS:localhost"), server, "{role}: {text}");
        let key = issued.join(format!("{name}.key"));
        assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600, "{name}.key");
        let (good, text) = openssl(&["pkey", "-noout", "-in", key.to_str().unwrap()]);
        assert!(good, "{text}");
    }
    assert_eq!(fs::metadata(domain_dir(&home, "prod").join("ca.key")).unwrap().mode() & 0o777, 0o600);

    let list = support::ok(&home, &["pki", "list"]);
    for (_, name, _, _) in cases {
        assert!(list.contains(name), "{list}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&support::ok(&home, &["pki", "list", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), cases.len() + 2);
}

#[test]
fn revocation_shows_in_the_crl_and_openssl_rejects_only_the_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init"]);
    support::ok(&home, &["pki", "issue", "--role", "node", "--name", "n1"]);
    support::ok(&home, &["pki", "issue", "--role", "node", "--name", "n2"]);
    let issued = domain_dir(&home, "local").join("issued");
    let out = support::ok(&home, &["pki", "revoke", "--name", "n1", "--reason", "key-compromise"]);
    assert!(out.contains("Revoked spiffe://local/node/n1"), "{out}");

    let (good, text) = verify(&home, "local", &issued.join("n1.pem"), true);
    assert!(!good && text.contains("certificate revoked"), "{text}");
    let (good, text) = verify(&home, "local", &issued.join("n2.pem"), true);
    assert!(good, "{text}");
    let (good, text) = verify(&home, "local", &issued.join("gateway.pem"), true);
    assert!(good, "{text}");

    let crl = domain_dir(&home, "local").join("crl.pem");
    let (good, text) = openssl(&["crl", "-noout", "-text", "-in", crl.to_str().unwrap()]);
    assert!(good && text.contains("Key Compromise") && text.contains("Next Update"), "{text}");

    let list = support::ok(&home, &["pki", "list"]);
    let n1 = list.lines().find(|l| l.starts_with("n1 ")).unwrap();
    assert!(n1.contains("revoked"), "{list}");
    let inspected = support::ok(&home, &["pki", "inspect", "n1"]);
    assert!(inspected.contains("YES (listed in its domain's CRL)"), "{inspected}");
    let inspected = support::ok(&home, &["pki", "inspect", issued.join("n2.pem").to_str().unwrap()]);
    assert!(inspected.contains("Revoked       no"), "{inspected}");

    // The CRL can be regenerated on its own, with a higher number.
    let out = support::ok(&home, &["pki", "crl"]);
    assert!(out.contains("number       3") && out.contains("revoked      1"), "{out}");
}

#[test]
fn renewal_keeps_the_identity_and_the_old_certificate_valid() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init"]);
    support::ok(
        &home,
        &["pki", "issue", "--role", "node", "--name", "n1", "--dns", "n1.internal", "--days", "30"],
    );
    let issued = domain_dir(&home, "local").join("issued");
    let old_cert = fs::read(issued.join("n1.pem")).unwrap();
    let old_key = fs::read(issued.join("n1.key")).unwrap();
    support::ok(&home, &["pki", "renew", "--name", "n1"]);
    assert_ne!(fs::read(issued.join("n1.pem")).unwrap(), old_cert);
    assert_ne!(fs::read(issued.join("n1.key")).unwrap(), old_key);
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", issued.join("n1.pem").to_str().unwrap()]);
    assert!(text.contains("URI:spiffe://local/node/n1") && text.contains("DNS:n1.internal"), "{text}");
    assert!(!text.contains("DNS:localhost"), "{text}");

    let archived: Vec<_> =
        domain_dir(&home, "local").join("archive").read_dir().unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(fs::read(&archived[0]).unwrap(), old_cert);
    let (good, text) = verify(&home, "local", &archived[0], true);
    assert!(good, "the renewed-away certificate must stay valid: {text}");

    // The old one can be revoked on its own, by serial, leaving the new one valid.
    let old_serial = archived[0].file_name().unwrap().to_str().unwrap().split('.').nth(1).unwrap().to_owned();
    let out = support::ok(&home, &["pki", "revoke", "--name", "n1", "--serial", &old_serial.to_uppercase()]);
    assert!(out.contains(&old_serial), "{out}");
    let (good, _) = verify(&home, "local", &archived[0], true);
    assert!(!good, "revoked by serial, yet still verifies");
    let (good, text) = verify(&home, "local", &issued.join("n1.pem"), true);
    assert!(good, "{text}");
    let err = support::refused(&home, &["pki", "revoke", "--name", "n1", "--serial", "abcdef"], "");
    assert!(err.contains("no certificate with serial"), "{err}");
    // --all takes whatever of the name is still valid.
    support::ok(&home, &["pki", "revoke", "--name", "n1", "--all"]);
    let (good, _) = verify(&home, "local", &issued.join("n1.pem"), true);
    assert!(!good);

    // Issuing over a valid certificate is refused; renewing is the way.
    support::ok(&home, &["pki", "issue", "--role", "node", "--name", "n2"]);
    let err = support::refused(&home, &["pki", "issue", "--role", "node", "--name", "n2"], "");
    assert!(err.contains("renew"), "{err}");
    // A revoked name may be issued afresh.
    support::ok(&home, &["pki", "issue", "--role", "node", "--name", "n1"]);
    let (good, text) = verify(&home, "local", &issued.join("n1.pem"), true);
    assert!(good, "{text}");
}

#[test]
fn a_certificate_from_one_domain_does_not_verify_in_another() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init", "--domain", "prod"]);
    support::ok(&home, &["pki", "init", "--domain", "test"]);
    support::ok(&home, &["pki", "issue", "--domain", "test", "--role", "node", "--name", "web-1"]);
    let stray = domain_dir(&home, "test").join("issued/web-1.pem");
    let (good, _) = verify(&home, "test", &stray, true);
    assert!(good);
    let (good, text) = verify(&home, "prod", &stray, false);
    assert!(!good, "a test certificate verified against prod's CA: {text}");

    // Copying the file into prod's directory does not make it prod's.
    let copied = domain_dir(&home, "prod").join("issued/web-1.pem");
    fs::copy(&stray, &copied).unwrap();
    let inspected = support::ok(&home, &["pki", "inspect", copied.to_str().unwrap()]);
    assert!(inspected.contains("spiffe://test/node/web-1"), "{inspected}");
    let out = support::ok(&home, &["pki", "list"]);
    assert!(out.contains("spiffe://test/node/web-1") && out.contains("spiffe://prod/admin/admin"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    let err = support::refused(&home, &["pki", "list"], "");
    assert!(err.contains("rampart init"), "missing home: {err}");
    support::ok(&home, &["init"]);
    let before = snapshot(&home);

    let out = support::run(&home, &["pki", "issue", "--role", "king", "--name", "x"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'king'"));
    for bad in ["../evil", "a/b", ".hidden", "", "with space"] {
        let out = support::run(&home, &["pki", "issue", "--role", "node", "--name", bad], "");
        assert!(!out.status.success(), "name {bad:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid name") && !stderr.contains("panicked"), "{stderr}");
    }
    let err = support::refused(
        &home,
        &["pki", "issue", "--domain", "nowhere", "--role", "node", "--name", "x"],
        "",
    );
    assert!(err.contains("no CA for trust domain \"nowhere\""), "{err}");
    let err =
        support::refused(&home, &["pki", "issue", "--role", "node", "--name", "x", "--dns", "bad host"], "");
    assert!(err.contains("invalid subject alternative name"), "{err}");
    let err =
        support::refused(&home, &["pki", "issue", "--role", "node", "--name", "x", "--days", "40000"], "");
    assert!(err.contains("invalid lifetime \"40000\""), "{err}");
    let err =
        support::refused(&home, &["pki", "issue", "--role", "node", "--name", "x", "--days", "5000"], "");
    assert!(err.contains("outlive its CA"), "{err}");
    let err = support::refused(&home, &["pki", "revoke", "--name", "ghost"], "");
    assert!(err.contains("no certificate named"), "{err}");
    let err = support::refused(&home, &["pki", "renew", "--name", "ghost"], "");
    assert!(err.contains("no certificate named"), "{err}");
    assert_eq!(before, snapshot(&home), "a refused command changed the home");

    // Garbage given to inspect: empty, random bytes, a truncated certificate, a key.
    let cert = fs::read_to_string(domain_dir(&home, "local").join("issued/admin.pem")).unwrap();
    let truncated = format!("{}\n-----END CERTIFICATE-----\n", &cert[..cert.len() / 2]);
    let body_cut = cert.replace(&cert[100..140], "");
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pem", vec![]),
        ("random.pem", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
        ("der-ish.pem", vec![0x30, 0x82, 0xff, 0xff, 1, 2, 3]),
        ("truncated.pem", truncated.into_bytes()),
        ("cut.pem", body_cut.into_bytes()),
    ];
    for (name, bytes) in garbage {
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        let err = support::refused(&home, &["pki", "inspect", p.to_str().unwrap()], "");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    }
    let key = domain_dir(&home, "local").join("issued/admin.key");
    let err = support::refused(&home, &["pki", "inspect", key.to_str().unwrap()], "");
    assert!(!err.contains("PRIVATE KEY") || err.contains("no PEM block"), "{err}");
    let key_text = fs::read_to_string(&key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!err.contains(body), "inspect leaked key material: {err}");
    let err = support::refused(&home, &["pki", "inspect", "nonexistent-name"], "");
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn a_damaged_ca_key_is_reported_without_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init"]);
    let key = domain_dir(&home, "local").join("ca.key");
    let secret = "-----BEGIN PRIVATE KEY-----\nTUlJQ1NFQ1JFVA==\n-----END PRIVATE KEY-----\n";
    fs::write(&key, secret).unwrap();
    let err = support::refused(&home, &["pki", "issue", "--role", "node", "--name", "n"], "");
    assert!(err.contains("ca.key") && !err.contains("TUlJQ1NFQ1JFVA"), "{err}");
    // The key of another CA is refused too: it does not match the certificate.
    support::ok(&home, &["pki", "init", "--domain", "other"]);
    fs::copy(domain_dir(&home, "other").join("ca.key"), &key).unwrap();
    let err = support::refused(&home, &["pki", "issue", "--role", "node", "--name", "n"], "");
    assert!(err.contains("does not belong"), "{err}");
}

#[test]
fn concurrent_issues_lose_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .arg("--home")
                .arg(&home)
                .args(["pki", "issue", "--role", "node", "--name", &format!("c{i}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let json: serde_json::Value =
        serde_json::from_str(&support::ok(&home, &["pki", "list", "--json"])).unwrap();
    let names: Vec<&str> = json.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for i in 0..8 {
        assert!(names.contains(&format!("c{i}").as_str()), "c{i} missing from {names:?}");
    }
    assert_eq!(names.len(), 10);
}

/// `rampart pki bundle`: the CA bundle a peer network installs, and its fingerprint as OpenSSL
/// computes it over the certificate's DER.
#[test]
fn the_ca_bundle_and_its_fingerprint_are_what_openssl_sees() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::ok(&home, &["init"]);
    let out = support::run(&home, &["pki", "bundle"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ca = domain_dir(&home, "local").join("ca.pem");
    assert_eq!(out.stdout, fs::read(&ca).unwrap(), "the bundle is the CA certificate, as PEM");
    let der = Command::new("openssl")
        .args(["x509", "-in", ca.to_str().unwrap(), "-outform", "DER"])
        .output()
        .unwrap();
    let digest = openssl_sha256(&der.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), format!("sha256:{digest}"), "the fingerprint is on standard error alone");
    // --out writes a world-readable file (a bundle is public) and still names the fingerprint.
    let file = dir.path().join("local.pem");
    let out = support::run(&home, &["pki", "bundle", "--out", file.to_str().unwrap()], "");
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(fs::read(&file).unwrap(), fs::read(&ca).unwrap());
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("sha256:{digest}")));
    let refused = support::refused(&home, &["pki", "bundle", "--domain", "nope"], "");
    assert!(refused.contains("no CA for trust domain \"nope\""), "{refused}");
}

/// SHA-256 by OpenSSL too (the outside check of our fingerprint).
fn openssl_sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

//! Keys that never leave their owner: `rampart pki request` on the holder's machine (no home),
//! `rampart pki sign` by the admin; and a CSR made by OpenSSL that claims more than it may. The
//! certificate carries what the admin said, and works at the gateway with the holder's key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::{Network, ok, refused, run, stdout};

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_key_made_on_the_holder_s_machine_is_certified_from_its_request_and_works_at_the_gateway() {
    let net = Network::start(1, &[]);
    let laptop = tempfile::tempdir().unwrap();
    let nowhere = laptop.path().join("no-home");
    let out = laptop.path().to_str().unwrap();
    // On the holder's machine: no rampart home at all.
    ok(&nowhere, &["pki", "request", "--name", "alice", "--out", out]);
    assert!(!nowhere.exists(), "pki request made a home");
    let (key, csr) = (laptop.path().join("alice.key"), laptop.path().join("alice.csr"));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // Once made, a key is not overwritten by mistake.
    let again = refused(&nowhere, &["pki", "request", "--name", "alice", "--out", out], "");
    assert!(again.contains("never overwritten"), "{again}");
    let key_before = std::fs::read(&key).unwrap();

    // The admin signs the request; the printed path is the certificate.
    let printed = ok(&net.home, &["pki", "sign", csr.to_str().unwrap(), "--role", "user", "--name", "alice"]);
    let cert = std::path::PathBuf::from(printed.trim());
    assert!(cert.ends_with("pki/local/issued/alice.pem"), "{printed}");
    assert!(!net.home.join("pki/local/issued/alice.key").exists(), "a key at the CA");
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
    let ca = net.home.join("pki/local/ca.pem");
    let verified = openssl(&["verify", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(verified.contains(": OK"), "{verified}");

    // curl with the holder's key and the signed certificate: the gateway knows spiffe://local/user/alice
    // (refused by name before a rule allows her, served after).
    let curl = || {
        let out = Command::new("curl")
            .args(["-s", "--cacert", ca.to_str().unwrap(), "--cert", cert.to_str().unwrap()])
            .args(["--key", key.to_str().unwrap(), &format!("{}/hello", net.url)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let denied = curl();
    assert!(denied.contains("no policy allows spiffe://local/user/alice"), "{denied}");
    ok(&net.home, &["policy", "allow", "--service", "hello", "--principal", "spiffe://local/user/alice"]);
    assert!(
        net.eventually(std::time::Duration::from_secs(3), || curl().contains("Hello World!")),
        "{}",
        curl()
    );
}

#[test]
fn a_request_s_claims_are_ignored_and_a_forged_one_is_refused() {
    let net = Network::start(0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (key, csr) = (dir.path().join("m.key"), dir.path().join("m.csr"));
    // OpenSSL's request claims the admin's identity and a name of its own choosing.
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
        "-subj",
        "/CN=mallory/O=admins",
        "-addext",
        "subjectAltName=URI:spiffe://local/admin/mallory,DNS:evil.example",
    ]);
    let printed = ok(&net.home, &["pki", "sign", csr.to_str().unwrap(), "--role", "user", "--name", "bob"]);
    let text = openssl(&["x509", "-in", printed.trim(), "-noout", "-text"]);
    assert!(text.contains("URI:spiffe://local/user/bob"), "{text}");
    for claimed in ["admin", "mallory", "evil.example"] {
        assert!(!text.contains(claimed), "{claimed} carried over:\n{text}");
    }

    // One base64 character in the middle of the request changed: still a request, but its
    // signature no longer verifies. And files that are no request. Each refused, nothing issued.
    let text = std::fs::read_to_string(&csr).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mid = lines.len() / 2;
    lines[mid] = lines[mid]
        .char_indices()
        .map(|(i, c)| {
            if i != 10 {
                c
            } else if c == 'A' {
                'B'
            } else {
                'A'
            }
        })
        .collect();
    let forged = dir.path().join("forged.csr");
    std::fs::write(&forged, lines.join("\n") + "\n").unwrap();
    let big = dir.path().join("big.csr");
    std::fs::write(&big, vec![b'A'; 1 << 20]).unwrap();
    let junk = dir.path().join("junk.csr");
    std::fs::write(&junk, "not a request").unwrap();
    for (file, name) in [(&forged, "carol"), (&big, "dave"), (&junk, "erin")] {
        let why = refused(
            &net.home,
            &["pki", "sign", file.to_str().unwrap(), "--role", "user", "--name", name],
            "",
        );
        assert!(why.contains("certificate signing request refused"), "{why}");
        assert!(!net.home.join(format!("pki/local/issued/{name}.pem")).exists());
    }
    let listed = stdout(&run(&net.home, &["pki", "list"], ""));
    assert!(!listed.contains("carol") && !listed.contains("dave"), "{listed}");
}

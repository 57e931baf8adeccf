//! `rampart network`: trusting a peer network by its CA bundle, checked against the
//! fingerprint its operator gave, as two operators run it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{ok, refused, run};

#[test]
fn a_peer_is_trusted_by_its_bundle_and_fingerprint_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (east, west) = (dir.path().join("east"), dir.path().join("west"));
    ok(&east, &["init", "--domain", "east"]);
    ok(&west, &["init", "--domain", "west"]);
    let bundle = dir.path().join("west.pem");
    let out = run(&west, &["pki", "bundle", "--out", bundle.to_str().unwrap()], "");
    let fingerprint = String::from_utf8_lossy(&out.stderr).lines().last().unwrap().trim().to_owned();
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");
    let b = bundle.to_str().unwrap();
    let url = "https://127.0.0.1:19443";

    // The fingerprint given must be the bundle's: a swapped file is refused, nothing kept.
    let other = format!("sha256:{}", "0".repeat(64));
    let why =
        refused(&east, &["network", "add", "west", "--url", url, "--bundle", b, "--fingerprint", &other], "");
    assert!(why.contains("refusing to trust it"), "{why}");
    assert!(!ok(&east, &["network", "list"]).contains("west"));
    let why = refused(&east, &["network", "add", "east", "--url", url, "--bundle", b], "");
    assert!(why.contains("own trust domain"), "{why}");
    let why = refused(&east, &["network", "add", "west", "--url", "http://127.0.0.1:1", "--bundle", b], "");
    assert!(why.contains("https://HOST:PORT"), "{why}");
    let key = east.join("pki/east/issued/admin.key");
    let why =
        refused(&east, &["network", "add", "west", "--url", url, "--bundle", key.to_str().unwrap()], "");
    assert!(why.contains("CA bundle"), "a key is no bundle: {why}");
    let why = refused(&east, &["network", "add", "west", "--url", url, "--bundle", "/dev/zero"], "");
    assert!(why.contains("over 64 KiB"), "an endless file is refused, not read forever: {why}");

    let added =
        ok(&east, &["network", "add", "west", "--url", url, "--bundle", b, "--fingerprint", &fingerprint]);
    assert!(added.contains(&fingerprint), "{added}");
    let listed: serde_json::Value = serde_json::from_str(&ok(&east, &["network", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "west");
    assert_eq!(listed[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(listed[0]["urls"][0], url);
    let why = refused(&east, &["network", "add", "west", "--url", url, "--bundle", b], "");
    assert!(why.contains("known already"), "{why}");
    ok(&east, &["network", "remove", "west"]);
    assert!(refused(&east, &["network", "remove", "west"], "").contains("no peer"));
}

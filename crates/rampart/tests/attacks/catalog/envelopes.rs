//! Payload envelopes at the node, through the gateway: tokens that are not Fernet, sealed with
//! another key, tampered, cut, stale, from the future or replayed. Each is refused at the node,
//! which reports the event for the client's address.

use super::{Attack, Case, Cred, Expect, Target, curl, run};
use crate::support::Network;

/// `POST /data` sealed with `token`.
fn sealed(token: &str) -> Attack {
    let args = [
        "-H",
        "Content-Type: application/fernet",
        "-H",
        "Accept: application/fernet",
        "--data-binary",
        token,
    ];
    curl(Cred::Admin, "/data", &args)
}

/// A Fernet token under `key` (base64) stamped `at` (seconds since the epoch).
fn stamped(key: &str, message: &[u8], at: u64) -> String {
    fernet::Fernet::new(key).unwrap().encrypt_at_time(message, at)
}

#[test]
fn envelopes() {
    let net = Network::start(1, &[]);
    let keyring = rampart_crypto::file::load(&net.home.join("keys/payload.keys")).unwrap();
    let key = keyring.newest().to_base64();
    let now = rampart_crypto::now_secs();
    let good = keyring.encrypt(br#"{"n":1}"#).unwrap();
    let other = fernet::Fernet::generate_key();
    let mut flipped = good.clone().into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // Version byte 0x81 instead of 0x80 (the token's first base64 characters).
    let wrong_version = format!("gQ{}", &good[2..]);
    let replayed = keyring.encrypt(br#"{"n":2}"#).unwrap();
    let huge_file = net.dir.path().join("huge.fernet");
    std::fs::write(&huge_file, "A".repeat(9 << 20)).unwrap();
    let huge = format!("@{}", huge_file.display());
    let refused = |name: &str, token: &str| {
        Case::new(name, sealed(token), Expect::Status(400), Some("envelope_refused"))
    };

    let cases = vec![
        refused("not a Fernet token", "hello"),
        refused("sealed with another key", &stamped(&other, b"{}", now)),
        refused("a byte flipped", &flipped),
        refused("cut short", &good[..good.len() - 10]),
        refused("another version byte", &wrong_version),
        refused("older than its time to live", &stamped(&key, b"{}", now - 100_000)),
        refused("stamped an hour ahead", &stamped(&key, b"{}", now + 3600)),
        refused("base64 of the wrong alphabet", &good.replace(['-', '_'], "+")),
        Case::new(
            "replayed without an idempotency key",
            Attack::Custom(Box::new(move |net, from| {
                let args: Vec<String> =
                    ["-H", "Content-Type: application/fernet", "--data-binary", &replayed]
                        .map(str::to_owned)
                        .to_vec();
                let first = super::call_curl(&net.home, &net.url, from, &Cred::Admin, &args, "/data");
                if first.status != Some(200) {
                    return first;
                }
                super::call_curl(&net.home, &net.url, from, &Cred::Admin, &args, "/data")
            })),
            Expect::Status(400),
            Some("envelope_replayed"),
        ),
        Case::new("an envelope over the size limit", sealed(&huge), Expect::Status(413), Some("too_large")),
    ];
    let secrets = [key.as_str()];
    run("envelopes", 8, &Target::new(&net, &secrets), cases);
}

//! Any bytes as a token: parsing, the time rules, decryption and the replay guard must refuse
//! them without panicking, and nothing but a real token may open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_crypto::{Keyring, PayloadKey, ReplayGuard, TokenHeader};

fuzz_target!(|data: &[u8]| {
    let key = PayloadKey::from_base64("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").expect("fixed key");
    let keyring = Keyring::new(vec![key]).expect("one key");
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TokenHeader::parse(text);
    for ttl in [None, Some(0), Some(60), Some(u64::MAX)] {
        if let Ok(opened) = keyring.decrypt_at(text, ttl, 1_700_000_000) {
            let mut guard = ReplayGuard::new(4);
            let _ = guard.check_and_record(text, opened.timestamp, 60, 1_700_000_000);
        }
    }
});

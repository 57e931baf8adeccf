//! Any bytes as an envelope's token, opened with a fixed keyring at a fixed time: parsing, the
//! time rules, decryption and the replay guard refuse them without panicking, and a token that
//! opens is refused the second time, re-encrypts to the same message and time, and its message
//! seals and opens again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_crypto::{Keyring, PayloadKey, ReplayGuard, TokenHeader, token_id};
use rampart_fuzz::{NOW, PAYLOAD_KEY};

fuzz_target!(|data: &[u8]| {
    let key = PayloadKey::from_base64(PAYLOAD_KEY).expect("the fixed key");
    let keyring = Keyring::new(vec![key]).expect("one key");
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TokenHeader::parse(text);
    let _ = token_id(text);
    for ttl in [None, Some(0), Some(60), Some(u64::MAX)] {
        let Ok(opened) = keyring.decrypt_at(text, ttl, NOW) else { continue };
        // The guard remembers a token as long as the TTL it was opened with lets it pass.
        let mut guard = ReplayGuard::new(4);
        let remembered = ttl.unwrap_or(u64::MAX);
        if guard.check_and_record(text, opened.timestamp, remembered, NOW).is_ok() {
            assert!(
                guard.check_and_record(text, opened.timestamp, remembered, NOW).is_err(),
                "a replay passed"
            );
        }
        let again = keyring.reencrypt(text).expect("an opened token re-encrypts");
        let reopened = keyring.decrypt_at(&again, None, NOW).expect("a re-encrypted token opens");
        assert_eq!(
            (reopened.plaintext.as_slice(), reopened.timestamp),
            (opened.plaintext.as_slice(), opened.timestamp)
        );
        let sealed = keyring.encrypt(&opened.plaintext).expect("an opened message seals");
        assert_eq!(
            keyring.decrypt(&sealed, Some(60)).expect("a fresh seal opens").plaintext,
            opened.plaintext
        );
    }
});

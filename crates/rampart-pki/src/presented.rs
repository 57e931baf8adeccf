//! The identity a certificate presents, remembered for the certificates seen last: in one TLS
//! handshake the verifier checks the peer's identity and the server then makes the
//! connection's principal from the same certificate, so it is parsed once. The answer is a pure
//! function of the certificate's bytes (a hit is checked byte for byte), so remembering it can
//! never attribute one certificate's identity to another.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{LazyLock, Mutex};

use crate::identity::SpiffeId;
use crate::inspect::cert_from_der;

/// How many certificates are remembered.
const REMEMBERED: usize = 1024;
/// The largest certificate remembered (rampart's are under 2 KiB): with the count, what a peer
/// presenting made-up certificates can make this hold is bounded to 4 MiB.
const MAX_REMEMBERED_BYTES: usize = 4096;

/// What a certificate presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    /// Its rampart identity, when it carries exactly one valid `spiffe://` URI SAN.
    pub identity: Option<SpiffeId>,
    /// How many URI SANs it carries (for the refusal of one without an identity).
    pub uris: usize,
}

#[derive(Default)]
struct Recent {
    by_hash: HashMap<u64, (Box<[u8]>, Presented)>,
    order: VecDeque<u64>,
}

static RECENT: LazyLock<(RandomState, Mutex<Recent>)> = LazyLock::new(Default::default);

#[cfg(test)]
static PARSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What the DER certificate `der` presents, or why it is no certificate.
pub fn presented(der: &[u8]) -> Result<Presented, String> {
    let (hasher, recent) = &*RECENT;
    let key = hasher.hash_one(der);
    if let Ok(r) = recent.lock()
        && let Some((bytes, found)) = r.by_hash.get(&key)
        && **bytes == *der
    {
        return Ok(found.clone());
    }
    #[cfg(test)]
    PARSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let info = cert_from_der(der)?;
    let found = Presented { identity: info.identity, uris: info.uris.len() };
    if der.len() > MAX_REMEMBERED_BYTES {
        return Ok(found);
    }
    if let Ok(mut r) = recent.lock() {
        if r.by_hash.insert(key, (der.into(), found.clone())).is_none() {
            r.order.push_back(key);
        }
        while r.order.len() > REMEMBERED {
            if let Some(old) = r.order.pop_front() {
                r.by_hash.remove(&old);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::Ordering;

    use super::*;

    fn cert(uri: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_is_parsed_once_and_each_keeps_its_own_identity() {
        let (a, b) = (cert("spiffe://local/node/a"), cert("spiffe://local/node/b"));
        let before = PARSED.load(Ordering::Relaxed);
        let first = presented(&a).unwrap();
        assert_eq!(
            first.identity.as_ref().map(ToString::to_string).as_deref(),
            Some("spiffe://local/node/a")
        );
        assert_eq!(presented(&a).unwrap(), first);
        assert_eq!(PARSED.load(Ordering::Relaxed) - before, 1, "the second ask was remembered");
        let other = presented(&b).unwrap();
        assert_eq!(other.identity.map(|id| id.to_string()).as_deref(), Some("spiffe://local/node/b"));
        let mut cut = a.clone();
        cut.truncate(a.len() - 1);
        assert!(presented(&cut).is_err(), "a different byte string is parsed, not remembered");
        assert!(presented(b"not a certificate").is_err());
    }
}

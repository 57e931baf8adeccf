//! PEM and DER as the PKI loads them: certificates (inspection, the identity presented in a
//! handshake), CRLs checked against a fixed CA, CSRs, CA bundles and their fingerprints, and the
//! names inside (SPIFFE ids, trust domains). What loads writes back and loads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_pki::bundle::{Bundle, Fingerprint};
use rampart_pki::csr::CheckedCsr;
use rampart_pki::inspect::{cert_from_bytes, cert_pem, crl_from_bytes};
use rampart_pki::presented::presented;
use rampart_pki::{EntityName, SpiffeId, TrustDomain};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = cert_from_bytes(data) {
        let seen = presented(&info.der).expect("a loaded certificate is presentable");
        assert_eq!((seen.identity.as_ref(), seen.uris), (info.identity.as_ref(), info.uris.len()));
        let again = cert_from_bytes(cert_pem(&info.der).as_bytes()).expect("its PEM loads");
        assert_eq!(again.sha256_fingerprint, info.sha256_fingerprint);
    }
    let _ = presented(data);
    if let Ok(crl) = crl_from_bytes(data, rampart_fuzz::CA_DER) {
        assert!(crl.revoked_serials.iter().all(|s| s.bytes().all(|b| b.is_ascii_hexdigit())));
    }
    let _ = CheckedCsr::parse(data).map(|csr| csr.key_type());
    if let Ok(bundle) = Bundle::parse(data) {
        let again = Bundle::parse(bundle.to_pem().as_bytes()).expect("a bundle's PEM loads");
        assert_eq!(again, bundle);
        let fingerprint = bundle.fingerprint();
        assert_eq!(Fingerprint::parse(&fingerprint.to_string()).ok(), Some(fingerprint));
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Fingerprint::parse(text);
    let _ = (TrustDomain::new(text), EntityName::new(text));
    if let Ok(id) = SpiffeId::parse(text) {
        assert_eq!(SpiffeId::parse(&id.to_string()).ok(), Some(id));
    }
});

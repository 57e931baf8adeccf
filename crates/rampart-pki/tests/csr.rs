//! A key made on the holder's machine, certified from its CSR: the certificate carries the
//! admin's identity and names whatever the CSR claims, no key is written at the CA, and a CSR
//! whose signature does not verify is refused.
#![allow(clippy::unwrap_used)]

use rampart_pki::csr::{self, CheckedCsr};
use rampart_pki::{CaOptions, EntityName, IssueRequest, KeyType, PkiError, Role, TrustDomain};

fn request(role: Role, name: &str) -> IssueRequest {
    IssueRequest {
        role,
        name: EntityName::new(name).unwrap(),
        dns: Vec::new(),
        ips: Vec::new(),
        lifetime: rampart_pki::Lifetime::days(30).unwrap(),
        key_type: KeyType::default(),
    }
}

#[test]
fn a_csr_is_certified_as_the_admin_says_and_its_key_stays_with_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let pki = rampart_pki::Pki::new(dir.path().join("pki"));
    let domain = TrustDomain::new("test").unwrap();
    pki.create_domain(&domain, &CaOptions::default(), false).unwrap();
    let ca = pki.open(&domain).unwrap();

    for key_type in [KeyType::P256, KeyType::Ed25519] {
        // The CSR names "mallory"; the admin signs it as user alice.
        let made = csr::request(&EntityName::new("mallory").unwrap(), key_type).unwrap();
        assert!(made.key_pem.contains("PRIVATE KEY"));
        let checked = CheckedCsr::parse(made.csr_pem.as_bytes()).unwrap();
        assert_eq!(checked.key_type(), key_type);
        let name = format!("alice-{}", key_type.as_str());
        let issued = ca.sign(&checked, &request(Role::User, &name), false).unwrap();
        assert_eq!(issued.cert.identity.unwrap().to_string(), format!("spiffe://test/user/{name}"));
        assert!(!issued.cert.subject.contains("mallory"), "{}", issued.cert.subject);
        assert!(issued.cert_path.exists() && !issued.key_path.exists(), "no key at the CA");
        // The certificate is for the CSR's key: the holder's key matches it.
        let holder = rcgen::KeyPair::from_pem(&made.key_pem).unwrap();
        let cert = x509_parser::parse_x509_certificate(&issued.cert.der).unwrap().1;
        assert_eq!(cert.public_key().subject_public_key.data.as_ref(), holder.public_key_raw());
    }

    // A valid certificate is not replaced by mistake; a renewal keeps the role.
    let made = csr::request(&EntityName::new("alice").unwrap(), KeyType::P256).unwrap();
    let checked = CheckedCsr::parse(made.csr_pem.as_bytes()).unwrap();
    let again = ca.sign(&checked, &request(Role::User, "alice-p256"), false).unwrap_err();
    assert!(matches!(again, PkiError::AlreadyIssued { .. }), "{again}");
    assert!(ca.sign(&checked, &request(Role::User, "alice-p256"), true).is_ok());
    let promoted = ca.sign(&checked, &request(Role::Admin, "alice-p256"), true).unwrap_err();
    assert!(promoted.to_string().contains("keeps the role"), "{promoted}");
}

#[test]
fn a_csr_that_does_not_prove_its_key_or_is_no_csr_is_refused() {
    let made = csr::request(&EntityName::new("alice").unwrap(), KeyType::P256).unwrap();
    // One byte of the signed part changed: the signature no longer verifies.
    let der = pem_der(&made.csr_pem);
    let mut tampered = der.clone();
    let at = tampered.len() / 3;
    tampered[at] ^= 0x01;
    let refused = CheckedCsr::parse(to_pem(&tampered).as_bytes()).unwrap_err();
    assert!(matches!(refused, PkiError::BadCsr(_)), "{refused}");
    for bad in [b"".to_vec(), b"hello".to_vec(), vec![0xff; 100], vec![b'A'; 100_000]] {
        assert!(matches!(CheckedCsr::parse(&bad), Err(PkiError::BadCsr(_))));
    }
}

fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().contents().to_vec()
}

fn to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

#[test]
fn a_holder_renews_with_its_current_certificate_only_keeping_identity_names_and_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let pki = rampart_pki::Pki::new(dir.path().join("pki"));
    let domain = TrustDomain::new("test").unwrap();
    pki.create_domain(&domain, &CaOptions::default(), false).unwrap();
    let ca = pki.open(&domain).unwrap();
    let mut first = request(Role::Node, "n1");
    first.dns = vec!["n1.internal".into()];
    first.lifetime = "2m".parse().unwrap();
    let issued = ca.issue(&first).unwrap();
    // As of `at`: a minute and a half on, each certificate met here is past half its life.
    let renew = |presented: &rampart_pki::CertInfo, at: time::OffsetDateTime| {
        let made = csr::request(&EntityName::new("n1").unwrap(), KeyType::P256).unwrap();
        ca.renew_for_at(presented, &CheckedCsr::parse(made.csr_pem.as_bytes()).unwrap(), at)
    };
    let now = time::OffsetDateTime::now_utc();
    let later = now + time::Duration::seconds(90);

    // Fresh: too early (a holder cannot renew in a loop).
    let early = renew(&issued.cert, now).unwrap_err();
    assert!(matches!(early, PkiError::RenewalTooEarly { .. }), "{early}");
    let second = renew(&issued.cert, later).unwrap();
    assert_eq!(second.cert.identity, issued.cert.identity);
    assert_eq!(second.cert.dns, ["n1.internal"]);
    assert_eq!(second.cert.not_after - second.cert.not_before, time::Duration::minutes(7), "2m + backdate");
    assert_ne!(second.cert.serial, issued.cert.serial);
    // The answer was lost: the certificate it replaced asks again, within the grace.
    let _third = renew(&issued.cert, later).unwrap();
    // Now the first is two renewals old: still valid, but it cannot extend itself.
    let refused = renew(&issued.cert, later).unwrap_err();
    assert!(matches!(refused, PkiError::NotCurrent { .. }), "{refused}");
    // The one the current replaced, within the grace, once it is past half its life.
    assert!(matches!(renew(&second.cert, now).unwrap_err(), PkiError::RenewalTooEarly { .. }));
    assert!(renew(&second.cert, later).is_ok());
}

#![allow(clippy::unwrap_used)]
use super::*;
use crate::authority::{IssueRequest, RevokeTarget};
use crate::identity::{EntityName, Role, TrustDomain};
use crate::index::RevocationReason;
use crate::{KeyType, Pki};

fn request(name: &str) -> IssueRequest {
    IssueRequest {
        role: Role::Gateway,
        name: EntityName::new(name).unwrap(),
        dns: Vec::new(),
        ips: Vec::new(),
        lifetime: crate::Lifetime::days(30).unwrap(),
        key_type: KeyType::P256,
    }
}

/// The certificates of a PEM file.
fn certs(path: &std::path::Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&bytes).map(|p| p.unwrap().contents).collect()
}

#[test]
fn a_ca_is_rotated_in_two_steps_with_both_trusted_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let domain = TrustDomain::new("west").unwrap();
    pki.create_domain(&domain, &CaOptions::default(), false).unwrap();
    let old = pki.open(&domain).unwrap();
    old.issue(&request("gateway")).unwrap();
    old.issue(&request("n1")).unwrap();
    let old_ca = old.ca_cert().der.clone();
    assert!(matches!(old.finish_rotation(), Err(PkiError::NoRotation(_))));

    let rotating = old.begin_rotation(&CaOptions::default()).unwrap();
    assert!(rotating.rotating() && pki.open(&domain).unwrap().rotating());
    assert!(matches!(rotating.begin_rotation(&CaOptions::default()), Err(PkiError::RotationUnderWay(_))));
    let new_ca = rotating.ca_cert().der.clone();
    assert_ne!(rotating.ca_cert().subject, old.ca_cert().subject, "a CRL is found by its issuer's name");
    assert_eq!(
        certs(&rotating.ca_path()),
        vec![new_ca.clone(), old_ca.clone()],
        "the new CA first, then the old"
    );
    // Each CA signs a CRL; a revocation lands in both.
    rotating
        .revoke(&EntityName::new("n1").unwrap(), &RevokeTarget::Current, RevocationReason::KeyCompromise)
        .unwrap();
    let crls = std::fs::read(rotating.crl_path()).unwrap();
    let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&crls).map(|p| p.unwrap()).collect();
    assert_eq!(blocks.len(), 2);
    for (block, ca) in blocks.iter().zip([&new_ca, &old_ca]) {
        let info = inspect::crl_from_bytes(&block.contents, ca).unwrap();
        assert_eq!(info.revoked_serials.len(), 1);
    }

    // The gateway still holds an old-CA certificate (n1 is revoked: not live): finish refused.
    let left: Vec<String> =
        rotating.issued_by_previous().unwrap().iter().map(|r| r.name.to_string()).collect();
    assert_eq!(left, ["gateway"]);
    assert!(matches!(rotating.finish_rotation(), Err(PkiError::NotYetRenewed { .. })));
    let renewed = rotating.renew(&EntityName::new("gateway").unwrap(), None, None).unwrap();
    assert!(inspect::is_signed_by(&renewed.cert.der, &new_ca), "renewed by the new CA");
    let done = rotating.finish_rotation().unwrap();
    assert!(!done.rotating());
    assert_eq!(certs(&done.ca_path()), vec![new_ca.clone()], "the old CA no longer trusted");
    assert!(!done.ca_path().with_file_name("previous").exists());
    assert_eq!(x509_parser::pem::Pem::iter_from_buffer(&std::fs::read(done.crl_path()).unwrap()).count(), 1);
    // And again, later.
    assert!(done.begin_rotation(&CaOptions::default()).unwrap().rotating());
}

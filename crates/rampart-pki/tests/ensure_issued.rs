//! A holder's certificate issued on first use: once, with the role asked, and never over a
//! certificate of another role.
#![allow(clippy::unwrap_used)]

use rampart_pki::{CaOptions, EntityName, PkiError, Role, TrustDomain};

#[test]
fn a_missing_certificate_is_issued_once_and_another_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = rampart_pki::Pki::new(dir.path().join("pki"));
    let domain = TrustDomain::new("local").unwrap();
    pki.create_domain(&domain, &CaOptions::default(), false).unwrap();
    let n1 = EntityName::new("n1").unwrap();
    let issued = pki.ensure_issued(&domain, Role::Node, &n1).unwrap().unwrap();
    assert_eq!(issued.record.identity.to_string(), "spiffe://local/node/n1");
    assert!(pki.ensure_issued(&domain, Role::Node, &n1).unwrap().is_none(), "issued once");
    let refused = pki.ensure_issued(&domain, Role::Gateway, &n1).unwrap_err();
    assert!(matches!(refused, PkiError::WrongRole { expected: Role::Gateway, .. }), "{refused}");
    assert!(refused.to_string().contains("not a gateway certificate"), "{refused}");
    // Without the CA's files there is nothing to issue with: a clear error, nothing written.
    let elsewhere = rampart_pki::Pki::new(dir.path().join("other"));
    assert!(elsewhere.ensure_issued(&domain, Role::Node, &n1).is_err());
}

//! A principal comes from a completed TLS handshake: the peer certificate's identity and role.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::sync::Arc;

use rampart_auth::{Credential, Principal};
use rampart_pki::{CaOptions, EntityName, IssueRequest, KeyType, Pki, Role, TrustDomain};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn issue(
    pki: &Pki,
    d: &TrustDomain,
    role: Role,
    name: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (dns, ips) = rampart_pki::default_server_sans();
    let req = IssueRequest {
        role,
        name: EntityName::new(name).unwrap(),
        dns,
        ips,
        lifetime: rampart_pki::Lifetime::days(1).unwrap(),
        key_type: KeyType::P256,
    };
    let i = pki.open(d).unwrap().issue(&req).unwrap();
    (
        vec![CertificateDer::from_pem_file(&i.cert_path).unwrap()],
        PrivateKeyDer::from_pem_file(&i.key_path).unwrap(),
    )
}

/// Moves TLS records between the two ends until both finish the handshake.
fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        server.read_tls(&mut buf.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        client.read_tls(&mut buf.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn the_identity_and_role_come_from_the_verified_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let d = TrustDomain::new("prod").unwrap();
    pki.create_domain(&d, &CaOptions::default(), false).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.open(&d).unwrap().ca_path()).unwrap()).unwrap();
    let roots = Arc::new(roots);

    let (chain, key) = issue(&pki, &d, Role::Gateway, "gw");
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let server_config = Arc::new(
        ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let client = |cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>| {
        let b = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone());
        let config = match cert {
            Some((c, k)) => b.with_client_auth_cert(c, k).unwrap(),
            None => b.with_no_client_auth(),
        };
        ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
    };

    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    assert_eq!(Principal::from_tls(&server).unwrap(), None, "no principal before the handshake");
    let mut c = client(Some(issue(&pki, &d, Role::Admin, "ops")));
    pump(&mut c, &mut server);
    let p = Principal::from_tls(&server).unwrap().unwrap();
    assert_eq!(p.name(), "spiffe://prod/admin/ops");
    assert!(p.is_admin());
    assert_eq!(p.role(), Role::Admin);
    assert!(matches!(p.credential(), Credential::Certificate(_)));

    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let mut c = client(Some(issue(&pki, &d, Role::Node, "web-1")));
    pump(&mut c, &mut server);
    let p = Principal::from_tls(&server).unwrap().unwrap();
    assert_eq!((p.role(), p.is_admin(), p.user()), (Role::Node, false, None));

    // Anonymous (optional client auth): no principal.
    let mut server = ServerConnection::new(server_config).unwrap();
    let mut c = client(None);
    pump(&mut c, &mut server);
    assert_eq!(Principal::from_tls(&server).unwrap(), None);
}

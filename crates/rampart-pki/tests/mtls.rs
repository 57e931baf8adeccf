//! Certificates from this PKI in real mutual-TLS handshakes: a rustls client (a gateway) and a
//! rustls server (a node) over TCP on 127.0.0.1, with and without the CRL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rampart_pki::{
    CaOptions, EntityName, IssueRequest, Issued, KeyType, Pki, RevocationReason, RevokeTarget, Role,
    TrustDomain,
};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Domain {
    pki: Pki,
    domain: TrustDomain,
}

impl Domain {
    fn new(dir: &Path, name: &str) -> Self {
        let pki = Pki::new(dir.join("pki"));
        let domain = TrustDomain::new(name).unwrap();
        pki.create_domain(&domain, &CaOptions::default(), false).unwrap();
        Domain { pki, domain }
    }

    fn issue(&self, role: Role, name: &str, key_type: KeyType) -> Issued {
        let (dns, ips) = rampart_pki::default_server_sans();
        let req = IssueRequest {
            role,
            name: EntityName::new(name).unwrap(),
            dns,
            ips,
            lifetime: rampart_pki::Lifetime::days(30).unwrap(),
            key_type,
        };
        self.pki.open(&self.domain).unwrap().issue(&req).unwrap()
    }

    fn revoke(&self, name: &str) {
        let ca = self.pki.open(&self.domain).unwrap();
        ca.revoke(&EntityName::new(name).unwrap(), &RevokeTarget::Current, RevocationReason::KeyCompromise)
            .unwrap();
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let ca = self.pki.open(&self.domain).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca.ca_path()).unwrap()).unwrap();
        Arc::new(roots)
    }

    fn crls(&self) -> Vec<CertificateRevocationListDer<'static>> {
        let ca = self.pki.open(&self.domain).unwrap();
        vec![CertificateRevocationListDer::from_pem_file(ca.crl_path()).unwrap()]
    }
}

fn chain_and_key(issued: &Issued) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from_pem_file(&issued.cert_path).unwrap()],
        PrivateKeyDer::from_pem_file(&issued.key_path).unwrap(),
    )
}

/// Runs one handshake plus a ping/pong; returns (server result, client result).
fn handshake(
    server_ca: &Domain,
    server_cert: &Issued,
    client_ca: &Domain,
    client_cert: &Issued,
    with_crls: bool,
) -> (Result<(), String>, Result<(), String>) {
    let mut client_verifier = WebPkiClientVerifier::builder_with_provider(server_ca.roots(), provider());
    let mut server_verifier = WebPkiServerVerifier::builder_with_provider(client_ca.roots(), provider());
    if with_crls {
        client_verifier = client_verifier.with_crls(server_ca.crls());
        server_verifier = server_verifier.with_crls(client_ca.crls());
    }
    let (chain, key) = chain_and_key(server_cert);
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier.build().unwrap())
        .with_single_cert(chain, key)
        .unwrap();
    let (chain, key) = chain_and_key(client_cert);
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_webpki_verifier(server_verifier.build().unwrap())
        .with_client_auth_cert(chain, key)
        .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> Result<(), String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = ServerConnection::new(Arc::new(server_config)).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"pong").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())
    });
    let client = (|| -> Result<(), String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(client_config), name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        if &buf != b"pong" {
            return Err("wrong reply".into());
        }
        Ok(())
    })();
    (server.join().unwrap(), client)
}

#[test]
fn gateway_and_node_complete_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Domain::new(dir.path(), "prod");
    for key_type in [KeyType::P256, KeyType::P384, KeyType::Ed25519, KeyType::Rsa2048] {
        let node = prod.issue(Role::Node, &format!("node-{key_type}"), key_type);
        let gateway = prod.issue(Role::Gateway, &format!("gw-{key_type}"), key_type);
        let (server, client) = handshake(&prod, &node, &prod, &gateway, true);
        assert_eq!(server, Ok(()), "{key_type}");
        assert_eq!(client, Ok(()), "{key_type}");
    }
}

#[test]
fn revoked_client_is_refused_once_the_crl_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Domain::new(dir.path(), "prod");
    let node = prod.issue(Role::Node, "node-1", KeyType::P256);
    let gateway = prod.issue(Role::Gateway, "gw-1", KeyType::P256);
    prod.revoke("gw-1");
    // Without the CRL the signature chain alone still holds: the CRL is what refuses it.
    let (server, _) = handshake(&prod, &node, &prod, &gateway, false);
    assert_eq!(server, Ok(()));
    let (server, client) = handshake(&prod, &node, &prod, &gateway, true);
    let err = server.unwrap_err();
    assert!(err.contains("Revoked"), "server said: {err}");
    assert!(client.is_err());
}

#[test]
fn revoked_server_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Domain::new(dir.path(), "prod");
    let node = prod.issue(Role::Node, "node-1", KeyType::P256);
    let gateway = prod.issue(Role::Gateway, "gw-1", KeyType::P256);
    prod.revoke("node-1");
    let (_, client) = handshake(&prod, &node, &prod, &gateway, true);
    let err = client.unwrap_err();
    assert!(err.contains("Revoked"), "client said: {err}");
}

#[test]
fn a_certificate_from_another_domain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Domain::new(dir.path(), "prod");
    let test = Domain::new(dir.path(), "test");
    let node = prod.issue(Role::Node, "node-1", KeyType::P256);
    // Same role and name, but signed by test's CA: worthless in prod.
    let intruder = test.issue(Role::Gateway, "gw-1", KeyType::P256);
    let (server, client) = handshake(&prod, &node, &prod, &intruder, true);
    let err = server.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "server said: {err}");
    assert!(client.is_err());
}

#[test]
fn a_client_only_certificate_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let prod = Domain::new(dir.path(), "prod");
    // A user certificate has clientAuth only: a gateway must not accept it as a node.
    let user = prod.issue(Role::User, "alice", KeyType::P256);
    let gateway = prod.issue(Role::Gateway, "gw-1", KeyType::P256);
    let (_, client) = handshake(&prod, &user, &prod, &gateway, true);
    let err = client.unwrap_err();
    assert!(err.contains("extended key usage for server authentication"), "client said: {err}");
}

//! Two networks, `east` and `west`, peered both ways (the federation tests and the attack
//! suite's federation family), and the parts an attacker of one of them would forge.

use std::time::Duration;

use rampart_federation::assertion::Signer;
use rampart_net::client::HttpsClient;
use rampart_pki::{Role, TrustDomain};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Network, ok};

/// East and west, peered both ways by their bundles; west hosts `echo` and `data` and exports
/// `echo` to east; east hosts `hello` only.
pub struct Pair {
    pub east: Network,
    pub west: Network,
}

/// `rampart pki bundle --out`: the file and the fingerprint.
pub fn bundle_of(net: &Network, name: &str) -> (String, String) {
    let path = net.dir.path().join(format!("{name}.pem"));
    let out = super::run(&net.home, &["pki", "bundle", "--out", path.to_str().unwrap()], "");
    let fingerprint = String::from_utf8_lossy(&out.stderr).lines().last().unwrap().trim().to_owned();
    (path.display().to_string(), fingerprint)
}

pub fn pair() -> Pair {
    let mut east = Network::start_in("east", &[]);
    let mut west = Network::start_in("west", &[]);
    east.add_node("n1", &["--service", "hello"]);
    west.add_node("n1", &["--service", "echo", "--service", "data"]);
    let ((east_pem, _), (_, west_fingerprint)) = (bundle_of(&east, "east"), bundle_of(&west, "west"));
    // East fetches west's bundle from west's gateway and pins it by the fingerprint west's
    // operator gave (another fingerprint: refused, nothing kept); west installs east's file.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let why = super::refused(
        &east.home,
        &["network", "add", "west", "--url", &west.url, "--fingerprint", &wrong],
        "",
    );
    assert!(why.contains("refusing to trust it"), "{why}");
    ok(&east.home, &["network", "add", "west", "--url", &west.url, "--fingerprint", &west_fingerprint]);
    ok(&west.home, &["network", "add", "east", "--url", &east.url, "--bundle", &east_pem]);
    Pair { east, west }
}

/// A client presenting `cert`/`key` to the gateways of `net`, verifying them by its CA.
pub fn client_to(
    net: &Network,
    domain: &str,
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> HttpsClient {
    let ca = net.home.join(format!("pki/{domain}/ca.pem"));
    let (roots, _) = rampart_net::TlsMaterial::load_roots(&ca, None).unwrap();
    let domain = TrustDomain::new(domain).unwrap();
    let identity = rampart_net::tls::LiveIdentity::new(identity.0, identity.1).unwrap();
    let tls = rampart_net::tls::client_config(&domain, roots, Vec::new(), Some(identity), &[Role::Gateway])
        .unwrap();
    rampart_net::client::https_client(tls, Duration::from_secs(2))
}

pub fn files(
    net: &Network,
    domain: &str,
    name: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let dir = net.home.join(format!("pki/{domain}/issued"));
    let cert = CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    (vec![cert], key)
}

/// A certificate for `spiffe` issued by the CA of `net`'s `domain` (stolen, for the test).
pub fn minted(
    net: &Network,
    domain: &str,
    spiffe: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let dir = net.home.join(format!("pki/{domain}"));
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap()).unwrap();
    let ca = rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem")).unwrap(), ca_key)
        .unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(spiffe.try_into().unwrap()));
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth, rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

pub fn signer(
    identity: &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    key_of: &PrivateKeyDer<'static>,
) -> Signer {
    let id = rampart_pki::inspect::cert_from_der(identity.0[0].as_ref()).unwrap().identity.unwrap();
    let PrivateKeyDer::Pkcs8(k) = key_of else { panic!("not PKCS#8") };
    Signer::new(id, k.secret_pkcs8_der()).unwrap()
}

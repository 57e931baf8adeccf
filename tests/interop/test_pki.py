"""rampart's PKI read by an outside implementation: Python's `cryptography`."""

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

CASES = [
    ("node", "web-1", "p256", ec.EllipticCurvePrivateKey),
    ("gateway", "gw-2", "p384", ec.EllipticCurvePrivateKey),
    ("peer", "partner", "ed25519", ed25519.Ed25519PrivateKey),
    ("user", "alice", "rsa2048", rsa.RSAPrivateKey),
    ("admin", "ops", "p256", ec.EllipticCurvePrivateKey),
]


def load_cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def spki(key_or_cert):
    public = key_or_cert.public_key()
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_every_certificate_key_and_crl_loads_and_verifies(rampart):
    rampart("init", "--domain", "prod")
    for role, name, key_type, _ in CASES:
        rampart("pki", "issue", "--domain", "prod", "--role", role, "--name", name, "--key-type", key_type)
    pki = rampart.home / "pki" / "prod"
    ca = load_cert(pki / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    load_pem_private_key((pki / "ca.key").read_bytes(), password=None)

    for role, name, _, key_class in CASES:
        cert = load_cert(pki / "issued" / f"{name}.pem")
        cert.verify_directly_issued_by(ca)
        key = load_pem_private_key((pki / "issued" / f"{name}.key").read_bytes(), password=None)
        assert isinstance(key, key_class)
        assert spki(key) == spki(cert), f"{name}: key does not match certificate"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://prod/{role}/{name}"]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        assert (ExtendedKeyUsageOID.SERVER_AUTH in eku) == (role in ("node", "gateway", "peer"))
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest

    crl = x509.load_pem_x509_crl((pki / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())
    assert len(crl) == 0
    assert crl.next_update_utc > crl.last_update_utc


def test_revocation_is_visible_to_an_outside_reader(rampart):
    rampart("init")
    rampart("pki", "issue", "--role", "node", "--name", "n1")
    rampart("pki", "issue", "--role", "node", "--name", "n2")
    rampart("pki", "revoke", "--name", "n1", "--reason", "key-compromise")
    pki = rampart.home / "pki" / "local"
    ca = load_cert(pki / "ca.pem")
    crl = x509.load_pem_x509_crl((pki / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())
    n1 = load_cert(pki / "issued" / "n1.pem")
    n2 = load_cert(pki / "issued" / "n2.pem")
    entry = crl.get_revoked_certificate_by_serial_number(n1.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(n2.serial_number) is None


def test_a_test_certificate_is_not_signed_by_prod(rampart):
    rampart("init", "--domain", "prod")
    rampart("pki", "init", "--domain", "test")
    rampart("pki", "issue", "--domain", "test", "--role", "node", "--name", "web-1")
    prod_ca = load_cert(rampart.home / "pki" / "prod" / "ca.pem")
    stray = load_cert(rampart.home / "pki" / "test" / "issued" / "web-1.pem")
    # Different issuer name (ValueError) or, were the names forged equal, a bad signature.
    with pytest.raises((ValueError, InvalidSignature)):
        stray.verify_directly_issued_by(prod_ca)

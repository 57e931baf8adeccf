"""The payload keyring against Python's `cryptography.fernet`, both ways."""

import subprocess
import time

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def keys(rampart):
    """The keyring's keys, oldest first, as the file holds them."""
    path = rampart.home / "keys" / "payload.keys"
    return [line.strip().encode() for line in path.read_text().splitlines() if line.strip()]


def encrypt(rampart, message: bytes) -> bytes:
    proc = subprocess.run(
        [*rampart.argv, "keys", "encrypt"], input=message, capture_output=True, timeout=60, check=True
    )
    return proc.stdout.strip()


def decrypt(rampart, token: bytes, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*rampart.argv, "keys", "decrypt", *extra], input=token, capture_output=True, timeout=60)


def test_python_token_opens_in_rampart(rampart):
    rampart("init")
    (key,) = keys(rampart)
    message = b'{"temperature": 21.5, "unit": "C"}'
    token = Fernet(key).encrypt(message)
    proc = decrypt(rampart, token, "--ttl", "60")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == message


def test_rampart_token_opens_in_python_before_and_after_rotation(rampart):
    rampart("init")
    old_token = encrypt(rampart, b"before rotation")
    (old_key,) = keys(rampart)
    assert Fernet(old_key).decrypt(old_token, ttl=60) == b"before rotation"

    rampart("keys", "rotate")
    old_key2, new_key = keys(rampart)
    assert old_key2 == old_key
    new_token = encrypt(rampart, b"after rotation")
    # MultiFernet takes the newest key first; the file lists it last.
    multi = MultiFernet([Fernet(k) for k in reversed(keys(rampart))])
    assert multi.decrypt(old_token) == b"before rotation"
    assert multi.decrypt(new_token) == b"after rotation"
    assert Fernet(new_key).decrypt(new_token) == b"after rotation"
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(new_token)
    # Old tokens still open in rampart too.
    assert decrypt(rampart, old_token).stdout == b"before rotation"

    # export-key hands out the newest key.
    exported = rampart("keys", "export-key").stdout.strip().encode()
    assert exported == new_key

    # After dropping the old key, its tokens are foreign to both.
    rampart("keys", "rotate", "--keep", "1")
    proc = decrypt(rampart, old_token)
    assert proc.returncode != 0 and proc.stdout == b""
    assert b"matches no key" in proc.stderr


def test_ttl_rules_agree_with_python(rampart):
    rampart("init")
    (key,) = keys(rampart)
    f = Fernet(key)
    now = int(time.time())
    old = f.encrypt_at_time(b"old", now - 100)
    with pytest.raises(InvalidToken):
        f.decrypt_at_time(old, ttl=50, current_time=now)
    proc = decrypt(rampart, old, "--ttl", "50")
    assert proc.returncode != 0 and b"expired" in proc.stderr and proc.stdout == b""
    assert f.decrypt_at_time(old, ttl=200, current_time=now) == b"old"
    assert decrypt(rampart, old, "--ttl", "200").stdout == b"old"

    # More than 60 s ahead is refused by both, even without a TTL; 30 s ahead is skew.
    future = f.encrypt_at_time(b"future", now + 120)
    with pytest.raises(InvalidToken):
        f.decrypt_at_time(future, ttl=1000, current_time=now)
    proc = decrypt(rampart, future, "--ttl", "1000")
    assert proc.returncode != 0 and b"future" in proc.stderr
    near = f.encrypt_at_time(b"near", now + 30)
    assert f.decrypt_at_time(near, ttl=1000, current_time=now) == b"near"
    assert decrypt(rampart, near, "--ttl", "1000").stdout == b"near"


def test_tampered_and_foreign_tokens_are_refused_without_output(rampart):
    rampart("init")
    token = bytearray(encrypt(rampart, b"secret"))
    token[40] = ord("A") if token[40] != ord("A") else ord("B")
    for bad in [bytes(token), Fernet(Fernet.generate_key()).encrypt(b"x"), b"", b"gAAAA", b"\xff\xfe"]:
        proc = decrypt(rampart, bad)
        assert proc.returncode != 0, bad
        assert proc.stdout == b""
        assert proc.stderr.startswith(b"error: ") and proc.stderr.count(b"\n") == 1, proc.stderr

"""The data path with outside clients: the Python example client (requests + cryptography) and
plain `requests`, against a real gateway and two nodes on 127.0.0.1."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from procs import wait_line

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "client.py"


@pytest.fixture
def network(rampart, rampart_bin):
    """init + a gateway + two nodes; a user alice with a certificate, a token and policy."""
    rampart("init")
    home = rampart.home
    procs = []

    def start(*args, prefix):
        p = subprocess.Popen([str(rampart_bin), "--home", str(home), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
        procs.append(p)
        return wait_line(p, prefix)

    line = start("gateway", "--listen", "127.0.0.1:0", prefix="rampart gateway listening on ")
    url = line.split()[4]
    for name in ("n1", "n2"):
        start("node", "--name", name, "--listen", "127.0.0.1:0", "--gateway", url, prefix="rampart node ")
    rampart("pki", "issue", "--role", "user", "--name", "alice")
    rampart("user", "add", "alice", "--no-password")
    token = rampart("token", "issue", "--user", "alice").stdout.strip()
    rampart("policy", "allow", "--service", "data", "--principal", "user/alice")
    pki = home / "pki" / "local"
    net = {"url": url, "ca": str(pki / "ca.pem"), "cert": str(pki / "issued" / "alice.pem"),
           "key": str(pki / "issued" / "alice.key"), "token": token, "keyring": str(home / "keys" / "payload.keys")}
    # Ready when the gateway routes to the nodes (poll, bounded).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/data", headers={"Authorization": f"Bearer {token}"}, verify=net["ca"], timeout=5)
        if r.status_code == 200:
            break
        time.sleep(0.05)
    yield net
    for p in procs:
        p.kill()
        p.wait()


def run_example(*args):
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_example_client_with_a_user_certificate(network):
    out = run_example("--gateway", network["url"], "--ca", network["ca"], "--cert", network["cert"], "--key",
                      network["key"], "--keyring", network["keyring"], "--by", "age",
                      "--record", '{"name": "ada", "age": 36}', "--record", '{"name": "alan", "age": 41}',
                      "--record", '{"name": "grace", "age": 9}', "--record", '{"name": "nobody"}')
    assert len(out["posted"]) == 4
    assert [r.get("age") for r in out["asc"]] == [9, 36, 41, None]
    assert [r.get("age") for r in out["desc"]] == [41, 36, 9, None]


def test_example_client_with_a_token(network, rampart):
    key = rampart("keys", "export-key").stdout.strip()
    out = run_example("--gateway", network["url"], "--ca", network["ca"], "--token", network["token"],
                      "--fernet-key", key, "--by", "name", "--record", '{"name": "bo"}', "--record", '{"name": "al"}')
    assert [r["name"] for r in out["asc"]] == ["al", "bo"]
    assert [r["name"] for r in out["desc"]] == ["bo", "al"]


def test_example_client_moves_past_a_dead_gateway(network, rampart):
    import socket
    with socket.socket() as sock:  # a loopback port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    key = rampart("keys", "export-key").stdout.strip()
    out = run_example("--gateway", f"{dead},{network['url']}", "--ca", network["ca"], "--token", network["token"],
                      "--fernet-key", key, "--record", '{"name": "cy"}', "--record", '{"name": "di"}')
    assert len(out["posted"]) == 2
    assert [r["name"] for r in out["asc"]] == ["cy", "di"]
    # With only dead gateways: a clear failure, not a hang.
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--gateway", dead, "--ca", network["ca"], "--token",
                           network["token"], "--fernet-key", key], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no gateway answered" in proc.stderr


def test_refusals_seen_by_requests(network):
    url, ca = network["url"], network["ca"]
    # Anonymous: 401 with a reason and a Bearer challenge.
    r = requests.get(f"{url}/data", verify=ca, timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthenticated"
    # A gateway certificate the client does not trust is refused by the client itself.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/data", timeout=10)
    # The token is not for echo: default deny.
    r = requests.get(f"{url}/echo", headers={"Authorization": f"Bearer {network['token']}"}, verify=ca, timeout=10)
    assert r.status_code == 403 and "no policy allows user/alice" in r.json()["reason"]
    # A garbled envelope is a 400 that says so.
    r = requests.post(f"{url}/data", data=b"gAAAAA-garbage", headers={"Content-Type": "application/fernet",
                      "Authorization": f"Bearer {network['token']}"}, verify=ca, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "bad_envelope"

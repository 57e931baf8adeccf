"""Federation with an outside client: Python `requests` calls a service only west hosts through
east's gateway, by token and by client certificate, and west's policy refuses bob."""

import os
import subprocess
import time

import pytest
import requests
from procs import wait_line


@pytest.fixture
def federation(rampart_bin, tmp_path):
    """Two networks, east and west, peered both ways; west hosts and exports `echo`."""
    procs = []

    def run(home, *args):
        proc = subprocess.run([str(rampart_bin), "--home", str(home), *args], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"rampart {' '.join(args)}: {proc.stderr}"
        return proc

    def start(home, *args, prefix):
        p = subprocess.Popen([str(rampart_bin), "--home", str(home), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
        procs.append(p)
        return wait_line(p, prefix)

    homes, urls = {}, {}
    for net in ("east", "west"):
        homes[net] = tmp_path / net
        run(homes[net], "init", "--domain", net)
        line = start(homes[net], "gateway", "--listen", "127.0.0.1:0", prefix="rampart gateway listening on ")
        urls[net] = line.split()[4]
    start(homes["east"], "node", "--name", "e1", "--listen", "127.0.0.1:0", "--gateway", urls["east"],
          "--service", "hello", prefix="rampart node ")
    start(homes["west"], "node", "--name", "w1", "--listen", "127.0.0.1:0", "--gateway", urls["west"],
          "--service", "echo", prefix="rampart node ")
    for me, peer in (("east", "west"), ("west", "east")):
        bundle = tmp_path / f"{peer}.pem"
        run(homes[peer], "pki", "bundle", "--out", str(bundle))
        run(homes[me], "network", "add", peer, "--url", urls[peer], "--bundle", str(bundle))
    run(homes["west"], "network", "export", "echo", "--to", "east")
    east = homes["east"]
    tokens = {}
    for user in ("alice", "bob"):
        run(east, "user", "add", user, "--no-password")
        tokens[user] = run(east, "token", "issue", "--user", user).stdout.strip()
        run(east, "policy", "allow", "--service", "echo", "--principal", f"user/{user}")
    run(east, "pki", "issue", "--role", "user", "--name", "carol")
    run(east, "policy", "allow", "--service", "echo", "--principal", "user/carol")
    run(homes["west"], "policy", "allow", "--service", "echo", "--principal", "peer:east/user/alice")
    run(homes["west"], "policy", "allow", "--service", "echo", "--principal",
        "peer:east/spiffe://east/user/carol")
    pki = east / "pki" / "east"
    net = {"url": urls["east"], "ca": str(pki / "ca.pem"), "tokens": tokens,
           "cert": (str(pki / "issued" / "carol.pem"), str(pki / "issued" / "carol.key"))}
    # Ready when east has learnt west's catalog (poll, bounded).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = requests.get(f"{net['url']}/echo/", headers={"Authorization": f"Bearer {tokens['alice']}"},
                         verify=net["ca"], timeout=5)
        if r.status_code == 200:
            break
        time.sleep(0.05)
    yield net
    for p in procs:
        p.kill()
        p.wait()


def test_requests_reaches_a_west_service_through_east_as_a_vouched_caller(federation):
    url, ca = federation["url"], federation["ca"]
    alice = {"Authorization": f"Bearer {federation['tokens']['alice']}"}
    r = requests.post(f"{url}/echo/a/b?x=1&y=two", headers=alice, data=b"payload", verify=ca, timeout=10)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["principal"] == "peer:east/user/alice"
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == ("POST", "/a/b", "x=1&y=two", "payload")

    r = requests.get(f"{url}/echo/", cert=federation["cert"], verify=ca, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["principal"] == "peer:east/spiffe://east/user/carol"

    bob = {"Authorization": f"Bearer {federation['tokens']['bob']}"}
    r = requests.get(f"{url}/echo/", headers=bob, verify=ca, timeout=10)
    assert r.status_code == 403, r.text
    assert "peer:east/user/bob" in r.json()["reason"]

"""Distributed jobs with an outside client: Python `requests` submits bytes to the `jobs`
service through the gateway, polls the job until it is done and reads its histogram, which is
the one Python counts itself; another user gets 404 for the same job."""

import time
from collections import Counter

import pytest
import requests

from procs import Started


@pytest.fixture
def jobs(rampart):
    rampart("init")
    started = Started(rampart.argv)
    start = started.start

    url = start("gateway", "--listen", "127.0.0.1:0", prefix="rampart gateway listening on ").split()[4]
    for name in ("n1", "n2"):
        start("node", "--name", name, "--listen", "127.0.0.1:0", "--gateway", url, "--service", "jobs",
              prefix="rampart node ")
    tokens = {}
    for user in ("alice", "bob"):
        rampart("user", "add", user, "--no-password")
        tokens[user] = rampart("token", "issue", "--user", user).stdout.strip()
        rampart("policy", "allow", "--service", "jobs", "--principal", f"user/{user}")
    yield {"url": url, "ca": str(rampart.home / "pki" / "local" / "ca.pem"), "tokens": tokens}
    started.stop()


def test_requests_submits_polls_and_reads_a_histogram(jobs):
    url, ca = jobs["url"], jobs["ca"]
    alice = {"Authorization": f"Bearer {jobs['tokens']['alice']}"}
    data = bytes(range(256)) * 300 + b"rampart"
    submitted = requests.post(f"{url}/jobs/histogram?tasks=4", data=data, verify=ca, timeout=10,
                              headers={**alice, "Content-Type": "application/octet-stream"})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/jobs/{job}", headers=alice, verify=ca, timeout=10).json()
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.1)  # polling a remote job's state, bounded by the deadline
    assert status["state"] == "done", status
    assert status["tasks"] == {"done": 4, "total": 4}
    result = requests.get(f"{url}/jobs/{job}/result", headers=alice, verify=ca, timeout=10)
    assert result.status_code == 200, result.text
    counts = Counter(data)
    assert result.json() == {"kind": "bytes", "bins": [counts.get(b, 0) for b in range(256)]}
    bob = {"Authorization": f"Bearer {jobs['tokens']['bob']}"}
    assert requests.get(f"{url}/jobs/{job}/result", headers=bob, verify=ca, timeout=10).status_code == 404


def test_requests_reads_the_413_of_an_oversized_upload(jobs):
    """`requests` sends the whole body without waiting for `100 Continue`: the gateway reads the
    rest and throws it away, so the client reads the refusal instead of a reset connection."""
    alice = {"Authorization": f"Bearer {jobs['tokens']['alice']}"}
    refused = requests.post(f"{jobs['url']}/jobs/histogram", data=b"x" * (40 << 20), headers=alice,
                            verify=jobs["ca"], timeout=30)
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "too_large"

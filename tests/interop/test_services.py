"""Services as files with an outside client: the examples of examples/services/ dropped into a
node's folder, called with Python `requests` through the gateway."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from procs import wait_line

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "services"


def test_requests_calls_programs_dropped_into_a_folder(rampart, rampart_bin, tmp_path):
    rampart("init")
    # The programs run as nobody, who must reach them: not under pytest's private tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="rampart-services-"))
    folder.chmod(0o755)
    procs = []

    def start(*args, prefix):
        p = subprocess.Popen([str(rampart_bin), "--home", str(rampart.home), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
        procs.append(p)
        return wait_line(p, prefix)

    try:
        url = start("gateway", "--listen", "127.0.0.1:0", prefix="rampart gateway listening on ").split()[4]
        run_as = ["--run-as", "nobody"] if os.getuid() == 0 else []
        start("node", "--name", "n1", "--listen", "127.0.0.1:0", "--gateway", url, "--services-dir", str(folder),
              *run_as, prefix="rampart node ")
        rampart("user", "add", "alice", "--no-password")
        token = rampart("token", "issue", "--user", "alice").stdout.strip()
        for svc in ("sorter", "json_echo"):
            rampart("policy", "allow", "--service", svc, "--principal", "user/alice")
        ca = str(rampart.home / "pki" / "local" / "ca.pem")
        auth = {"Authorization": f"Bearer {token}"}
        for name in ("sorter", "json_echo"):
            shutil.copy(EXAMPLES / name, folder / name)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = requests.post(f"{url}/sorter", headers=auth, data=b"3 1 2", verify=ca, timeout=10)
            if r.status_code == 200:
                break
            time.sleep(0.05)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == [1, 2, 3]
        r = requests.post(f"{url}/sorter?order=desc", headers=auth, data=b"3 1 2", verify=ca, timeout=10)
        assert r.json() == [3, 2, 1]
        r = requests.put(f"{url}/json_echo/a/b?x=1", headers=auth, data=b"payload", verify=ca, timeout=10)
        assert r.json() == {"method": "PUT", "path": "/a/b", "query": "x=1", "principal": "user/alice",
                            "body": "payload"}
        # Sealed both ways with Python's own Fernet: the gateway passes the envelope unopened,
        # the node opens it for the program and seals the program's answer again.
        fernet = Fernet(rampart("keys", "export-key").stdout.strip().encode())
        sealed = {**auth, "Content-Type": "application/fernet", "Accept": "application/fernet"}
        r = requests.post(f"{url}/sorter?order=desc", headers=sealed, data=fernet.encrypt(b"10 2.5 7"), verify=ca,
                          timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/fernet"
        assert fernet.decrypt(r.content, ttl=60).decode().strip() == "[10, 7, 2.5]"
        r = requests.post(f"{url}/json_echo", headers=sealed, data=fernet.encrypt(b"secret"), verify=ca, timeout=10)
        assert r.headers["content-type"] == "application/fernet"
        assert json.loads(fernet.decrypt(r.content, ttl=60))["body"] == "secret"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)

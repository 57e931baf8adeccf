"""The Kubernetes walk-through of docs/deploy.md without a cluster.

The home is made with the walk-through's commands; `rampart deploy k8s-secrets` must give back
every file byte for byte, and private material nowhere but in Secrets. Then the pods that
deploy/k8s describes run as processes on 127.0.0.1, each from what it would have mounted: etcd
with the StatefulSet's own TLS flags and the members' Secret, set up by the auth Job's own
etcdctl steps; two gateways and a node with its sidecar app, each from a home that
`rampart deploy unpack` laid out of its Secrets as the init containers do. A request is served
through both gateways, and the gateways' etcd user can touch nothing outside the network's
prefix.
"""

import base64
import os
import re
import socket
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import requests
import yaml
from procs import wait_line

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
DOMAIN = "example.org"
MEMBER_NAMES = [f"rampart-etcd-{i}.rampart-etcd.rampart.svc" for i in range(3)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def expand(text: str, env: dict) -> str:
    """Kubernetes' $(VAR) expansion in commands and arguments."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], text)


@pytest.fixture
def home(rampart):
    """The walk-through's home: the network, the etcd CA and its three certificates, a node."""
    rampart("init", "--domain", DOMAIN, "--dns", "rampart-gateway.rampart.svc")
    rampart("pki", "init", "--domain", "etcd")
    sans = [a for n in MEMBER_NAMES for a in ("--dns", n)]
    rampart("pki", "issue", "--domain", "etcd", "--role", "peer", "--name", "members", *sans,
            "--dns", "localhost", "--ip", "127.0.0.1")
    rampart("pki", "issue", "--domain", "etcd", "--role", "user", "--name", "rampart")
    rampart("pki", "issue", "--domain", "etcd", "--role", "admin", "--name", "root")
    rampart("pki", "issue", "--role", "node", "--name", "n1")
    return rampart


def objects(rampart, *args) -> dict:
    out = rampart("deploy", "k8s-secrets", *args).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {"text": out, "docs": docs, "by_name": {d["metadata"]["name"]: d for d in docs}}


def decoded(secret: dict) -> dict:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_secrets_round_trip_byte_for_byte_and_keys_stay_in_secrets(home):
    made = objects(home, "--include-ca-key")
    h = home.home
    for d in made["docs"]:
        kubernetes_validate.validate(d, "1.37.0", strict=True)
        assert d["metadata"]["namespace"] == "rampart"
    by = made["by_name"]
    for domain, name in [(DOMAIN, "gateway"), (DOMAIN, "admin"), (DOMAIN, "n1"),
                         ("etcd", "members"), ("etcd", "rampart"), ("etcd", "root")]:
        secret = by[f"rampart-cert-{name}" if domain == DOMAIN else f"rampart-cert-etcd-{name}"]
        assert secret["type"] == "kubernetes.io/tls"
        pki = h / "pki" / domain
        assert decoded(secret) == {
            "tls.crt": (pki / "issued" / f"{name}.pem").read_bytes(),
            "tls.key": (pki / "issued" / f"{name}.key").read_bytes(),
            "ca.crt": (pki / "ca.pem").read_bytes(),
        }
    assert decoded(by["rampart-keyring"]) == {"payload.keys": (h / "keys" / "payload.keys").read_bytes()}
    assert decoded(by["rampart-admin-token"]) == {"admin.token": (h / "admin.token").read_bytes()}
    assert decoded(by["rampart-ca-key"]) == {"ca.key": (h / "pki" / DOMAIN / "ca.key").read_bytes()}
    config = by["rampart-config"]
    assert config["kind"] == "ConfigMap"
    assert config["data"]["crl.pem"] == (h / "pki" / DOMAIN / "crl.pem").read_text()
    assert config["data"]["domain"] == DOMAIN
    pods = tomllib.loads(config["data"]["rampart.toml"])
    assert pods["gateway"]["listen"] == "0.0.0.0:8443"
    assert pods["store"]["etcd"]["prefix"] == f"/rampart/{DOMAIN}/"
    assert pods["store"]["etcd"]["endpoints"] == [f"https://{n}:2379" for n in MEMBER_NAMES]

    # Private material: every key, the keyring's keys, the admin token.
    secrets = [p.read_text().strip() for p in h.rglob("*.key")]
    secrets += [line for line in (h / "keys" / "payload.keys").read_text().split() if not line.startswith("#")]
    secrets.append((h / "admin.token").read_text().strip())
    assert len(secrets) >= 9
    # Outside the Secrets' data, none of it, nor any PEM private key.
    outside = "\n".join(yaml.safe_dump(d) for d in made["docs"] if d["kind"] != "Secret")
    outside += "\n".join(yaml.safe_dump({**d, "data": None}) for d in made["docs"] if d["kind"] == "Secret")
    for s in secrets:
        assert s not in outside and s not in made["text"]  # in the Secrets only base64-encoded
    assert "PRIVATE KEY" not in outside and "PRIVATE KEY" not in made["text"]
    # Nothing in the repository's deployment files either.
    for f in (ROOT / "deploy").rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert "PRIVATE KEY-----" not in text and not re.search(r"rpt_[0-9a-f]{16}_", text), f

    # Without --include-ca-key, the CA key stays in the home.
    assert "rampart-ca-key" not in objects(home)["by_name"]


def test_bad_requests_get_clear_errors(home, rampart_bin):
    bad = home("deploy", "k8s-secrets", "--namespace", "Not_A_Namespace", check=False)
    assert bad.returncode != 0 and "--namespace" in bad.stderr
    bad = home("deploy", "k8s-secrets", "--etcd-endpoints", "http://10.0.0.1:2379", check=False)
    assert bad.returncode != 0 and "https://" in bad.stderr
    bad = home("deploy", "k8s-secrets", "--etcd-user", "nobody", check=False)
    assert bad.returncode != 0 and "rampart pki issue --domain etcd" in bad.stderr
    bad = home("deploy", "unpack", "--name", "gateway", "--from", str(home.home / "nowhere"), check=False)
    assert bad.returncode != 0 and "is the Secret mounted?" in bad.stderr
    # A configuration that names an etcd file outside the home is refused, nothing written there.
    made = objects(home)
    mounts = Mounts(made["by_name"], home.home.parent)
    run = mounts.mount(home.home.parent / "evil", cert="rampart-cert-gateway", etcd="rampart-cert-etcd-rampart")
    (run / "config").mkdir()
    toml = made["by_name"]["rampart-config"]["data"]["rampart.toml"]
    outside = home.home.parent / "outside.key"
    (run / "config" / "rampart.toml").write_text(toml.replace('key = "etcd/client.key"', f'key = "{outside}"'))
    pod = home.home.parent / "evil-home"
    bad = subprocess.run([str(rampart_bin), "--home", str(pod), "deploy", "unpack", "--name", "gateway",
                          "--from", str(run)], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "inside the home" in bad.stderr, bad.stderr
    assert not outside.exists()


class Mounts:
    """Secrets and ConfigMaps as the kubelet mounts them: one file per key, read-only."""

    def __init__(self, objects: dict, root: Path):
        self.by, self.root = objects, root

    def mount(self, into: Path, **volumes: str) -> Path:
        for subdir, name in volumes.items():
            obj = self.by[name]
            d = into / subdir
            d.mkdir(parents=True)
            for key, value in obj["data"].items():
                f = d / key
                f.write_bytes(base64.b64decode(value) if obj["kind"] == "Secret" else value.encode())
                f.chmod(0o440)
        return into


def test_the_pods_run_from_their_secrets(home, rampart_bin, tmp_path):
    client_port, peer_port, metrics_port = free_port(), free_port(), free_port()
    made = objects(home, "--etcd-endpoints", f"https://127.0.0.1:{client_port}")
    mounts = Mounts(made["by_name"], tmp_path)
    procs: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if k != "RAMPART_HOME"} | {"RUST_BACKTRACE": "0"}
    try:
        # etcd, with the StatefulSet's flags: its TLS and client-certificate settings as they
        # are, the addresses of a single member on 127.0.0.1.
        tls = mounts.mount(tmp_path / "etcd-tls", tls="rampart-cert-etcd-members") / "tls"
        (statefulset,) = [d for d in manifest("etcd.yaml") if d["kind"] == "StatefulSet"]
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        local = {
            "--data-dir": str(tmp_path / "etcd-data"),
            "--listen-client-urls": f"https://127.0.0.1:{client_port}",
            "--advertise-client-urls": f"https://127.0.0.1:{client_port}",
            "--listen-peer-urls": f"https://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls": f"https://127.0.0.1:{peer_port}",
            "--initial-cluster": f"m0=https://127.0.0.1:{peer_port}",
            "--listen-metrics-urls": f"http://127.0.0.1:{metrics_port}",
        }
        cmd = []
        for arg in container["command"]:
            flag, _, value = arg.partition("=")
            value = local.get(flag, value).replace("/etc/etcd/tls", str(tls))
            cmd.append(f"{flag}={expand(value, {'POD_NAME': 'm0', 'POD_NAMESPACE': 'rampart'})}" if value else flag)
        assert "--client-cert-auth=true" in cmd and f"--cert-file={tls}/tls.crt" in cmd
        etcd = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(etcd)
        probe = container["readinessProbe"]["httpGet"]["path"]
        poll(lambda: requests.get(f"http://127.0.0.1:{metrics_port}{probe}", timeout=1).ok, "etcd ready")

        # The auth Job: its steps in order, with its ConfigMap's settings and root's Secret.
        root = mounts.mount(tmp_path / "job", etcd="rampart-cert-etcd-root") / "etcd"
        job, settings = manifest("etcd-auth-job.yaml")
        spec = job["spec"]["template"]["spec"]
        etcdctl_env = {k: v.replace("/run/etcd", str(root)) for k, v in settings["data"].items()}
        etcdctl_env["ETCDCTL_ENDPOINTS"] = f"https://127.0.0.1:{client_port}"
        variables = {"RAMPART_DOMAIN": made["by_name"]["rampart-config"]["data"]["domain"]}
        for step in spec["initContainers"] + spec["containers"]:
            args = [expand(a, variables) for a in step["args"]]
            run = subprocess.run(step["command"] + args, env={**env, **etcdctl_env},
                                 capture_output=True, text=True, timeout=30)
            assert run.returncode == 0, f"{step['name']}: {run.stderr}"
        # The gateways' user: its prefix and nothing else.
        client = mounts.mount(tmp_path / "client", etcd="rampart-cert-etcd-rampart") / "etcd"
        as_rampart = {**etcdctl_env, "ETCDCTL_CERT": str(client / "tls.crt"), "ETCDCTL_KEY": str(client / "tls.key")}
        outside = subprocess.run(["etcdctl", "put", "/elsewhere", "x"], env={**env, **as_rampart},
                                 capture_output=True, text=True, timeout=30)
        assert outside.returncode != 0 and "permission denied" in outside.stderr

        def pod(name: str, cert: str, **extra: str) -> Path:
            pod_home = tmp_path / name / "home"
            mounted = mounts.mount(tmp_path / name / "run", config="rampart-config", cert=cert, **extra)
            unpack = subprocess.run([str(rampart_bin), "--home", str(pod_home), "deploy", "unpack",
                                     "--name", cert.removeprefix("rampart-cert-"), "--from", str(mounted)],
                                    env=env, capture_output=True, text=True, timeout=30)
            assert unpack.returncode == 0, unpack.stderr
            key = next((pod_home / "pki" / DOMAIN / "issued").glob("*.key"))
            assert key.stat().st_mode & 0o777 == 0o600
            return pod_home

        def start(pod_home: Path, *args: str, ready: str) -> str:
            p = subprocess.Popen([str(rampart_bin), "--home", str(pod_home), *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, env=env)
            procs.append(p)
            return wait_line(p, ready)

        urls = []
        for g in ("g1", "g2"):
            gateway_home = pod(g, "rampart-cert-gateway", etcd="rampart-cert-etcd-rampart")
            assert not (gateway_home / "keys" / "payload.keys").exists()  # gateways do not read payloads
            line = start(gateway_home, "gateway", "--name", g, "--listen", "127.0.0.1:0",
                         ready="rampart gateway listening on ")
            urls.append(line.split()[4])

        # The node and its app on loopback (the sidecar).
        site = tmp_path / "site"
        site.mkdir()
        (site / "index.html").write_text("served by the app behind n1\n")
        app_port = free_port()
        procs.append(subprocess.Popen(["python3", "-m", "http.server", str(app_port), "--bind", "127.0.0.1",
                                       "--directory", str(site)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        poll(lambda: requests.get(f"http://127.0.0.1:{app_port}/", timeout=1).ok, "the app up")
        node_home = pod("n1", "rampart-cert-n1", keyring="rampart-keyring")
        health = free_port()
        start(node_home, "node", "--name", "n1", "--listen", "127.0.0.1:0", "--gateway", urls[0],
              "--upstream", f"app=http://127.0.0.1:{app_port}", "--health-listen", f"127.0.0.1:{health}",
              ready="rampart node n1 ")
        assert requests.get(f"http://127.0.0.1:{health}/_rampart/health", timeout=5).status_code == 200

        # A served request, through either gateway (they share the registry in etcd).
        for url in urls:
            def served(url=url):
                call = home("call", f"{url}/app/index.html", check=False)
                return call.returncode == 0 and call.stdout == "served by the app behind n1\n"
            poll(served, f"the app served through {url}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def poll(check, what: str, limit: float = 20.0):
    """Polls `check` until it holds (errors count as not yet), bounded."""
    import time

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    pytest.fail(f"never: {what}")

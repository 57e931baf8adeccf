"""A passthrough route with outside clients: Python's `ssl` sees the node's certificate through
the gateway, `requests` calls the route by its name with a token and with a client certificate
(the node sees who), and a request for another Host on the same connection gets 421."""

import socket
import ssl

import pytest
import requests
from requests.adapters import HTTPAdapter

from procs import Started

NAME = "echo.example.test"


class ByName(HTTPAdapter):
    """Dials the address in the URL, and asks for (and checks) `name` in TLS: a host that no
    resolver here knows."""

    def __init__(self, name: str):
        self.name = name
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = self.name
        kwargs["assert_hostname"] = self.name
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture
def route(rampart):
    """A gateway with the passthrough route `echo` by NAME, and a node serving it."""
    rampart("init")
    with open(rampart.home / "rampart.toml", "a") as f:
        f.write(f'\n[routes.echo]\nmode = "passthrough"\nsni = ["{NAME}"]\n')
    rampart("pki", "issue", "--role", "node", "--name", "n1", "--dns", NAME)
    started = Started(rampart.argv)
    start = started.start

    url = start("gateway", "--listen", "127.0.0.1:0", prefix="rampart gateway listening on ").split()[4]
    start("node", "--name", "n1", "--listen", "127.0.0.1:0", "--gateway", url, "--service", "echo",
          "--public-listen", "127.0.0.1:0", prefix="rampart node ")
    rampart("user", "add", "alice", "--no-password")
    token = rampart("token", "issue", "--user", "alice").stdout.strip()
    rampart("pki", "issue", "--role", "user", "--name", "carol")
    for who in ("user/alice", "user/carol"):
        rampart("policy", "allow", "--service", "echo", "--principal", who)
    pki = rampart.home / "pki" / "local"
    session = requests.Session()
    session.mount("https://127.0.0.1:", ByName(NAME))
    yield {"url": url, "ca": str(pki / "ca.pem"), "token": token, "session": session,
           "cert": (str(pki / "issued" / "carol.pem"), str(pki / "issued" / "carol.key"))}
    started.stop()


def test_the_client_sees_the_nodes_certificate_and_the_node_sees_the_caller(route):
    host, port = route["url"].removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=route["ca"])
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=NAME) as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])
    assert subject["commonName"] == "n1"

    s, url = route["session"], route["url"]
    by_token = s.get(f"{url}/hi?x=1", headers={"Host": NAME, "Authorization": f"Bearer {route['token']}"},
                     verify=route["ca"], timeout=10)
    assert by_token.status_code == 200, by_token.text
    assert by_token.json()["principal"] == "user/alice"
    assert by_token.json()["path"] == "/hi"
    by_cert = s.get(f"{url}/", headers={"Host": NAME}, cert=route["cert"], verify=route["ca"], timeout=10)
    assert by_cert.status_code == 200, by_cert.text
    assert by_cert.json()["principal"] == "spiffe://local/user/carol"
    nobody = s.get(f"{url}/", headers={"Host": NAME}, verify=route["ca"], timeout=10)
    assert nobody.status_code == 401


def test_another_host_on_the_routes_connection_is_misdirected(route):
    s, url = route["session"], route["url"]
    other = s.get(f"{url}/", headers={"Host": "other.example.test", "Authorization": f"Bearer {route['token']}"},
                  verify=route["ca"], timeout=10)
    assert other.status_code == 421
    assert "other.example.test" in other.json()["reason"]

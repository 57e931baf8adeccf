#!/usr/bin/env python3
"""A rampart client in Python, with `requests` and `cryptography` only.

It authenticates with a user certificate (mutual TLS) or a bearer token, verifies the gateway
against the network's CA, seals each record in a Fernet envelope (so the gateway routes what
it cannot read), POSTs them to the `data` service, then reads them back sorted both ways.

    # as a certificate holder
    python3 client.py --gateway https://127.0.0.1:8443 --ca HOME/pki/local/ca.pem \\
        --cert HOME/pki/local/issued/alice.pem --key HOME/pki/local/issued/alice.key \\
        --keyring HOME/keys/payload.keys --record '{"name": "ada", "age": 36}' --by age

    # as a token holder, with the newest key from `rampart keys export-key`
    python3 client.py --gateway https://127.0.0.1:8443 --ca ca.pem --token rpt_... \\
        --fernet-key "$(rampart keys export-key)" --record '{"name": "alan"}' --by name

Give --gateway several times (or comma-separated) for a network with several gateways: the
client uses the first that answers and moves on when one cannot be reached. Each POST carries
an Idempotency-Key, so a write whose answer was lost is sent again without being stored twice.

It prints one JSON object: the ids of the records it posted and the records sorted ascending
and descending. Exit status 0 on success, 1 on any refusal (with the gateway's reason).
"""

import argparse
import json
import sys
import uuid

import requests
from cryptography.fernet import Fernet, MultiFernet

FERNET = "application/fernet"


def load_keys(args) -> MultiFernet:
    """The payload keyring: newest key first, as MultiFernet wants (the file lists it last)."""
    if args.fernet_key:
        keys = [args.fernet_key]
    else:
        with open(args.keyring, encoding="ascii") as f:
            lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        keys = list(reversed(lines))
    return MultiFernet([Fernet(k) for k in keys])


def session(args) -> requests.Session:
    s = requests.Session()
    # Ignore REQUESTS_CA_BUNDLE and proxy variables: requests lets them override s.verify.
    s.trust_env = False
    s.verify = args.ca  # the network's own CA, never the system store, never verify=False
    if args.token:
        s.headers["Authorization"] = f"Bearer {args.token}"
    else:
        s.cert = (args.cert, args.key)
    return s


def check(resp: requests.Response) -> requests.Response:
    if not resp.ok:
        sys.exit(f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text}")
    return resp


class Gateways:
    """The network's gateways, tried in turn: the one that answered last is used first."""

    def __init__(self, session: requests.Session, urls: list[str]):
        self.session, self.urls = session, [u.rstrip("/") for u in urls]

    def request(self, method: str, path: str, **kw) -> requests.Response:
        failures = []
        for _ in range(len(self.urls)):
            url = self.urls[0]
            try:
                return self.session.request(method, url + path, timeout=30, **kw)
            except requests.ConnectionError as e:  # also a lost answer: only keyed or idempotent requests come here
                failures.append(f"{url}: {e.__class__.__name__}")
                self.urls.append(self.urls.pop(0))
        sys.exit(f"{method} {path}: no gateway answered ({'; '.join(failures)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway", required=True, action="append",
                   help="https://HOST:PORT of a rampart gateway (repeatable, or comma-separated)")
    p.add_argument("--ca", required=True, help="the network's CA certificate (pki/<domain>/ca.pem)")
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help="an API token (rampart token issue)")
    auth.add_argument("--cert", help="a user certificate (rampart pki issue --role user)")
    p.add_argument("--key", help="the certificate's private key")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--keyring", help="keys/payload.keys of the network")
    keys.add_argument("--fernet-key", help="one payload key (rampart keys export-key)")
    p.add_argument("--record", action="append", default=[], help="a JSON object to store (repeatable)")
    p.add_argument("--by", default="name", help="field to sort by")
    args = p.parse_args()
    if args.cert and not args.key:
        p.error("--cert needs --key")

    fernet = load_keys(args)
    s = session(args)
    gateways = Gateways(s, [u for g in args.gateway for u in g.split(",") if u])
    sealed = {"Content-Type": FERNET, "Accept": FERNET}

    posted = []
    for text in args.record:
        record = json.loads(text)
        token = fernet.encrypt(json.dumps(record).encode())
        keyed = {**sealed, "Idempotency-Key": str(uuid.uuid4())}
        resp = check(gateways.request("POST", "/data", data=token, headers=keyed))
        answer = json.loads(fernet.decrypt(resp.content, ttl=300))
        posted.append(answer["id"])

    sorted_records = {}
    for order in ("asc", "desc"):
        params = {"sort": order, "by": args.by}
        resp = check(gateways.request("GET", "/data", params=params, headers={"Accept": FERNET}))
        sorted_records[order] = json.loads(fernet.decrypt(resp.content, ttl=300))

    print(json.dumps({"posted": posted, "asc": sorted_records["asc"], "desc": sorted_records["desc"]}))


if __name__ == "__main__":
    main()

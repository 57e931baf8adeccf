"""A long soak under chaos: a three-member etcd cluster, two gateways and three nodes of the
release binary on 127.0.0.1, a steady load of GET /hello and keyed POST /data through both
gateways, and all along a node SIGKILLed (and started again) every NODE_EVERY seconds, a
gateway every GATEWAY_EVERY seconds, and one etcd member once, halfway.

    python3 benches/soak.py BIN WORKDIR MINUTES NODE_EVERY GATEWAY_EVERY   (scripts/soak runs it)

It reports the failed requests (a request fails when neither gateway answered it within 20 s,
or answered it with an error), the acknowledged writes against those stored at the end, and
each process's resident memory a minute after it started and at its end; it writes soak.csv (one row a
second) and soak.svg (requests/s, failures and memory over time) into WORKDIR.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import requests

CLIENTS = 4
# A process's memory is compared from this long after it started (its pools and the load on
# it settled) to its end.
WARM_UP = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """The network's processes by name, each started again after it is killed."""

    def __init__(self, bin_path: str, work: str):
        self.bin, self.work = bin_path, work
        self.home = os.path.join(work, "home")
        self.running: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}
        self.lives: list[dict] = []  # one per process started: name, pid, rss at warm-up and end
        self.lock = threading.Lock()

    def start(self, name: str, argv: list[str], ready: str | None, env: dict | None = None) -> None:
        self.commands[name] = argv
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env)
        if ready is not None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = p.stdout.readline().decode()
                if ready in line:
                    break
                if not line and p.poll() is not None:
                    raise SystemExit(f"{name} exited before it was ready; see {name}.log")
            threading.Thread(target=p.stdout.read, daemon=True).start()  # drain
        with self.lock:
            self.running[name] = p
            self.lives.append({"name": name, "pid": p.pid, "started": time.monotonic(), "warm": None, "end": None})

    def kill(self, name: str) -> None:
        with self.lock:
            p = self.running.pop(name)
            life = next(l for l in reversed(self.lives) if l["pid"] == p.pid)
            life["end"] = rss_kib(p.pid)
            life["ended"] = time.monotonic()
        p.send_signal(signal.SIGKILL)
        p.wait()

    def restart(self, name: str, ready: str | None) -> None:
        self.start(name, self.commands[name], ready)

    def sample(self) -> dict[str, int]:
        """Each running process's resident memory now (KiB); records warm-up figures."""
        out = {}
        now = time.monotonic()
        with self.lock:
            for name, p in self.running.items():
                kib = rss_kib(p.pid)
                out[name] = kib
                life = next(l for l in reversed(self.lives) if l["pid"] == p.pid)
                if life["warm"] is None and now - life["started"] > WARM_UP:
                    life["warm"] = kib
                life["last"] = kib
        return out

    def stop_all(self) -> None:
        with self.lock:
            for name, p in self.running.items():
                life = next(l for l in reversed(self.lives) if l["pid"] == p.pid)
                life["end"] = life.get("last")
                life["ended"] = time.monotonic()
                p.send_signal(signal.SIGKILL)
                p.wait()
            self.running.clear()


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed: list[str] = []
        self.acked: set[str] = set()


def client(n: int, urls: list[str], tls: dict, stop: threading.Event, tally: Tally) -> None:
    """GET /hello and keyed POST /data in turn; a request is tried at one gateway, then the
    other, until one answers or 20 s pass (a keyed POST sent again is a retry, not a second
    write)."""
    session = requests.Session()
    order = urls[n % 2:] + urls[:n % 2]
    i = 0
    while not stop.is_set():
        i += 1
        post = i % 2 == 0
        key = f"c{n}-r{i}"
        deadline = time.monotonic() + 20
        error = None
        while time.monotonic() < deadline:
            for url in order:
                try:
                    if post:
                        r = session.post(f"{url}/data", json={"c": n, "i": i}, headers={"Idempotency-Key": key},
                                         timeout=5, **tls)
                    else:
                        r = session.get(f"{url}/hello", timeout=5, **tls)
                except requests.RequestException as e:
                    error = f"{url}: {type(e).__name__}"
                    continue
                if r.status_code == 200:
                    with tally.lock:
                        tally.ok += 1
                        if post:
                            tally.acked.add(r.json()["id"])
                    error = None
                    break
                error = f"{url}: {r.status_code} {r.text[:120]}"
                if r.status_code < 500:
                    break  # a refusal, not an outage: trying elsewhere would not change it
            else:
                time.sleep(0.05)  # both gateways out of reach: wait for one to come back
                continue
            break
        if error is not None:
            with tally.lock:
                tally.failed.append(error)


def etcd_prefix(home: str) -> str:
    """The etcd prefix `rampart init` chose (`prefix = "…"` in rampart.toml)."""
    with open(os.path.join(home, "rampart.toml")) as f:
        return next(line.split('"')[1] for line in f if line.startswith("prefix = "))


def stored_ids(endpoints: str, prefix: str) -> set[str]:
    """The ids of the records in etcd itself, read by etcdctl (keys only): the store as an outside
    witness, not the data service's listing of every record in one answer."""
    records = prefix + "services/data/records/"
    done = subprocess.run(["etcdctl", f"--endpoints={endpoints}", "--command-timeout=60s", "get", "--prefix",
                           "--keys-only", records], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"etcdctl could not list the records: {done.stderr.strip()}")
    return {line[len(records):] for line in done.stdout.splitlines() if line.startswith(records)}


def main() -> None:
    bin_path, work, minutes = sys.argv[1], sys.argv[2], float(sys.argv[3])
    node_every, gateway_every = float(sys.argv[4]), float(sys.argv[5])
    procs = Procs(bin_path, work)
    # etcd: three members.
    ports = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(ports))
    for i, (c, p) in enumerate(ports):
        procs.start(f"etcd{i}", [
            "etcd", f"--name=e{i}", f"--data-dir={work}/etcd{i}", f"--listen-client-urls=http://127.0.0.1:{c}",
            f"--advertise-client-urls=http://127.0.0.1:{c}", f"--listen-peer-urls=http://127.0.0.1:{p}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p}", f"--initial-cluster={initial}",
            "--initial-cluster-state=new", "--initial-cluster-token=rampart-soak", "--log-level=warn",
            "--heartbeat-interval=50", "--election-timeout=500"], None)
    store = "etcd://" + ",".join(f"127.0.0.1:{c}" for c, _ in ports)
    home = procs.home
    deadline = time.monotonic() + 30
    while True:  # the members elect a leader first
        done = subprocess.run([bin_path, "--home", home, "init", "--store", store], capture_output=True, text=True)
        if done.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"rampart init never reached etcd: {done.stderr}")
        time.sleep(0.2)
    os.environ["RAMPART_LOG"] = "warn"
    gw_ports = [free_port(), free_port()]
    urls = [f"https://127.0.0.1:{p}" for p in gw_ports]
    for i, port in enumerate(gw_ports):
        procs.start(f"g{i + 1}", [bin_path, "--home", home, "gateway", "--name", f"g{i + 1}", "--listen",
                                  f"127.0.0.1:{port}"], "rampart gateway listening on ")
    for i in range(3):
        order = urls[i % 2:] + urls[:i % 2]
        procs.start(f"n{i + 1}", [bin_path, "--home", home, "node", "--name", f"n{i + 1}", "--listen", "127.0.0.1:0",
                                  "--gateway", ",".join(order), "--service", "hello", "--service", "data"],
                    "rampart node ")
    pki = os.path.join(home, "pki", "local")
    tls = {"verify": os.path.join(pki, "ca.pem"),
           "cert": (os.path.join(pki, "issued", "admin.pem"), os.path.join(pki, "issued", "admin.key"))}
    deadline = time.monotonic() + 30
    while requests.get(f"{urls[1]}/hello", timeout=5, **tls).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("the network never served /hello")
        time.sleep(0.1)

    stop, tally = threading.Event(), Tally()
    threads = [threading.Thread(target=client, args=(n, urls, tls, stop, tally)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    rows, start = [], time.monotonic()
    length = minutes * 60
    next_node, next_gateway, etcd_at = node_every, gateway_every, length / 2
    node_turn, gateway_turn, etcd_done = 0, 0, False
    last_ok, last_failed = 0, 0
    kills: list[tuple[float, str]] = []
    with open(os.path.join(work, "soak.log"), "w") as log:
        def say(text: str) -> None:
            line = f"{time.monotonic() - start:7.1f}s  {text}"
            if text.startswith("SIGKILL"):
                kills.append((time.monotonic() - start, text.split()[1].rstrip(",")))
            print(line, flush=True)
            log.write(line + "\n")

        def kill_and_restart(name: str, ready: str | None) -> None:
            say(f"SIGKILL {name}, started again")
            procs.kill(name)
            procs.restart(name, ready)

        while time.monotonic() - start < length:
            time.sleep(1)  # one row a second
            t = time.monotonic() - start
            rss = procs.sample()
            with tally.lock:
                ok, failed = tally.ok, len(tally.failed)
            rows.append({"t": round(t, 1), "ok_per_s": ok - last_ok, "failed": failed - last_failed,
                         **{f"rss_{k}_kib": v for k, v in sorted(rss.items())}})
            last_ok, last_failed = ok, failed
            calm = t > length - 30  # no kill in the last 30 s: the end is read from a settled network
            if t >= next_node and not calm:
                kill_and_restart(f"n{node_turn % 3 + 1}", "rampart node ")
                node_turn, next_node = node_turn + 1, next_node + node_every
            if t >= next_gateway and not calm:
                kill_and_restart(f"g{gateway_turn % 2 + 1}", "rampart gateway listening on ")
                gateway_turn, next_gateway = gateway_turn + 1, next_gateway + gateway_every
            if not etcd_done and t >= etcd_at:
                kill_and_restart("etcd0", None)
                etcd_done = True
            if int(t) % 60 == 0:
                say(f"{ok} requests served, {failed} failed")
        stop.set()
        for th in threads:
            th.join()
        procs.sample()  # the end of each life, before the listing below (a large answer)
        try:
            stored = stored_ids(store.removeprefix("etcd://"), etcd_prefix(home))
        finally:
            procs.stop_all()  # even when the listing fails: no process outlives the soak
        acked = tally.acked

        say(f"requests: {tally.ok} served, {len(tally.failed)} failed")
        for f in tally.failed[:5]:
            say(f"  failed: {f}")
        say(f"writes: {len(acked)} acknowledged, {len(stored)} stored, "
            f"{len(acked - stored)} acknowledged but missing, {len(stored - acked)} stored unacknowledged")
        say(f"resident memory, {WARM_UP} s after each process started and at its end (KiB):")
        longest: dict[str, dict] = {}
        for life in procs.lives:
            life["lived"] = life.get("ended", time.monotonic()) - life["started"]
            kind = life["name"]
            if life["warm"] and (kind not in longest or life["lived"] > longest[kind]["lived"]):
                longest[kind] = life
        worst = 0.0
        for kind, life in sorted(longest.items()):
            warm, end = life["warm"], life.get("end") or life.get("last") or 0
            growth = (end - warm) / warm * 100 if warm else 0.0
            worst = max(worst, growth) if not kind.startswith("etcd") else worst
            say(f"  {kind:6} (longest-lived of its name, {life['lived']:.0f} s): {warm} -> {end} ({growth:+.1f} %)")
        say(f"largest growth of a rampart process: {worst:+.1f} %")

    keys = sorted({k for r in rows for k in r})
    with open(os.path.join(work, "soak.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    write_svg(os.path.join(work, "soak.svg"), rows, kills)
    summary = {"served": tally.ok, "failed": len(tally.failed), "acknowledged": len(acked), "stored": len(stored),
               "missing": len(acked - stored), "largest_growth_percent": round(worst, 1)}
    print(json.dumps(summary))
    if tally.failed or acked - stored:
        sys.exit(1)


def write_svg(path: str, rows: list[dict], kills: list[tuple[float, str]]) -> None:
    """Three panels over time: requests served a second (each SIGKILL a grey line), failures,
    each rampart process's memory (etcd's is its own, in the report)."""
    width, panel, left = 900, 170, 60
    t_max = max((r["t"] for r in rows), default=1) or 1
    series_rss = sorted({k for r in rows for k in r if k.startswith("rss_") and not k.startswith("rss_etcd")})
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{3 * panel + 80}" '
             'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']

    def plot(top: int, title: str, lines: list[tuple[str, list[tuple[float, float]], str]], unit: str) -> None:
        y_max = max((v for _, pts, _ in lines for _, v in pts), default=1) or 1
        h = panel - 40
        parts.append(f'<text x="{left}" y="{top + 12}" font-weight="bold">{title}</text>')
        parts.append(f'<line x1="{left}" y1="{top + 20 + h}" x2="{width - 20}" y2="{top + 20 + h}" stroke="#999"/>')
        parts.append(f'<text x="{left - 5}" y="{top + 24}" text-anchor="end">{y_max:.0f}{unit}</text>')
        parts.append(f'<text x="{left - 5}" y="{top + 20 + h}" text-anchor="end">0</text>')
        if top == 10:
            for t, who in kills:
                x = left + t / t_max * (width - left - 20)
                parts.append(f'<line x1="{x:.1f}" y1="{top + 20}" x2="{x:.1f}" y2="{top + 20 + h}" stroke="#ccc"/>')
                parts.append(f'<text x="{x:.1f}" y="{top + 30 + h}" fill="#999" font-size="9" '
                             f'text-anchor="middle">{who}</text>')
        for i, (label, pts, colour) in enumerate(lines):
            d = " ".join(f"{left + x / t_max * (width - left - 20):.1f},{top + 20 + h - v / y_max * h:.1f}"
                         for x, v in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{d}"/>')
            parts.append(f'<text x="{width - 20 - 90 * (i + 1) + 90}" y="{top + 12}" fill="{colour}" '
                         f'text-anchor="end">{label}</text>')

    plot(10, "requests served a second", [("served/s", [(r["t"], r["ok_per_s"]) for r in rows], colours[0])], "")
    plot(10 + panel, "failed requests a second",
         [("failed/s", [(r["t"], r["failed"]) for r in rows], colours[3])], "")
    plot(10 + 2 * panel, "resident memory (MiB)",
         [(k[4:-4], [(r["t"], r.get(k, 0) / 1024) for r in rows if k in r], colours[i % len(colours)])
          for i, k in enumerate(series_rss)], " MiB")
    parts.append(f'<text x="{left}" y="{3 * panel + 45}" text-anchor="middle">0</text>')
    parts.append(f'<text x="{width - 20}" y="{3 * panel + 45}" text-anchor="middle">{t_max:.0f}</text>')
    parts.append(f'<text x="{width // 2}" y="{3 * panel + 60}" text-anchor="middle">seconds</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


if __name__ == "__main__":
    main()

"""Starting real processes and waiting for them, bounded and without sleeps."""

import os
import select
import subprocess
import time

import pytest


def wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 30.0) -> str:
    """The first stdout line starting with `prefix` (bounded wait, no sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    proc.kill()
    pytest.fail(f"{proc.args} never printed {prefix!r}")


class Started:
    """The long-running processes of one test (`argv` then each one's arguments), each waited
    for by its ready line, killed at the end."""

    def __init__(self, argv):
        self.argv = argv
        self.procs = []

    def start(self, *args, prefix):
        """Starts `argv + args` and returns its first stdout line starting with `prefix`."""
        p = subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
        self.procs.append(p)
        return wait_line(p, prefix)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()

"""Starting real processes and waiting for them, bounded and without sleeps."""

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

"""Shared fixtures: the rampart binary, and a fresh network home per test."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def rampart_bin() -> Path:
    path = Path(os.environ.get("RAMPART_BIN", ROOT / "target" / "debug" / "rampart"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it with `cargo build` (scripts/test does)")
    return path


@pytest.fixture
def rampart(rampart_bin, tmp_path):
    """Runs `rampart --home <tmp>/home ARGS...`, failing the test on a non-zero exit."""
    home = tmp_path / "home"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RAMPART_HOME"}
        proc = subprocess.run(
            [str(rampart_bin), "--home", str(home), *args],
            capture_output=True, text=True, timeout=60, env=env,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"rampart {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    run.home = home
    run.argv = [str(rampart_bin), "--home", str(home)]
    return run

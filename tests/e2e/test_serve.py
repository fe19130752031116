"""`vllm-launch serve` against the real vLLM CPU build: ready, supervise, stop, diagnose real failures."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

import psutil
import pytest
from conftest import (
    API_KEY,
    TINY,
    assert_no_leftovers,
    launcher_env,
    server_processes,
    start_launcher,
    start_vllm,
    stop,
    vllm_overriding,
)

pytestmark = pytest.mark.e2e


def get(url: str, key: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_means_answering_with_the_planned_context(served):
    launch, info = served
    assert info["max_model_len"] == 512 and info["model"] == "tiny"
    # tiny model: 512 B/token, CPU block 128 -> 64 KiB/block; 64 MiB -> 1024 blocks -> 131,072 tokens, as planned.
    assert info["kv_cache_tokens"] == info["planned_kv_cache_tokens"] == 131072
    status, body = get(info["url"] + "/v1/models", API_KEY)
    assert status == 200 and json.loads(body)["data"][0]["max_model_len"] == 512
    assert "READY in" in launch.output()


def test_api_key_is_never_on_a_command_line(served, tiny_model):
    launch, info = served
    assert get(info["url"] + "/v1/models")[0] == 401  # the key reached vLLM through its environment
    processes = server_processes(launch)
    assert any(p.name().startswith("VLLM::") for p in processes)
    for p in [*processes, psutil.Process(launch.proc.pid)]:
        assert API_KEY not in " ".join(p.cmdline())
    assert API_KEY not in launch.output() and API_KEY not in launch.log.read_text()


def test_sigint_during_startup_leaves_nothing(vllm_venv, tiny_model, tmp_path):
    launch = start_vllm(vllm_venv, tiny_model, tmp_path, *TINY, "--enforce-eager")
    deadline = time.monotonic() + 60
    while "starting engine" not in launch.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "starting engine" in launch.output(), launch.output()[-2000:]
    stop(launch, signal.SIGINT)
    assert_no_leftovers(launch)
    assert "no process of it is left" in launch.output()


def test_launcher_killed_takes_vllm_with_it(vllm_venv, tiny_model, tmp_path):
    launch = start_vllm(vllm_venv, tiny_model, tmp_path, *TINY, "--enforce-eager")
    deadline = time.monotonic() + 60
    while "loading weights" not in launch.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(server_processes(launch)) >= 2
    launch.proc.kill()
    launch.proc.wait()
    assert_no_leftovers(launch, within=20)


def test_kv_cache_too_small_is_explained_with_a_working_length(vllm_venv, tiny_model, tmp_path):
    # vLLM runs with a smaller KV cache than planned (the wrapper overrides it): vLLM really fails, the launcher explains.
    overriding = vllm_overriding(vllm_venv, tmp_path, "--kv-cache-memory-bytes", "131072")
    launch = start_vllm(vllm_venv, tiny_model, tmp_path, *TINY, "--enforce-eager", vllm=overriding)
    rc = launch.wait_exit(180)
    out = launch.output()
    assert rc != 0
    assert "FAILED: the KV cache cannot hold one 512-token request" in out
    assert "--max-model-len 128" in out and "try: vllm-launch" in out
    assert_no_leftovers(launch)


def test_context_above_model_limit_is_explained(vllm_venv, tiny_model, tmp_path):
    overriding = vllm_overriding(vllm_venv, tmp_path, "--max-model-len", "4096")
    launch = start_vllm(vllm_venv, tiny_model, tmp_path, *TINY, "--enforce-eager", vllm=overriding)
    rc = launch.wait_exit(120)
    out = launch.output()
    assert rc != 0 and "above the model's limit (max_position_embeddings=2048)" in out
    assert_no_leftovers(launch)


def test_plan_refuses_before_launch(vllm_venv, tiny_model, tmp_path):
    launch = start_launcher(vllm_venv, tiny_model, tmp_path, "--max-model-len", "4096", "--kv-cache-memory-bytes", "64M")
    assert launch.wait_exit(60) == 1
    assert "nothing was launched" in launch.output() and not launch.log.exists()


def test_port_in_use_refused_early(vllm_venv, tiny_model, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        import subprocess
        import sys

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "launcher",
                "--model",
                str(tiny_model),
                "--vllm",
                str(vllm_venv / "bin" / "vllm"),
                *TINY,
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
            env=launcher_env(vllm_venv),
            timeout=60,
        )
    assert result.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in result.stderr

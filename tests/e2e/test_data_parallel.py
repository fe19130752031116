"""`vllm-launch serve` with a data-parallel layout against the real vLLM CPU build: two engine replicas behind one
endpoint, each with the planned KV cache, ready together and torn down together.

vLLM 0.32's CPU build serves --data-parallel-size 2 on this 2-core machine (measured: two API server processes, a DP
coordinator and EngineCore_DP0/DP1, each logging "CPU KV cache size: 131,072 tokens" for 64 MiB)."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import psutil
import pytest
from conftest import TINY, assert_no_leftovers, server_processes, start_vllm, stop

pytestmark = pytest.mark.e2e


def process_titles(launch) -> list[str]:
    """vLLM's process titles (setproctitle) in the server's session: VLLM::EngineCore_DP0, VLLM::APIServer_1, ..."""
    titles = []
    for p in server_processes(launch):
        try:
            titles.append(p.cmdline()[0] if p.cmdline() else p.name())
        except psutil.Error:  # the process may exit between listing and reading
            continue
    return titles


def complete(url: str) -> dict:
    body = json.dumps({"model": "tiny", "prompt": "hello", "max_tokens": 3, "ignore_eos": True}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_data_parallel_replicas_are_ready_and_stopped_together(vllm_venv, tiny_model, tmp_path):
    launch = start_vllm(
        vllm_venv, tiny_model, tmp_path, *TINY, "--data-parallel-size", "2", "--served-model-name", "tiny", "--enforce-eager"
    )
    try:
        info = launch.wait_ready(timeout=600)
        # Each replica holds the planned cache: 64 MiB of 64 KiB blocks = 1,024 blocks = 131,072 tokens, 256 x 512 tokens.
        assert info["kv_cache_tokens"] == info["planned_kv_cache_tokens"] == 131072
        assert info["max_model_len"] == 512
        log = launch.log.read_text()
        for rank in (0, 1):
            assert f"EngineCore_DP{rank}" in log and "CPU KV cache size: 131,072 tokens" in log
        assert log.count("CPU KV cache size: 131,072 tokens") == 2
        titles = process_titles(launch)
        engines = sorted(t for t in titles if t.startswith("VLLM::EngineCore"))
        assert engines == ["VLLM::EngineCore_DP0", "VLLM::EngineCore_DP1"], (launch.vllm_session(), titles)
        assert "--data-parallel-size 2" in launch.output()
        for _ in range(4):
            assert complete(info["url"])["usage"]["completion_tokens"] == 3
    except BaseException:
        stop(launch, signal.SIGKILL)
        raise
    started = time.monotonic()
    assert stop(launch, signal.SIGTERM) == 0, launch.output()[-3000:]
    assert_no_leftovers(launch, within=30)  # both engines, both API servers and the coordinator
    assert time.monotonic() - started < 60

"""End to end: the rendered native multi-node script, unchanged, starts the real vLLM CPU build (0.32.0) on both
nodes of the namespace cluster, and the server answers a completion computed across them.

The layout is TP 2 over 2 nodes (one rank per node). vLLM's default multi-node layout, TP = GPUs per node and
PP = nodes, is what the other multi-node tests run with the stand-in; the CPU build cannot run it: with
--pipeline-parallel-size 2 (one node or two) vLLM 0.32.0 CPU becomes ready, then its first request kills the
engine (`assert self.intermediate_tensors is not None` in gpu_model_runner.py sync_and_gather_intermediate_tensors,
rank PP1), measured on this machine. Slow (two vLLM starts on 2 cores): marked e2e, not multinode.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cluster import run
from helpers import run_cli
from jobs import Job, assert_nothing_left

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]
MAKE_TINY_MODEL = Path(__file__).resolve().parent.parent / "e2e" / "make_tiny_model.py"
READY_S = 420  # two vLLM CPU ranks starting at once on 2 cores: ~125 s measured with the machine under load


def test_vllm_cpu_serves_a_completion_across_two_nodes(two_nodes, vllm_venv, tmp_path):
    model = tmp_path / "tiny-llama"
    subprocess.run([str(vllm_venv / "bin" / "python"), str(MAKE_TINY_MODEL), str(model), "2048"], check=True, capture_output=True)
    script = tmp_path / "vllm.sbatch"
    result = run_cli(
        *("render", "slurm", "--model", str(model), "--served-model-name", "tiny", "--max-model-len", "512"),
        # float16: the CPU workers' bfloat16 attention needs AMX, which this sandbox may not grant (tests/e2e/conftest.py)
        *("--kv-cache-memory-bytes", "64M", "--dtype", "float16", "--enforce-eager", "--device", "cpu"),
        *("--vllm", str(vllm_venv / "bin" / "vllm"), "--vllm-version", "0.32.0"),
        *("--nodes", "2", "--gpus-per-node", "1", "--tensor-parallel-size", "2", "--pipeline-parallel-size", "1"),
        *("--multinode-backend", "native", "--cpus-per-task", "1", "--mem", "4G", "--time", "00:15:00"),
        *("--deadline", str(READY_S), "--grace", "20", "--endpoint-file", str(tmp_path / "endpoint-${SLURM_JOB_ID}.json")),
        *("-o", str(script)),
    )
    assert result.returncode == 0, result.stderr
    env = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache")}
    env["PYTHONUNBUFFERED"] = "1"  # the workers' log lines reach the node logs as they happen
    job = Job(two_nodes, script, READY_S, env)
    endpoint = job.wait_ready()
    assert (endpoint["host"], endpoint["model"], endpoint["max_model_len"]) == ("node1", "tiny", 512)
    # Rank 0 leads from node1 at its routable address; rank 1 runs headless on node2 as tensor-parallel worker 1.
    assert "DP group leader: node_rank=0, node_rank_within_dp=0, master_addr=10.213.77.11, mq_connect_ip=10.213.77.11" in job.log()
    assert "world_size=2, local_world_size=1" in job.log() and "(Worker_TP1 pid=" in job.log("node2")

    request = urllib.request.Request(
        job.url(endpoint, "/v1/completions"),
        data=json.dumps({"model": "tiny", "prompt": "Hello world", "max_tokens": 5, "ignore_eos": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as r:
        completion = json.loads(r.read())
    assert completion["usage"]["completion_tokens"] == 5
    assert completion["system_fingerprint"].startswith("vllm-0.32.0-tp2")  # both ranks took part

    # The time-limit signal: the batch shell stops vLLM on both nodes within --grace, and the job completes.
    assert run(["scancel", "--batch", "--signal=USR1", job.id], two_nodes.env).returncode == 0
    assert two_nodes.wait_end(job.id, 90) == ("COMPLETED", "0:0"), job.output()
    assert_nothing_left(two_nodes, timeout=30)

"""The rendered multi-node scripts, unchanged, on a real two-node Slurm (a namespace cluster, see cluster.py), with
real Ray and a stand-in `vllm` that behaves like vLLM at its edges (vllm_standin.py).

Each test proves one thing a user's queued multi-node job depends on: the job reaches READY and writes the endpoint
file; a node that fails ends the job with a message naming it; scancel and the time-limit signal stop every process
of the job on every node; two jobs on the same nodes each get their own ports and their own Ray cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import model_configs as mc
import pytest
from cluster import SlurmCluster, run, wait_for
from helpers import run_cli, write_model_dir
from jobs import Job, assert_nothing_left, kill_on

pytestmark = pytest.mark.multinode
STANDIN = Path(__file__).resolve().parent / "vllm_standin.py"
READY_S = 180  # the scripts' own deadline: a Ray job is ready in 30-55 s here, two at once on a loaded machine take longer


def render(directory: Path, backend: str, gpus_per_node: int) -> Path:
    directory.mkdir()
    model = write_model_dir(directory / "Llama-3.1-8B-Instruct", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    script = directory / "vllm.sbatch"
    result = run_cli(
        *("render", "slurm", "--model", str(model), "--served-model-name", "llama-8b", "--max-model-len", "8192"),
        *("--gpu", "H100-80GB", "--vllm", str(STANDIN), "--vllm-version", "0.32.0", "--device", "cuda"),
        *("--nodes", "2", "--gpus-per-node", str(gpus_per_node), "--multinode-backend", backend),
        *("--cpus-per-task", "1", "--mem", "1G", "--time", "00:10:00", "--deadline", str(READY_S), "--grace", "5"),
        *("--endpoint-file", str(directory / "endpoint-${SLURM_JOB_ID}.json"), "-o", str(script)),
    )
    assert result.returncode == 0, result.stderr
    return script


def submit(cluster: SlurmCluster, script: Path) -> Job:
    return Job(cluster, script, READY_S)


def assert_ready(job: Job, endpoint: dict) -> None:
    assert endpoint["host"] == "node1" and endpoint["url"] == f"http://node1:{endpoint['port']}/v1"
    assert (endpoint["model"], endpoint["max_model_len"], endpoint["job_id"]) == ("llama-8b", 8192, job.id)
    assert job.get(endpoint, "/health")[0] == 200
    models = json.loads(job.get(endpoint, "/v1/models")[1])["data"][0]
    assert (models["id"], models["max_model_len"]) == ("llama-8b", 8192)
    assert f"READY at http://node1:{endpoint['port']}/v1" in job.output()


def test_ray_job_is_ready_on_two_nodes_and_fails_naming_the_node_whose_ray_worker_dies(two_nodes, tmp_path):
    job = submit(two_nodes, render(tmp_path / "ray", "ray", 2))
    endpoint = job.wait_ready()
    assert_ready(job, endpoint)
    assert "Ray cluster has 2 nodes" in job.output()
    # vLLM's placement: TP 2 x PP 2 = 4 GPU workers over both nodes, each reporting its own (routable) address.
    assert "4 GPU workers on 2 nodes: 10.213.77.11 GPUs 0,1, 10.213.77.12 GPUs 0,1" in job.log()

    kill_on(two_nodes, "node2", "raylet/raylet")
    assert two_nodes.wait_end(job.id) == ("FAILED", "1:0")
    assert "vllm-launch job: node node2 failed: its Ray process exited" in job.output()
    assert not job.endpoint.exists()
    assert_nothing_left(two_nodes)


def test_native_job_is_ready_on_two_nodes_and_fails_naming_the_node_whose_rank_dies(two_nodes, tmp_path):
    job = submit(two_nodes, render(tmp_path / "native", "native", 2))
    endpoint = job.wait_ready()
    assert_ready(job, endpoint)
    # Each rank got its --node-rank and the head's routable address (not docker0's 172.17.0.1, first in `hostname -I`).
    assert "rank 1 joined from node2 (10.213.77.12)" in job.log()
    assert "--nnodes 2 --master-addr 10.213.77.11" in job.log("node2") and "--node-rank 1 --headless on node2" in job.log("node2")

    kill_on(two_nodes, "node2", "vllm_standin.py")
    assert two_nodes.wait_end(job.id) == ("FAILED", "1:0")
    assert "vllm-launch job: node node2 failed: its vLLM process exited (status 137)" in job.output()
    assert not job.endpoint.exists()
    assert_nothing_left(two_nodes)


@pytest.mark.parametrize("backend", ["ray", "native"])
def test_two_jobs_share_the_nodes_then_stop_everywhere_on_the_time_limit_signal_and_scancel(two_nodes, tmp_path, backend):
    script = render(tmp_path / backend, backend, 1)  # 1 of the 2 GPUs per node: both jobs run at once on both nodes
    first, second = submit(two_nodes, script), submit(two_nodes, script)
    endpoints = [first.wait_ready(), second.wait_ready()]
    for job, endpoint in zip((first, second), endpoints, strict=True):
        assert_ready(job, endpoint)
        assert two_nodes.job(job.id)["NodeList"] == "node[1-2]"
    assert endpoints[0]["port"] != endpoints[1]["port"]
    if backend == "ray":  # each vLLM on its own job's Ray cluster, not the newest one on the node
        addresses = [job.log().split("Connected to the Ray cluster at ")[1].split()[0] for job in (first, second)]
        assert addresses[0] != addresses[1]
        assert all(f"ray start --address='{a}'" in job.log("node1") for a, job in zip(addresses, (first, second), strict=True))

    # Slurm's time-limit signal (--signal=B:USR1@120) goes to the batch shell only; scancel signals every step.
    assert run(["scancel", "--batch", "--signal=USR1", first.id], two_nodes.env).returncode == 0
    assert run(["scancel", second.id], two_nodes.env).returncode == 0
    assert two_nodes.wait_end(first.id) == ("COMPLETED", "0:0")
    assert two_nodes.wait_end(second.id) == ("CANCELLED", "143:0")  # the trap finished within KillWait
    assert "USR1 received, stopping vLLM" in first.output() and "TERM received, stopping vLLM" in second.output()
    assert not first.endpoint.exists() and not second.endpoint.exists()
    assert_nothing_left(two_nodes)


def test_the_per_node_check_sees_a_process_left_behind_on_a_node(two_nodes):
    """The checks above, and the cluster's tear-down, look into each node's namespace: a stray process there is seen."""
    node2 = two_nodes.node("node2")
    stray = subprocess.Popen(["nsenter", f"--net=/run/netns/{node2.netns}", "sleep", "300"])
    try:  # nsenter enters the namespace, then becomes `sleep`: only then is there a stray to see
        wait_for(lambda: any(p.cmdline == "sleep 300" for p in two_nodes.processes_on(node2)), 10, "the stray in node2")
        with pytest.raises(AssertionError, match=r"'node2': \['sleep 300'\]"):
            assert_nothing_left(two_nodes, timeout=1)
    finally:
        stray.kill()
        stray.wait()
    assert_nothing_left(two_nodes)

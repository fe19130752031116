"""Jobs of rendered sbatch scripts on a test cluster (cluster.py): submit, wait for READY, read their files, check
that nothing of them is left on the nodes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path

from cluster import SlurmCluster, wait_for

VENV_BIN = str(Path(sys.executable).parent)  # `ray` and the test venv's python3 (the stand-in imports ray)


class Job:
    """A submitted job and the files it writes next to its script (the submit directory)."""

    def __init__(self, cluster: SlurmCluster, script: Path, ready_s: float, env: dict[str, str] | None = None) -> None:
        self.cluster, self.dir, self.ready_s = cluster, script.parent, ready_s
        self.id = cluster.sbatch(script, env=dict(cluster.env, PATH=f"{VENV_BIN}:{os.environ['PATH']}", **(env or {})))
        self.endpoint = self.dir / f"endpoint-{self.id}.json"

    def output(self) -> str:
        found = list(self.dir.glob(f"*-{self.id}.out"))
        return found[0].read_text() if found else ""

    def log(self, node: str | None = None) -> str:
        path = self.dir / (f"vllm-{self.id}-{node}.log" if node else f"vllm-{self.id}.log")
        return path.read_text() if path.exists() else ""

    def wait_ready(self) -> dict:
        """The endpoint file, once the job wrote it; fails with the job's output if it ended or timed out first."""

        def ready_or_ended() -> bool:
            return self.endpoint.exists() or self.cluster.job(self.id).get("JobState") not in ("PENDING", "RUNNING")

        with contextlib.suppress(AssertionError):
            wait_for(ready_or_ended, self.ready_s + 30, "READY")
        state = self.cluster.job(self.id).get("JobState")
        assert self.endpoint.exists(), f"job {self.id} not ready ({state}):\n{self.output()}\n{self.log()[-3000:]}"
        return json.loads(self.endpoint.read_text())

    def url(self, endpoint: dict, path: str) -> str:
        """As a client outside the cluster reaches it: the endpoint's host name resolves on the cluster's network."""
        return f"http://{self.cluster.node(endpoint['host']).addr}:{endpoint['port']}{path}"

    def get(self, endpoint: dict, path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url(endpoint, path), timeout=10) as r:
            return r.status, r.read()


def assert_nothing_left(cluster: SlurmCluster, timeout: float = 20) -> None:
    """No process of any job on any node: each node's namespace holds only its slurmd."""

    def clean() -> bool:
        return not any(cluster.processes_on(node) for node in cluster.nodes)

    try:
        wait_for(clean, timeout, "the nodes to be empty")
    except AssertionError:
        left = {node.name: [p.cmdline[:120] for p in cluster.processes_on(node)] for node in cluster.nodes}
        raise AssertionError(f"processes left on the nodes: {left}") from None


def kill_on(cluster: SlurmCluster, node: str, needle: str) -> list[int]:
    """SIGKILL the processes on NODE whose command line holds NEEDLE: a node's part of a job dying."""
    victims = [p.pid for p in cluster.processes_on(cluster.node(node)) if needle in p.cmdline]
    assert victims, f"no {needle!r} process on {node}"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return victims

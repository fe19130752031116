"""The real Slurm clusters the tests in this directory run jobs on (see cluster.py)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # helpers, model_configs
sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster

from cluster import Host, Munge, SlurmCluster, machine_lock, missing_tools, netns_probe  # noqa: E402
from helpers import missing_real_part  # noqa: E402

NETNS_NODES = 2
GPUS_PER_NODE = 2


def require_slurm() -> None:
    missing = missing_tools()
    if missing or os.geteuid() != 0:
        missing_real_part(f"needs root and Debian's slurmctld slurmd slurm-client munge (missing: {missing or 'root'})")


def run_cluster(cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """Start CLUSTER, hand it to the tests, stop it whatever happened; fail the session's last test when the stop
    found anything of the cluster still running, or left a namespace or link behind."""
    try:
        cluster.start()
        yield cluster
    finally:
        leaks = cluster.stop()
    assert not leaks, "the test cluster left things behind (now killed/removed):\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Iterator[SlurmCluster]:
    """One node on this machine's own network, named after the machine."""
    require_slurm()
    base = tmp_path_factory.mktemp("slurm")
    host = Host(socket.gethostname().split(".")[0], "127.0.0.1")
    yield from run_cluster(SlurmCluster(base, host, [host], GPUS_PER_NODE, base, Munge()))


@pytest.fixture(scope="session")
def netns_slurm(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A controller and NETNS_NODES nodes, each in its own network, UTS and mount namespace (cluster.py)."""
    require_slurm()
    reason = netns_probe()
    if reason:
        missing_real_part(f"cannot make network namespaces here: {reason}")
    with machine_lock():
        base = tmp_path_factory.mktemp("netns-slurm")
        controller = Host("ctl", "10.213.77.2", "vlt-ctl")
        nodes = [Host(f"node{i}", f"10.213.77.{10 + i}", f"vlt-node{i}") for i in range(1, NETNS_NODES + 1)]
        # The test's whole temporary tree is the cluster's shared file system: job scripts and outputs live there.
        yield from run_cluster(SlurmCluster(base, controller, nodes, GPUS_PER_NODE, tmp_path_factory.getbasetemp(), Munge()))


@pytest.fixture
def two_nodes(netns_slurm: SlurmCluster) -> Iterator[SlurmCluster]:
    """The namespace cluster for one test. Jobs it leaves queued or running are cancelled, so that a test that failed
    half-way does not hold the nodes' GPUs while the next one waits."""
    yield netns_slurm
    netns_slurm.cancel_all()

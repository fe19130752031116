"""A real Slurm cluster on this machine, for tests: a private munged, slurmctld and slurmd (Debian's Slurm 22.05).

Two shapes share this code (conftest.py makes both). Hosts without a network namespace: one node on the machine's own
network, named after the machine, controller on the same host. Hosts with one: a controller and N nodes, each in its
own network namespace (a veth pair into a bridge on a private subnet), UTS namespace (its own hostname) and mount
namespace (its own /tmp, /dev/shm and /etc/hosts; the test's temporary directory is shared, like a cluster file
system), with its own slurmd spool directory. Each such node also has a `docker0` at 172.17.0.1, as GPU nodes with
Docker do: an address that every node has and no other node reaches, listed before the real one by `hostname -I`.

Fake GPUs are device-file links, as in the project's slurm-local recipe (22.05 drops File-less GPU GRES).
`stop()` cancels the jobs, stops the daemons, and returns whatever of the cluster was still running (then kills it):
a non-empty list is a leak the caller reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_SH = HERE / "node.sh"
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")
NETNS_PREFIX = "vlt-"  # every network namespace and link this module makes starts with it
LOCK_FILE = "/run/lock/vllm-launch-test-netns-cluster.lock"


def run(cmd: list[str] | str, env: dict[str, str] | None = None, check: bool = False, **kw: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, shell=isinstance(cmd, str), **kw)
    if check and result.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def missing_tools() -> list[str]:
    tools = ("slurmctld", "slurmd", "sbatch", "munged", "mungekey", "setpriv")
    return [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


@dataclass(frozen=True)
class Host:
    name: str  # hostname and Slurm NodeName
    addr: str  # the address Slurm reaches it at
    netns: str | None = None  # its network namespace; None: the machine's own network


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: str


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # PID 1 here reaps orphans lazily: a zombie is gone


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def processes_with_env(key: str, value: str) -> list[Proc]:
    """Live processes whose environment has KEY=VALUE: a cluster's daemons and everything its jobs started."""
    needle = f"{key}={value}".encode()
    found = []
    for pid in _all_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and _alive(pid):
            found.append(Proc(pid, _cmdline(pid) or "?"))
    return found


class Munge:
    """A munged of our own (own key, socket and files), so no other Slurm on this machine shares or stops it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vllm-launch-munge-", dir="/run"))  # munged refuses world-writable dirs
        self.socket = self.dir / "munge.socket"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        key = self.dir / "munge.key"
        run(["mungekey", "--create", f"--keyfile={key}"], check=True)
        for path in (self.dir, key):
            shutil.chown(path, "munge", "munge")
        os.chmod(key, 0o400)
        os.chmod(self.dir, 0o755)  # munged wants its socket's directory searchable by all
        log = self.dir / "munged.log"
        with open(self.dir / "munged.stderr", "w") as stderr:
            self.proc = subprocess.Popen(
                ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "--foreground", f"--socket={self.socket}"]
                + [f"--key-file={key}", f"--log-file={log}", f"--pid-file={self.dir}/munged.pid", f"--seed-file={self.dir}/munged.seed"],
                stdout=stderr,
                stderr=stderr,
            )
        check = f"munge -n -S {self.socket} | unmunge -S {self.socket}"
        with contextlib.suppress(AssertionError):
            wait_for(lambda: self.proc.poll() is not None or run(check).returncode == 0, 10, "munged")
        if run(check).returncode != 0:
            self.proc.kill()
            raise RuntimeError(f"munged did not start: {(self.dir / 'munged.stderr').read_text()} (log {log})")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Network:
    """A private subnet: a bridge on the machine (with .1, for the tests' own clients) and, per host, a network
    namespace joined to it by a veth pair. Names start with NETNS_PREFIX; `delete` removes all of them."""

    def __init__(self, subnet: str, hosts: list[Host]) -> None:
        self.subnet = subnet  # e.g. "10.213.77" (a /24)
        self.hosts = hosts
        self.bridge = f"{NETNS_PREFIX}br"

    def existing(self) -> list[str]:
        """This module's namespaces and links that exist now (from an earlier session that was killed, or leaks)."""
        netns = [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.startswith(NETNS_PREFIX)]
        links = re.findall(rf"^\d+: ({re.escape(NETNS_PREFIX)}[^:@]+)", run(["ip", "-o", "link", "show"]).stdout, re.M)
        return [f"netns {n}" for n in netns] + [f"link {n}" for n in links]

    def create(self) -> None:
        used = run(["ip", "-4", "-o", "addr", "show"]).stdout + run(["ip", "-4", "route", "show"]).stdout
        if re.search(rf"\b{re.escape(self.subnet)}\.", used):
            raise RuntimeError(f"subnet {self.subnet}.0/24 is already used on this machine; the test cluster needs it")

        def ip(*args: str) -> None:
            run(["ip", *args], check=True)

        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in self.hosts:
            ns = host.netns
            assert ns is not None
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            # Docker's bridge address, first in `hostname -I` (lower ifindex), reachable from no other node.
            ip("-n", ns, "link", "add", "docker0", "type", "bridge")
            ip("-n", ns, "addr", "add", "172.17.0.1/16", "dev", "docker0")
            ip("-n", ns, "link", "set", "docker0", "up")
            ip("link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", ns, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def clear_stale(self) -> list[str]:
        """Remove what a killed session left (under the machine lock nobody else owns it): its processes first."""
        stale = self.existing()
        for entry in stale:
            kind, name = entry.split(" ", 1)
            for pid in self.pids(name) if kind == "netns" else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.delete()
        return stale

    def delete(self) -> None:
        for entry in self.existing():
            kind, name = entry.split(" ", 1)
            if kind == "netns":
                run(["ip", "netns", "delete", name])
        for entry in self.existing():
            run(["ip", "link", "delete", entry.split(" ", 1)[1]])

    @staticmethod
    def pids(netns: str) -> list[int]:
        """The live processes inside network namespace NETNS."""
        try:
            inode = os.stat(f"/run/netns/{netns}").st_ino
        except FileNotFoundError:
            return []
        found = []
        for pid in _all_pids():
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode and _alive(pid):
                    found.append(pid)
            except OSError:
                continue
        return found


def netns_probe() -> str | None:
    """Why network namespaces with veth pairs and new UTS/mount namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (Debian packages iproute2, util-linux)"
    probe = f"{NETNS_PREFIX}probe{os.getpid()}"
    try:
        for cmd in (
            ["ip", "netns", "add", probe],
            ["ip", "link", "add", f"{NETNS_PREFIX}p{os.getpid()}", "type", "veth", "peer", "name", "eth0", "netns", probe],
            ["nsenter", f"--net=/run/netns/{probe}", "unshare", "--uts", "--mount", "sh", "-c", "hostname probe && mount -t tmpfs t /mnt"],
        ):
            result = run(cmd)
            if result.returncode != 0:
                return f"`{' '.join(cmd)}` failed: {result.stderr.strip()}"
    finally:
        run(["ip", "netns", "delete", probe])
        run(["ip", "link", "delete", f"{NETNS_PREFIX}p{os.getpid()}"])
    return None


@contextlib.contextmanager
def machine_lock(timeout: float = 600):
    """One namespace cluster per machine at a time: its names, subnet and cgroup paths are fixed."""
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    with open(LOCK_FILE, "w") as f:
        wait_for(lambda: _try_lock(f), timeout, f"the lock {LOCK_FILE} (another test session runs a namespace cluster)", 1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SlurmCluster:
    def __init__(self, base: Path, controller: Host, nodes: list[Host], gpus_per_node: int, shared: Path, munge: Munge) -> None:
        assert gpus_per_node <= len(FAKE_GPU_DEVICES)
        self.base, self.controller, self.nodes, self.gpus_per_node = base, controller, nodes, gpus_per_node
        self.shared, self.munge = shared, munge
        self.conf = base / "etc" / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.daemons: dict[str, subprocess.Popen] = {}
        self.network = Network(controller.addr.rsplit(".", 1)[0], [controller, *nodes]) if controller.netns else None

    # --- set-up ---
    def write_config(self) -> None:
        base = self.base
        for sub in ("etc", "state", "spool", "log", "run", "dev", "hosts"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for i in range(self.gpus_per_node):
            (base / "dev" / f"gpu{i}").symlink_to(FAKE_GPU_DEVICES[i])
        hw = run(["slurmd", "-C"], check=True).stdout.splitlines()[0]
        topo = re.search(r"CPUs=\d+ Boards=\d+ SocketsPerBoard=\d+ CoresPerSocket=\d+ ThreadsPerCore=\d+", hw).group(0)
        mem = int(re.search(r"RealMemory=(\d+)", hw).group(1)) - 1024  # headroom: a small FreeMem change never drains a node
        names = ",".join(n.name for n in self.nodes)
        # In its own namespaces a cluster has the ports to itself; on the host it takes free ones, beside any other Slurm.
        ctld_port, slurmd_port = (6817, 6818) if self.network else free_ports(2)
        node_lines = "\n".join(
            f"NodeName={n.name} NodeAddr={n.addr} {topo} RealMemory={mem} Gres=gpu:{self.gpus_per_node} State=UNKNOWN" for n in self.nodes
        )
        self.conf.write_text(f"""\
ClusterName=testcluster
SlurmctldHost={self.controller.name}({self.controller.addr})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge.socket}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd-%n.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
# above the tests' --grace 5, as Slurm's default 30 is above a script's: the TERM trap ends before SIGKILL
KillWait=15
GresTypes=gpu
{node_lines}
PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
""")
        (base / "etc" / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={names} Name=gpu File={base}/dev/gpu[0-{self.gpus_per_node - 1}]\n"
        )
        (base / "etc" / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n"
        )
        hosts = "".join(f"{h.addr} {h.name}\n" for h in (self.controller, *self.nodes))
        (base / "hosts" / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
        (base / "hosts" / "resolv.conf").write_text("")

    def start(self) -> None:
        self.write_config()
        self.munge.start()
        if self.network:
            if stale := self.network.clear_stale():
                print(f"removed leftovers of an earlier test session: {', '.join(stale)}", file=sys.stderr)
            self.network.create()
        self.daemons["slurmctld"] = self._start(self.controller, ["slurmctld", "-D"])
        for node in self.nodes:
            self.daemons[f"slurmd@{node.name}"] = self._start(node, ["slurmd", "-D"])

        def all_idle() -> bool:
            dead = [name for name, p in self.daemons.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.base / 'log'}")
            states = self.sinfo_states()
            return len(states) == len(self.nodes) and set(states.values()) == {"idle"}

        try:
            wait_for(all_idle, 60, "every node idle")
        except AssertionError as e:
            raise RuntimeError(f"{e}: {self.sinfo_states()}; see {self.base / 'log'}") from None

    def _start(self, host: Host, argv: list[str]) -> subprocess.Popen:
        log = open(self.base / "log" / f"{host.name}-{argv[0]}.stderr", "w")  # noqa: SIM115 - open for the daemon's lifetime
        if host.netns:
            private = self.base / "private" / host.name
            private.mkdir(parents=True, exist_ok=True)
            os.chmod(private, 0o1777)
            # What every host sees at the same path: the cluster's shared directory, and this checkout and its Python
            # (the job runs the stand-ins and Ray from them; they may live under /tmp, which each host has its own of).
            shared = ":".join(dict.fromkeys(str(p) for p in (self.shared, HERE.parent.parent, Path(sys.prefix))))
            node = [str(NODE_SH), host.name, shared, str(private), str(self.base / "hosts")]
            argv = ["nsenter", f"--net=/run/netns/{host.netns}", "unshare", "--uts", "--mount", *node, *argv]
        return subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)  # nsenter, unshare and node.sh exec: pid = daemon

    def sinfo_states(self) -> dict[str, str]:
        out = run(["sinfo", "-h", "-N", "-o", "%N %T"], self.env).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    # --- jobs ---
    def sbatch(self, script: Path, *args: str, env: dict[str, str] | None = None) -> str:
        result = run(["sbatch", "--parsable", *args, str(script)], env or self.env, cwd=script.parent)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().split(";")[0]

    def job(self, jobid: str) -> dict[str, str]:
        out = run(["scontrol", "show", "job", jobid], self.env).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def wait_end(self, jobid: str, timeout: float = 60) -> tuple[str, str]:
        def ended() -> tuple[str, str] | None:
            fields = self.job(jobid)
            return (fields["JobState"], fields["ExitCode"]) if fields.get("JobState") in FINAL_STATES else None

        return wait_for(ended, timeout, f"job {jobid} to end")

    def job_ids(self) -> list[str] | None:
        """The jobs slurmctld knows (pending, running, completing); None when it does not answer."""
        result = run(["squeue", "-h", "-o", "%i"], self.env)
        return result.stdout.split() if result.returncode == 0 else None

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is left."""
        if self.job_ids() != []:
            run(["scancel", f"--user={getpass.getuser()}"], self.env)  # every job on this private cluster is ours
            wait_for(lambda: self.job_ids() == [], timeout, "the jobs to end")

    def processes_on(self, host: Host) -> list[Proc]:
        """What runs on HOST besides its Slurm daemon (namespace clusters only)."""
        assert host.netns, "processes_on needs a namespace cluster"
        daemon_pids = {p.pid for p in self.daemons.values()}
        return [Proc(pid, _cmdline(pid) or "?") for pid in Network.pids(host.netns) if pid not in daemon_pids]

    def node(self, name: str) -> Host:
        return next(n for n in self.nodes if n.name == name)

    # --- tear-down ---
    def stop(self) -> list[str]:
        """Cancel every job, stop the daemons, and remove all the cluster made. Returns the leaks it had to kill:
        processes still running once the jobs had ended and the daemons had stopped (descriptions), and any
        namespace or link that would not go away."""
        leaks: list[str] = []
        ctld = self.daemons.get("slurmctld")
        if ctld and ctld.poll() is None:
            with contextlib.suppress(AssertionError):
                self.cancel_all()
        for proc in [*(p for n, p in self.daemons.items() if n != "slurmctld"), self.daemons.get("slurmctld")]:
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                leaks.append(f"{proc.args[-2:]} ignored SIGTERM")
                proc.kill()
                proc.wait()
        time.sleep(0.2)
        leftovers: dict[int, str] = {}
        if self.network:
            for host in self.network.hosts:
                for pid in Network.pids(host.netns):
                    leftovers[pid] = f"on {host.name}: pid {pid} {_cmdline(pid)}"
        for proc in processes_with_env("SLURM_CONF", str(self.conf)):
            leftovers.setdefault(proc.pid, f"pid {proc.pid} {proc.cmdline}")
        for pid, what in leftovers.items():
            leaks.append(f"left running: {what}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if leftovers:
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not any(_alive(p) for p in leftovers), 10, "the leftovers to die")
        self.munge.stop()
        if self.network:
            self.network.delete()
            leaks += [f"not removed: {what}" for what in self.network.existing()]
            self._remove_cgroups()
        return leaks

    def _remove_cgroups(self) -> None:
        """Slurm leaves its empty cgroup tree behind (freezer/slurm_<node>); remove ours, deepest first."""
        for node in self.nodes:
            root = Path(f"/sys/fs/cgroup/freezer/slurm_{node.name}")
            if not root.is_dir():
                continue
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()

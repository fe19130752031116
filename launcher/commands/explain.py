"""`vllm-launch explain`: a vLLM error text (or log) -> what really happened, with the true numbers, and the fix."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from launcher.budget.explain import HOLDER_KINDS, Explanation, explain
from launcher.errors import UserError
from launcher.settings import ExplainSettings

# One word ending like a log file, or holding a path separator: meant as a file, never as vLLM's error text.
LOOKS_LIKE_PATH = re.compile(r"^\S*(/|\.(log|txt|out|err|json|jsonl))$|^\S*/\S*$", re.I)


def read_text(arg: str | None) -> str:
    """The argument verbatim, the log file it names, or standard input."""
    if arg is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UserError(
                "no error text given",
                "explain reads it from its argument, a log file, or standard input",
                'pass the text quoted (vllm-launch explain "ERROR TEXT"), a log file (vllm-launch explain vllm.log), or pipe it in',
            )
        return sys.stdin.read()
    if "\n" in arg or len(arg) > 4096:
        return arg
    path = Path(arg).expanduser()
    try:
        is_file, is_dir = path.is_file(), path.is_dir()
    except OSError:  # longer than a file name can be (ENAMETOOLONG): an error text, not a path
        return arg
    if is_file:
        try:
            return path.read_text(errors="replace")
        except OSError as exc:
            raise UserError(f"cannot read {arg}: {exc.strerror}", "", "check the file's permissions") from exc
    if is_dir:
        raise UserError(f"{arg} is a directory", "explain reads one log file or an error text", "pass the log file inside it")
    if LOOKS_LIKE_PATH.match(arg.strip()):
        raise UserError(f"{arg}: no such file", "the argument looks like a log file's path", "check the path, or pass the error text")
    return arg


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

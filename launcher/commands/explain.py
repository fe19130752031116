"""`vllm-launch explain`: a vLLM error text (or log) -> what really happened, with the true numbers, and the fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from launcher.budget.explain import explain
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
    if len(arg) < 4096 and "\n" not in arg and path.is_file():
        return path.read_text(errors="replace")
    return arg


def run(s: ExplainSettings) -> int:
    text = read_text(" ".join(s.text) if s.text else None)
    if not text.strip():
        raise UserError("the error text is empty", "", "paste the whole error body or log")
    e = explain(text, max_tokens=s.max_tokens, max_model_len=s.max_model_len, prompt_tokens=s.prompt_tokens)
    if s.json_output:
        print(json.dumps(asdict(e), indent=2))
    else:
        print(e.what)
        if e.why:
            print(f"  why: {e.why}")
        for fix in e.fixes:
            print(f"  fix: {fix}")
    return 0 if e.recognised else 1

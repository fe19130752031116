"""`vllm-launch budget`: a multi-turn episode's prompt growth, the max_model_len it needs, the max_tokens to send."""

from __future__ import annotations

import json
import os
from pathlib import Path

from launcher.budget.check import read_server
from launcher.budget.trajectory import BudgetError, BudgetReport, TrajectoryLimits, plan_trajectory
from launcher.errors import UserError
from launcher.inputs import check_budget
from launcher.settings import BudgetSettings, parse_tokens

KEYS = (
    "system_tokens",
    "max_completion_length_per_turn",
    "observation_tokens_per_turn",
    "turns",
    "total_max_prompt_length",
    "total_max_completion_length",
)
CHART_ROWS = 30  # longer episodes show their first and last turns (and the first failing one); --json lists all


def read_trajectory_file(path: Path) -> dict:
    import yaml  # YAML is a superset of JSON: one parser reads both kinds of config

    try:
        data = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}", "", "check the path") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML/JSON: {exc}", "", "fix the file") from exc
    found: dict = {}

    def walk(node: object) -> None:  # rl_env configs nest these keys; take them wherever they are
        if isinstance(node, dict):
            for k, v in node.items():
                if k in KEYS and k not in found and v is not None:
                    try:
                        found[k] = parse_tokens(v)
                    except ValueError as exc:
                        raise UserError(f"{path}: {k}: {exc}", "the budget needs a whole number of tokens there", "fix the value") from exc
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    if not found:
        raise UserError(f"{path} has none of the keys {', '.join(KEYS)}", "", "check the file")
    return found


def chart(report: BudgetReport, width: int = 40) -> list[str]:
    top = max(report.needed_max_model_len, report.server_max_model_len or 0)
    shown = report.turns
    if len(shown) > CHART_ROWS:
        keep = {*range(CHART_ROWS // 2), *range(len(shown) - CHART_ROWS // 2, len(shown))}
        if report.first_failing_turn:
            keep.add(report.first_failing_turn - 1)
        shown = tuple(report.turns[i] for i in sorted(keep))
    lines, previous = [], 0
    for t in shown:
        if t.turn > previous + 1:
            lines.append(f"{'...':>5} ({t.turn - previous - 1:,} turns not shown; --json lists them all)")
        previous = t.turn
        bar = "#" * max(1, round(t.prompt_tokens / top * width)) + "+" * max(1, round(report.max_tokens / top * width))
        flag = "  <- exceeds the server" if report.server_max_model_len and t.request_tokens > report.server_max_model_len else ""
        lines.append(f"{t.turn:>5} {t.prompt_tokens:>10,} {t.request_tokens:>10,}  {bar}{flag}")
    return lines


def run(s: BudgetSettings) -> int:
    check_budget(s)
    values = read_trajectory_file(s.trajectory_config) if s.trajectory_config else {}
    values.update({k: getattr(s, k) for k in KEYS if getattr(s, k) is not None})  # flags override the file
    if "max_completion_length_per_turn" not in values:
        raise UserError(
            "no per-turn completion limit", "it is the max_tokens every request sends", "pass --max-completion-length-per-turn N"
        )
    try:
        limits = TrajectoryLimits(**values)
    except BudgetError as exc:
        raise UserError(str(exc), "the episode's limits must be consistent", "fix the numbers") from exc
    server_len = s.max_model_len
    if s.url:
        server_len = read_server(s.url, None, os.environ.get(s.api_key_env)).max_model_len
    report = plan_trajectory(limits, s.buffer, server_len)
    if s.json_output:
        print(
            json.dumps(
                {
                    "turns": [t.__dict__ for t in report.turns],
                    "max_tokens": report.max_tokens,
                    "needed_max_model_len": report.needed_max_model_len,
                    "buffer": report.buffer,
                    "server_max_model_len": report.server_max_model_len,
                    "first_failing_turn": report.first_failing_turn,
                    "consistent": report.consistent,
                    "problems": list(report.problems),
                },
                indent=2,
            )
        )
    else:
        print(f"{'turn':>5} {'prompt':>10} {'+max_tok':>10}  (# prompt, + completion)")
        print("\n".join(chart(report)))
        print(f"\nsend max_tokens = {report.max_tokens:,} per request (the per-turn limit, not the trajectory total)")
        print(
            f"needed --max-model-len = {report.needed_max_model_len:,} (worst request + buffer {report.buffer:,}); "
            f"`vllm-launch serve --model MODEL --max-model-len {report.needed_max_model_len}` sizes and starts it"
        )
        print("prompts grow by repeating the earlier turns: keep prefix caching on (vLLM's default) so they are not recomputed")
        if report.server_max_model_len:
            if report.first_failing_turn:
                print(f"with max_model_len {report.server_max_model_len:,} the episode first fails at turn {report.first_failing_turn}")
            for p in report.problems:
                print(f"! {p}")
            if report.consistent:
                print(f"every turn fits the server's max_model_len {report.server_max_model_len:,}")
    return 0 if report.consistent else 1

"""Plans from Python, for tools that size servers programmatically (RL frameworks, schedulers, autoscalers).

    from launcher.api import plan

    p = plan("Qwen/Qwen2.5-32B-Instruct", prompt=20000, completion=8000, gpu="H100-80GB", gpus=8, min_concurrency=16)
    p["fits"], p["tensor_parallel_size"], p["data_parallel_size"], p["vllm_args"]
    [row for row in p["layouts"] if row["recommended"]]

The result is exactly the object `vllm-launch plan --json` prints (the contract documented in the README). Keyword
arguments are `plan`'s flags with underscores (`max_model_len="auto"`, `kv_cache_dtype="fp8"`, `gpu=["H100-80GB",
"H200"]` or `"all"`); as on the command line, `VLLM_LAUNCH_*` environment variables fill what is not passed. Imports
stay as light as `launcher.budget`'s: no torch, vllm or transformers. Bad input raises `PlanInputError` with what was
wrong, why, and what to do; a plan that does not fit is returned with `fits` false, its problems and remedies.
"""

from __future__ import annotations

from typing import Any

from launcher.errors import UserError

__all__ = ["PlanInputError", "plan"]


class PlanInputError(UserError, ValueError):
    """The arguments cannot be planned (unknown GPU, missing sizes, an invalid value)."""


def plan(model: str, **settings: Any) -> dict[str, Any]:
    """Plan a vLLM server for `model` and return the `plan --json` object."""
    from pydantic import ValidationError

    from launcher.commands.plan import build_plan
    from launcher.report import plan_json
    from launcher.settings import PlanSettings

    if isinstance(settings.get("gpu"), (list, tuple)):
        settings["gpu"] = ",".join(settings["gpu"])
    unknown = sorted(set(settings) - set(PlanSettings.model_fields) - {"json"})
    if unknown:
        raise PlanInputError(
            f"unknown argument(s): {', '.join(unknown)}",
            "the keyword arguments are the `plan` command's flags, with underscores",
            "see `vllm-launch plan --help`",
        )
    try:
        parsed = PlanSettings(model=model, **settings)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PlanInputError(f"invalid argument: {details}", "the values are checked as the command line checks them", "") from exc
    try:
        return plan_json(build_plan(parsed))
    except PlanInputError:
        raise
    except UserError as exc:
        raise PlanInputError(exc.what, exc.why, exc.fix) from exc

"""Why vLLM failed to start or died, from its log: what happened, why, and the command that would work.

The same message catalog and explanations as `vllm-launch explain` (launcher/budget/explain.py), so a vLLM message is
known once; this module only turns an explanation into the launcher's report and re-runs the user's command with the
one flag that fixes it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from launcher.budget.explain import explain
from launcher.cli import vllm_spellings

# A start-up log can also carry request errors of an earlier run; the cause of a failed start is never one of them.
FAILURE_PHASES = frozenset({"startup", "runtime"})
# The inputs a context length is derived from: given with --max-model-len, serve refuses the pair (inputs.check_plan).
SIZED_BY_MAX_MODEL_LEN = ("--prompt", "--completion", "--buffer", "--turns", "--observation")


@dataclass(frozen=True)
class Diagnosis:
    what: str
    why: str
    fix: str
    flag: tuple[str, str] | None = None  # a flag change that would work, applied to the user's own command

    def command(self, argv: list[str]) -> str | None:
        if self.flag is None:
            return None
        return shlex.join(["vllm-launch", *with_flag(argv, *self.flag)])


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """The user's arguments, in our spellings, with `flag` set to `value`: `flag V` or `flag=V` replaced, the new pair
    placed before `--`. A new --max-model-len also drops the inputs it replaces, which serve refuses beside it."""
    argv = vllm_spellings(argv)  # `-tp 4` is --tensor-parallel-size, and must be replaced as such
    at = argv.index("--") if "--" in argv else len(argv)
    dropped = {flag, *(SIZED_BY_MAX_MODEL_LEN if flag == "--max-model-len" else ())}
    out, i = [], 0
    while i < at:
        name, eq, _ = argv[i].partition("=")
        if name in dropped:
            i += 1 if eq else 2
            continue
        out.append(argv[i])
        i += 1
    return [*out, flag, value, *argv[at:]]


def diagnose(log: str, returncode: int | None, *, port: int, max_model_len: int, gpu_memory_utilization: float) -> Diagnosis:
    e = explain(log, max_model_len=max_model_len or None, gpu_memory_utilization=gpu_memory_utilization, port=port, phases=FAILURE_PHASES)
    if e.recognised:
        fix = "; ".join(e.fixes[:2]) or "see the log below"
        return Diagnosis(e.what, e.why, fix, e.flag)
    if returncode is not None and returncode < 0:
        return Diagnosis(
            f"vLLM was killed by signal {-returncode}",
            "something outside vLLM (OOM killer, a user, the scheduler)",
            "check `dmesg` for the OOM killer and the job's limits",
        )
    if returncode is None:  # vLLM still runs: its engine died under it
        return Diagnosis(
            "vLLM's engine died while vLLM's API server kept running",
            "/health answered 503 or not at all; no known cause was found in its log",
            "read the log tail below",
        )
    return Diagnosis(f"vLLM exited with status {returncode}", "no known cause was found in its log", "read the log tail below")

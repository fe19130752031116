"""Why vLLM failed to start or died, from its log: what happened, why, and the command that would work.

The same message catalog and explanations as `vllm-launch explain` (launcher/budget/explain.py), so a vLLM message is
known once; this module only turns an explanation into the launcher's report and re-runs the user's command with the
one flag that fixes it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from launcher.budget.explain import explain

# A start-up log can also carry request errors of an earlier run; the cause of a failed start is never one of them.
FAILURE_PHASES = frozenset({"startup", "runtime"})


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
    """The user's arguments with `flag` set to `value` (replacing `flag V` or `flag=V`; inserted before `--`)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == flag:
            i += 2
            continue
        if arg.startswith(flag + "="):
            i += 1
            continue
        out.append(arg)
        i += 1
    at = out.index("--") if "--" in out else len(out)
    return [*out[:at], flag, value, *out[at:]]


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
    return Diagnosis(f"vLLM exited with status {returncode}", "no known cause was found in its log", "read the log tail below")

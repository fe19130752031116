"""What `explain` builds an answer from: the message matched, the numbers the user gave, and the answer in progress.

Shared by the answers to request-time messages (`request_answers.py`) and start-up messages (`startup_answers.py`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import vllm_messages as msgs

if TYPE_CHECKING:
    from launcher.hardware import GpuProcess
    from launcher.sizing.plan import Plan

DEFAULT_BUFFER = 1000
V0_BLOCK_SIZE = 16  # vLLM's CUDA block size before V1 (CacheConfig default); "# GPU blocks" x 16 = KV tokens
Replan = Callable[..., "Plan"]  # keyword arguments: max_model_len, gpu_memory_utilization, tensor_parallel_size


@dataclass(frozen=True)
class Explanation:
    recognised: bool
    kind: str
    what: str
    why: str = ""
    fixes: tuple[str, ...] = field(default_factory=tuple)
    numbers: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default_factory=tuple)  # assumptions, estimates, numbers that contradict the text
    source: str = ""  # which vLLM releases and source line emit the message
    phase: str = ""
    flag: tuple[str, str] | None = None  # the one vLLM flag change that makes it work (serve re-runs the user's command with it)


@dataclass(frozen=True)
class Given:
    """What the user told us besides the text."""

    max_tokens: int | None = None
    max_model_len: int | None = None
    prompt_tokens: int | None = None
    buffer: int = DEFAULT_BUFFER
    gpu_memory_utilization: float | None = None
    gpu_processes: tuple[GpuProcess, ...] = ()
    replan: Replan | None = None
    port: int | None = None


class Answer:
    """The main message, the other messages of the same text (log lines with sizes), and the answer being built."""

    def __init__(self, main: msgs.Match, matches: list[msgs.Match], given: Given, text: str) -> None:
        self.m, self.matches, self.given, self.text = main, matches, given, text
        self.what = self.why = ""
        self.fixes: list[str] = []
        self.notes: list[str] = []
        self.numbers: dict[str, Any] = {}
        self.flag: tuple[str, str] | None = None

    def n(self, name: str) -> int | None:
        return self.m.number(name)

    def f(self, name: str) -> float | None:
        return self.m.value(name)

    def fact(self, kind: str, name: str) -> float | None:
        for other in self.matches:
            if other.kind == kind and other.value(name) is not None:
                return other.value(name)
        return None

    def other(self, kind: str) -> msgs.Match | None:
        return next((o for o in self.matches if o.kind == kind and o is not self.m), None)

    def set(self, **numbers: Any) -> None:
        self.numbers.update({k: v for k, v in numbers.items() if v is not None})

    def contradict(self, name: str, said: int | None, shown: int | None, meaning: str) -> None:
        if said is not None and shown is not None and said != shown:
            self.notes.append(f"you gave {name} {said}, but the message shows {shown} ({meaning}); the numbers here follow the message")

    def result(self) -> Explanation:
        entry = self.m.entry
        fixes = [f[3:] if i == 0 and f.startswith("or ") else f for i, f in enumerate(self.fixes)]  # alternatives after the first
        return Explanation(
            True,
            self.m.kind,
            self.what,
            self.why,
            tuple(fixes),
            self.numbers,
            tuple(self.notes),
            entry.releases if entry else "",
            entry.phase if entry else "",
            self.flag,
        )


def serve_fix(prompt: int, completion: int, buffer: int) -> str:
    plan = shlex.join(["vllm-launch", "--prompt", str(prompt), "--completion", str(completion)])
    return (
        f"serve --max-model-len {prompt + completion} at least; {prompt + completion + buffer} with the default "
        f"{buffer}-token buffer (`{plan}` plans and starts it)"
    )


def size_text(gib: float) -> str:
    """GiB with the unit; crumbs in MiB/KiB with their GiB value too (0.002 GiB = 2 MiB)."""
    text = gib_text(gib)
    exact = f"{gib:.3f}" if gib >= 0.001 else f"{gib:.1g}"
    return f"{text} ({exact} GiB)" if text.endswith(("MiB", "KiB")) else f"{text} GiB"


def gib_text(value: float) -> str:
    """GiB as a person reads it: 2 decimals, 3 below 1 GiB, and MiB/KiB for crumbs (a 448 KiB free GPU is not "0 GiB")."""
    if value != value:
        return "?"
    if 0 < abs(value) < 0.01:
        mib = value * 1024
        return f"{mib:.2f} MiB".replace(".00 ", " ") if abs(mib) >= 1 else f"{mib * 1024:.0f} KiB"
    text = f"{value:.3f}" if 0 < abs(value) < 1 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".")

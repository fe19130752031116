"""vLLM behaviours that differ by release, in one place.

Each rule says which release introduced it and where that is documented, so the rest of the engine
asks `rules.<name>` instead of comparing version numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_VERSION = "0.32.0"
# The newest release whose behaviour these rules were checked against (vLLM's own source of that release).
NEWEST_KNOWN = "0.32.0"


def parse_version(text: str) -> tuple[int, int, int]:
    """`0.32.0`, `v0.11.0`, `0.10.1.1`, `0.32.0+cpu` -> (major, minor, patch)."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a vLLM version: {text!r} (expected e.g. 0.32.0)")
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class VersionRules:
    version: tuple[int, int, int]
    # Default --gpu-memory-utilization: 0.92 in 0.32 (config/cache.py); 0.9 in older releases.
    default_gpu_memory_utilization: float
    # CUDA-graph memory is profiled and subtracted before sizing the KV cache "by default since v0.21.0"
    # (the text of vLLM's own log line); earlier releases captured graphs after sizing.
    subtracts_cudagraph_memory: bool
    # Before vllm PR #56446 a `yarn` rope entry multiplied the derived max length by its factor.
    yarn_scales_max_len: bool
    # NCCL/custom all-reduce buffers count as non-torch memory in the profile (2.07 GiB at TP=2 in 0.19 logs);
    # 0.10.1.1 logs show TP runs budgeted like single-GPU ones (tests/data/observations.json obs003-obs005).
    profiles_tp_buffers: bool
    # 0.32 clamps max_tokens to what is left of the context; older releases rejected prompt+max_tokens > L.
    clamps_max_tokens: bool

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))


def rules_for(version: str | None) -> VersionRules:
    v = parse_version(version or DEFAULT_VERSION)
    return VersionRules(
        version=v,
        default_gpu_memory_utilization=0.92 if v >= (0, 32, 0) else 0.9,
        subtracts_cudagraph_memory=v >= (0, 21, 0),
        yarn_scales_max_len=v < (0, 32, 0),
        profiles_tp_buffers=v >= (0, 19, 0),
        clamps_max_tokens=v >= (0, 32, 0),
    )


def check_known(version: str) -> str:
    """A version the rules can speak for: refuses releases newer than NEWEST_KNOWN (their behaviour is unknown) and
    0.0.x (never released). Returns the version unchanged; raises ValueError with the known range."""
    v = parse_version(version)
    newest = parse_version(NEWEST_KNOWN)
    if v[:2] > newest[:2] or v < (0, 1, 0):
        raise ValueError(
            f"vLLM {version} is outside the releases these rules know (0.1 to {newest[0]}.{newest[1]}.x); "
            f"pass a version in that range, or leave --vllm-version out to use the installed vLLM's"
        )
    return version

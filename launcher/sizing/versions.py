"""vLLM behaviours that differ by release, in one place.

Each rule says which release introduced it and where that is documented, so the rest of the engine
asks `rules.<name>` instead of comparing version numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_VERSION = "0.32.0"


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
    # How the profile run's sampler warm-up filters top-k/top-p over one logits row per profiled sequence, which sets
    # its memory peak: "sort" for the V0 engine (the default before 0.8; its sampler uses FlashInfer only with
    # VLLM_USE_FLASHINFER_SAMPLER=1, 0.7.3 v1/sample/ops/topk_topp_sampler.py comment) and again from 0.11 (0.12 made
    # FlashInfer sampling opt-in, apply_top_k_top_p sorts the vocabulary; 0.11's image measured the same,
    # llm-d-benchmark empirical-vllm-memory-results.md); "flashinfer" for V1 0.8-0.10 with FlashInfer installed, as
    # the official images have it (0.10.1.1 TopKTopPSampler.__init__; logged "Using FlashInfer for top-p & top-k
    # sampling"); "triton" from 0.17 (apply_top_k_top_p_triton, v1/sample/ops/topk_topp_triton.py, filters in place).
    sampler: str = "triton"
    # Fused-MoE scratch buffers come from the persistent WorkspaceManager from 0.13 (v1/worker/workspace.py;
    # model_executor/layers/fused_moe/modular_kernel.py _allocate_buffers), so they are still held during the sampler
    # warm-up; before, fused_experts allocated them per call.
    moe_workspace_persists: bool = True
    # Non-torch memory a single-GPU profile run adds (library workspaces), as logged: 0.13 GiB on 0.10-0.17
    # (llm-d-benchmark 0.11 H100; llm-d-planner version sweep 0.15-0.17), 0.25 GiB from 0.18 (same sweep, 0.18 and 0.19).
    non_torch_gib: float = 0.25
    # What tensor parallelism adds to it while NCCL/custom all-reduce buffers are not profiled (profiles_tp_buffers
    # False): 0.12 GiB at TP=2 on 0.10.1.1 (tests/data/observations.json obs003/obs004), 0.42 GiB on 0.11 (obs238).
    tp_non_torch_gib: float = 0.0

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
        sampler="triton" if v >= (0, 17, 0) else "flashinfer" if (0, 8, 0) <= v < (0, 11, 0) else "sort",
        moe_workspace_persists=v >= (0, 13, 0),
        non_torch_gib=0.25 if v >= (0, 18, 0) else 0.13,
        tp_non_torch_gib=0.0 if v >= (0, 19, 0) else 0.42 if v >= (0, 11, 0) else 0.12,
    )

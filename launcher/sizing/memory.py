"""Memory available for the KV cache on one worker (vLLM's `determine_available_memory`).

`available_kv = ceil(total x gpu_memory_utilization) - weights - non_torch - activation_peak - cudagraph`,
or the --kv-cache-memory-bytes value as-is. The three profiled terms cannot be measured before launch;
they are modelled from the mechanisms that produce them and calibrated on the start-up logs in
tests/data/observations.json (vLLM 0.19 on H100, which logs each term separately).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from launcher.hardware import GiB

# Non-torch memory grown during the profile run (cuBLAS workspaces etc.): 0.25 GiB on every
# single-GPU H100 run (obs065-obs119); tensor parallelism adds NCCL and custom all-reduce buffers
# (2.07 GiB at TP=2, 2.13 GiB at TP=4: obs091, obs092); pipeline stages without TP log 0.07 GiB (obs089, obs090).
NON_TORCH_SINGLE = int(0.25 * GiB)
NON_TORCH_TP = int(2.07 * GiB)
NON_TORCH_PP = int(0.07 * GiB)
# The sampler warm-up runs one fp32 logits row per profiled sequence; its peak holds about 3.8 copies
# of that tensor (logits, scaled logits, probabilities, sorted values). Fitted on five models' logged
# "peak activation" at 1024 rows (3.74-3.89 copies): Llama-3.1-8B, Qwen3-8B, Gemma-2-9B, Gemma-3-4B, gpt-oss-20b.
SAMPLER_LOGIT_COPIES = 3.8
# CUDA-graph pool estimate for the default 51 capture sizes (1, 2, 4, 8..248 step 8, 256..512 step 16):
# 0.84 GiB for dense models, 1.39 GiB for a MoE model (obs080, obs065: "Estimated CUDA graph memory").
CUDAGRAPH_DENSE = 0.84 * GiB
CUDAGRAPH_MOE = 1.39 * GiB
DEFAULT_CAPTURE_SIZES = 51
# The CPU backend's non-KV usage of the worker besides the weights ("0.67 GiB memory was consumed by
# non-kv usages" for a 0.9 MB model, vLLM 0.32 CPU build).
CPU_RUNTIME_BYTES = int(0.67 * GiB)


@dataclass(frozen=True)
class StageMemory:
    """One worker's budget (the tightest pipeline stage is reported)."""

    stage: int
    requested: int
    weights: int
    non_torch: int
    activation: int
    cudagraph: int
    kv_available: int
    explicit_kv: bool


def requested_bytes(total: int, gpu_memory_utilization: float) -> int:
    return math.ceil(total * gpu_memory_utilization)


def capture_sizes(max_num_seqs: int) -> int:
    top = min(2 * max_num_seqs, 512)
    sizes = [s for s in (1, 2, 4) if s <= top]
    sizes += list(range(8, min(top, 248) + 1, 8))
    sizes += list(range(256, top + 1, 16))
    return len(sizes)


def non_torch_bytes(tp: int, pp: int, device: str, profiles_tp_buffers: bool) -> int:
    if device == "cpu":
        return CPU_RUNTIME_BYTES
    if tp > 1 and profiles_tp_buffers:
        return NON_TORCH_TP
    if pp > 1:
        return NON_TORCH_PP
    return NON_TORCH_SINGLE


def activation_bytes(
    *,
    vocab: int,
    hidden: int,
    intermediate: int,
    dtype_bytes: int,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    tp: int,
    samples: bool,
) -> int:
    """Peak of the profile run: the forward pass over max_num_batched_tokens, or the sampler pass."""
    rows = min(max_num_seqs, max_num_batched_tokens)
    sampler = int(SAMPLER_LOGIT_COPIES * rows * vocab * 4) if samples else 0
    # MLP gate/up output plus its activation, and a few hidden-size buffers, for every token at once.
    forward = max_num_batched_tokens * (3 * intermediate // tp + 4 * hidden) * dtype_bytes
    return max(sampler, forward)


def cudagraph_bytes(is_moe: bool, max_num_seqs: int, enabled: bool) -> int:
    if not enabled:
        return 0
    base = CUDAGRAPH_MOE if is_moe else CUDAGRAPH_DENSE
    return int(base * capture_sizes(max_num_seqs) / DEFAULT_CAPTURE_SIZES)

"""Memory available for the KV cache on one worker (vLLM's `determine_available_memory`).

`available_kv = ceil(total x gpu_memory_utilization) - weights - non_torch - activation_peak [- cudagraph]`,
or the --kv-cache-memory-bytes value as-is. The profiled terms cannot be measured before launch; each is built
from the mechanism that produces it (the profile run's forward pass over max_num_batched_tokens, its sampler
warm-up over one logits row per sequence, the fused-MoE workspace, the NCCL buffers) and the few constants the
mechanisms leave open are fitted on the public start-up logs in tests/data/observations.json (each constant
names the logs it was fitted on; benchmarks/accuracy.py re-fits them leaving one source out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from launcher.hardware import GiB
from launcher.model.spec import MoeShape
from launcher.sizing.versions import VersionRules

# Bytes per logits element the sampler warm-up holds at its peak besides the model-dtype logits themselves
# (vllm/v1/worker/gpu_model_runner.py _dummy_sampler_run -> v1/sample/sampler.py Sampler.forward):
# - "triton" (0.17+): a float32 copy, the softmax probabilities and the exponential noise `q` of random_sample:
#   3 x 4 bytes, exactly; plus a per-SM float32 row buffer cached by apply_top_k_top_p_triton (SAMPLER_SM_ROW).
# - "flashinfer" (V1 up to 0.10): a float32 copy and the probabilities flashinfer samples from: 2 x 4 bytes.
# - "sort" (0.11-0.16): the float32 copy, the sorted values and their int64 indices, the radix sort's own
#   double buffers and masks: fitted, 36.0 bytes (Llama-3.1-8B, Qwen3-0.6B, Qwen3-32B, gpt-oss-20b/120b at 0.11,
#   llm-d-benchmark; Qwen3-14B at 0.15 and 0.16, llm-d-planner version sweep: 35.9-36.1 after the other terms).
SAMPLER_EXTRA_BYTES = {"triton": 12.0, "flashinfer": 8.0, "sort": 36.0}
# Streaming multiprocessors, for the triton sampler's per-program row buffer (min(next_pow2(rows), SMs) rows).
SM_COUNT = {
    "h100": 132,
    "h200": 132,
    "gh200": 132,
    "b200": 148,
    "a100": 108,
    "l40s": 142,
    "l40": 142,
    "l4": 58,
    "a10": 72,
    "4090": 128,
    "3090": 82,
    "a6000": 84,
    "t4": 40,
    "v100": 80,
}
DEFAULT_SM_COUNT = 132
# What every profile run keeps beyond the modelled tensors (attention metadata, positions, compile-time static
# buffers): 0.05 GiB, the median residual over the 0.19 H100 logs whose peak is the sampler (Llama-3.1-8B, Qwen2.5-7B,
# Qwen3-8B, gemma-2 2b/9b/27b, phi-4, gpt-oss-20b, Llama-3.3-70B fp8: 0.04-0.06 GiB).
PROFILE_RESIDUAL = int(0.05 * GiB)
# The profile run's forward pass peaks in the MLP: the gate/up output and its activation (3 x intermediate / TP)
# and three hidden-size buffers (input, residual, output) for every batched token at once. Fitted on the logs whose
# peak is the forward pass: Llama-3.1-8B on the V0 engine at 20000, 29000 and 40000 tokens (RTX 3090 obs011/obs012,
# V100 TP=2 obs246: 3.0-3.07 hidden buffers) and CodeLlama-7B / granite-3.3-8B at 8192 tokens on 0.19 (0.74 / 0.82
# predicted vs 0.77 / 0.85 GiB logged).
FORWARD_INTERMEDIATE_COPIES = 3
FORWARD_HIDDEN_COPIES = 3
# A multimodal model's profile also runs the vision encoder and keeps its outputs (the encoder cache) until after
# the sampler warm-up (gpu_model_runner.py profile_run). The cache is modelled as one hidden-size row per batched
# token; the encoder's own leftovers are fitted: 0.12 GiB (gemma-3 4b/12b/27b, Mistral-Small-3.1, Llama-4-Scout at
# 0.19: 0.09-0.14 GiB above the text-only model).
MULTIMODAL_EXTRA = int(0.12 * GiB)
# Non-torch memory of tensor-parallel ranks when vLLM profiles the NCCL and custom all-reduce buffers (0.19+), for a
# hidden size of 4096, and what each further 4096 of hidden size adds (the all-reduced activations grow with it).
# Fitted on the llm-d-planner 0.19 H100 logs: TP=2 2.06-2.07 GiB at hidden 2880-5120 (Llama-3.1-8B, Qwen2.5-7B,
# Mixtral, gpt-oss-20b, Mistral-Small w8a8) and 2.09-2.11 at 8192 (Kimi-Dev-72B, Qwen2.5-72B, Llama-3.3-70B);
# TP=4 2.13 at 3584-4096, 2.17 at 5120 (Llama-4-Scout), 2.21 at 8192.
NCCL_PROFILED = {2: int(2.07 * GiB), 4: int(2.13 * GiB)}
NCCL_PER_HIDDEN_4096 = {2: int(0.03 * GiB), 4: int(0.08 * GiB)}
# Pipeline stages without tensor parallelism log 0.07 GiB (Llama-3.1-8B PP=2 and PP=4, 0.19).
NON_TORCH_PP = int(0.07 * GiB)
# CUDA-graph pool estimate for the default 51 capture sizes (1, 2, 4, 8..248 step 8, 256..512 step 16), used where
# the release subtracts it before sizing the KV cache (0.20+: versions.TABLE `subtracts_cudagraph_memory`). vLLM
# estimates it by capturing two graphs per mode and extrapolating (gpu_model_runner.py); with piecewise graphs each
# layer adds its pieces. Least-squares fit on the 0.19 H100 logs' "Estimated CUDA graph memory": dense models
# 0.215 GiB + 0.0182 GiB per layer (48 logs, 8-80 layers per stage, median error 0.10 GiB against 0.19 for one
# constant); MoE models 1.09 GiB whatever their depth (8 logs, 0.82-1.39: the experts' kernels, not the layer count,
# dominate).
CUDAGRAPH_DENSE_BASE = 0.215 * GiB
CUDAGRAPH_DENSE_PER_LAYER = 0.0182 * GiB
CUDAGRAPH_MOE = 1.09 * GiB
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


@dataclass(frozen=True)
class ProfileShape:
    """What the size of one worker's profile run depends on."""

    vocab: int
    hidden: int
    intermediate: int
    dtype_bytes: int
    tokens: int  # max_num_batched_tokens: the forward pass runs them all at once
    seqs: int  # max_num_seqs: one logits row each in the sampler warm-up
    tp: int = 1
    first_stage: bool = True
    last_stage: bool = True
    moe: MoeShape | None = None
    moe_modular: bool = True  # experts that take their scratch from the workspace manager (not monolithic kernels)
    multimodal: bool = False
    gpu_name: str = ""


def requested_bytes(total: int, gpu_memory_utilization: float) -> int:
    return math.ceil(total * gpu_memory_utilization)


def capture_sizes(max_num_seqs: int) -> int:
    top = min(2 * max_num_seqs, 512)
    sizes = [s for s in (1, 2, 4) if s <= top]
    sizes += list(range(8, min(top, 248) + 1, 8))
    sizes += list(range(256, top + 1, 16))
    return len(sizes)


def non_torch_bytes(tp: int, pp: int, device: str, rules: VersionRules, hidden: int = 4096) -> int:
    """Memory the profile run grows outside torch's allocator: library workspaces, and NCCL buffers under TP."""
    if device == "cpu":
        return CPU_RUNTIME_BYTES
    if tp > 1:
        if rules.profiles_tp_buffers:
            known = max(k for k in NCCL_PROFILED if k <= tp)  # TP=8 and beyond: the largest size measured
            return NCCL_PROFILED[known] + NCCL_PER_HIDDEN_4096[known] * (hidden - 4096) // 4096
        return int((rules.non_torch_gib + rules.tp_non_torch_gib) * GiB)
    if pp > 1:
        return NON_TORCH_PP
    return int(rules.non_torch_gib * GiB)


def sm_count(gpu_name: str) -> int:
    name = gpu_name.lower()
    return next((n for key, n in SM_COUNT.items() if key in name), DEFAULT_SM_COUNT)


def sampler_bytes(shape: ProfileShape, rules: VersionRules) -> int:
    """The sampler warm-up's logits: one row per profiled sequence over the whole vocabulary (never sharded)."""
    rows = min(shape.seqs, shape.tokens)
    per_element = shape.dtype_bytes + SAMPLER_EXTRA_BYTES[rules.sampler]
    out = int(rows * shape.vocab * per_element)
    if rules.sampler == "triton":
        programs = min(1 << max(0, rows - 1).bit_length(), sm_count(shape.gpu_name))
        out += programs * shape.vocab * 4
    return out


def moe_workspace_bytes(shape: ProfileShape) -> int:
    """The fused-MoE kernel's scratch for all batched tokens (TritonExperts.workspace_shapes in
    model_executor/layers/fused_moe/fused_moe.py; modular_kernel.py _allocate_buffers).

    With M tokens, top-k experts each, N = 2 x expert width / TP (gate and up) and K = hidden:
    workspace13 holds the first GEMM's activated output and then the second GEMM's, (M, k, max(N/2, K)), and is
    reused for the (M, K) result; workspace2 holds the first GEMM's output (M, k, max(N, K)). Both are taken from
    one allocation, each rounded up to 256 bytes (v1/worker/workspace.py get_simultaneous).
    """
    moe = shape.moe
    if moe is None or not shape.moe_modular:
        return 0
    m, k, n, hidden = shape.tokens, moe.experts_per_token, 2 * moe.intermediate_size // shape.tp, shape.hidden
    ws13 = max(m * k * max(n // 2, hidden), m * hidden) * shape.dtype_bytes
    ws2 = m * k * max(n, hidden) * shape.dtype_bytes
    return sum(-(-b // 256) * 256 for b in (ws13, ws2))


def forward_bytes(shape: ProfileShape) -> int:
    """Transient peak of the forward pass over max_num_batched_tokens (dense MLP or the shared experts)."""
    width = shape.intermediate
    if shape.moe is not None:
        # Routed experts run in the fused kernel, whose buffers are the workspace; a shared expert is a dense MLP.
        width = shape.moe.shared_intermediate_size
    per_token = FORWARD_INTERMEDIATE_COPIES * width // shape.tp + FORWARD_HIDDEN_COPIES * shape.hidden
    return shape.tokens * per_token * shape.dtype_bytes


def activation_bytes(shape: ProfileShape, rules: VersionRules) -> int:
    """Peak of the profile run above the weights (`torch peak memory increase`), for one worker.

    The forward pass and the sampler warm-up run one after the other, so the peak is the larger of the two. What
    outlives the forward pass adds to the sampler's: the hidden states it returns (one row per batched token), the
    persistent MoE workspace, the encoder cache of a multimodal model. A pipeline stage also holds the hidden states
    and residual it sends or receives.
    """
    hidden_states = shape.tokens * shape.hidden * shape.dtype_bytes
    workspace = moe_workspace_bytes(shape)
    persistent = workspace if rules.moe_workspace_persists else 0
    forward = forward_bytes(shape) + (0 if rules.moe_workspace_persists else workspace)
    pipeline = 0 if shape.first_stage and shape.last_stage else 2 * hidden_states
    encoder = hidden_states + MULTIMODAL_EXTRA if shape.multimodal and shape.first_stage else 0
    sampler = sampler_bytes(shape, rules) + hidden_states if shape.last_stage else 0
    return max(forward, sampler + encoder) + persistent + pipeline + PROFILE_RESIDUAL


def cudagraph_bytes(is_moe: bool, layers: int, max_num_seqs: int, enabled: bool) -> int:
    if not enabled:
        return 0
    base = CUDAGRAPH_MOE if is_moe else CUDAGRAPH_DENSE_BASE + CUDAGRAPH_DENSE_PER_LAYER * layers
    return int(base * capture_sizes(max_num_seqs) / DEFAULT_CAPTURE_SIZES)


def rank_weights(stage_checkpoint_bytes: int, rope_cache_bytes: int, tp: int) -> int:
    """Weights one rank loads ("Model loading took"): its 1/TP share of the stage's checkpoint tensors plus the
    rotary cos/sin cache, which every rank builds whole at load time (max_position x rotary_dim in the model dtype,
    model_executor/layers/rotary_embedding). Llama-3.1-8B's 32 MiB cache is the 0.03 GiB by which its TP=2 and TP=4
    ranks exceed 1/TP of the TP=1 load (7.51 and 3.77 vs 14.99 GiB, llm-d-planner 0.19 logs)."""
    return stage_checkpoint_bytes // tp + rope_cache_bytes

"""vLLM behaviours that differ by release, in one table, read from each release's own code.

Every minor release 0.6 .. 0.33 was read (the last patch of each, `RELEASES`); a rule lists the release where its
value changed and the file, function and line that show it. The engine asks `rules.<name>`; nothing else in
vllm-launch compares version numbers. Releases whose KV code can be run have golden tables
(tests/data/golden_kv/, tools/vllm_rules/golden.py) that check these rules against vLLM's own functions.
Versions older than 0.6 get the 0.6 rules; newer than 0.33 the 0.33 rules (`VersionRules.covered` says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

# The patch release whose code each minor release's rules were read from (PyPI `vllm`).
RELEASES: dict[tuple[int, int], str] = {
    (0, 6): "0.6.6.post1",
    (0, 7): "0.7.3",
    (0, 8): "0.8.5.post1",
    (0, 9): "0.9.2",
    (0, 10): "0.10.2",
    (0, 11): "0.11.2",
    (0, 12): "0.12.0",
    (0, 13): "0.13.0",
    (0, 14): "0.14.1",
    (0, 15): "0.15.1",
    (0, 16): "0.16.0",
    (0, 17): "0.17.1",
    (0, 18): "0.18.1",
    (0, 19): "0.19.1",
    (0, 20): "0.20.2",
    (0, 21): "0.21.0",
    (0, 22): "0.22.1",
    (0, 23): "0.23.0",
    (0, 24): "0.24.0",
    (0, 25): "0.25.1",
    (0, 26): "0.26.0",
    (0, 27): "0.27.1",
    (0, 28): "0.28.0",
    (0, 29): "0.29.0",
    (0, 30): "0.30.0",
    (0, 31): "0.31.0",
    (0, 32): "0.32.0",
    (0, 33): "0.33.0",
}
DEFAULT_VERSION = RELEASES[max(RELEASES)]
# The newest release whose behaviour these rules were checked against (vLLM's own source of that release).
NEWEST_KNOWN = DEFAULT_VERSION


def parse_version(text: str) -> tuple[int, int, int]:
    """`0.32.0`, `v0.11.0`, `0.10.1.1`, `0.32.0+cpu` -> (major, minor, patch)."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not match:
        raise ValueError(f"not a vLLM version: {text!r} (expected e.g. 0.32.0)")
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class Since:
    """From minor release `release` on (until the next entry), the rule has `value`; `source` shows it."""

    release: str
    value: Any
    source: str


# fmt: off
# One entry per rule: (release where the value changed, value, release file:function:line that shows it).
TABLE: dict[str, tuple[Since, ...]] = {
    # ---- engine -------------------------------------------------------------------------------------------
    # The engine `vllm serve` runs by default. V1 is opt-in (VLLM_USE_V1=1) before 0.8.
    "default_engine": (
        Since("0.6", "v0", "0.7.3 vllm/envs.py:504 VLLM_USE_V1 default '0'"),
        Since("0.8", "v1", "0.8.5.post1 vllm/envs.py:531 VLLM_USE_V1 default '1'"),
    ),
    # 0.8-0.10 fall back to V0 for configurations V1 does not support yet (_is_v1_supported_oracle).
    "v1_falls_back_for_pp": (
        Since("0.6", False, "no V1 default before 0.8"),
        Since("0.8", True, "0.8.5.post1 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1478 PP without Ray"),
        Since("0.10", False, "0.10.2 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1537 mp executor supports PP"),
    ),
    "v1_falls_back_for_mamba": (
        Since("0.6", False, "no V1 default before 0.8"),
        Since("0.8", True, "0.8.5.post1 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1403 is_v1_compatible; "
                           "0.9.2 :1403 has_inner_state -> _warn_or_fallback('Mamba')"),
        Since("0.10", False, "0.10.2 vllm/model_executor/models/qwen3_next.py, nemotron_h.py: V1 (no SupportsV0Only)"),
    ),
    # fp8 KV cache stays on V1 only where the attention backend stores fp8: FlashAttention 3 (Hopper), and from
    # 0.10 every Blackwell backend and FlashMLA/CUTLASS MLA.
    "v1_fp8_kv_capabilities": (
        Since("0.6", (), "no V1 default before 0.8"),
        Since("0.8", ((9, 0),), "0.8.5.post1 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1359 flash_attn_supports_fp8"),
        Since("0.10", ((9, 0), (10, 0)), "0.10.2 vllm/platforms/cuda.py:is_kv_cache_dtype_supported:522"),
        Since("0.11", None, "no V0 engine to fall back to from 0.11 (vllm/worker/ removed)"),
    ),
    "v1_min_compute_capability": (
        Since("0.6", None, "no V1 default before 0.8"),
        Since("0.8", (8, 0), "0.8.5.post1 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1353 'Compute Capability < 8.0'"),
        Since("0.10", None, "0.10.2 vllm/engine/arg_utils.py:_is_v1_supported_oracle: check removed"),
    ),
    # On CPU: V0 in 0.8 (non-CUDA falls back); V1 from 0.9, except for sliding-window models until 0.10.
    "v1_on_cpu": (
        Since("0.6", "no", "no V1 default before 0.8"),
        Since("0.8", "no", "0.8.5.post1 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1493 not_cuda -> V0"),
        Since("0.9", "without_sliding_window", "0.9.2 vllm/engine/arg_utils.py:_is_v1_supported_oracle:1499"),
        Since("0.11", "yes", "V0 removed in 0.11"),
    ),
    # ---- what the KV-size report prints ----------------------------------------------------------------------
    # "blocks_per_group": num_blocks // number of KV groups * smallest block size (V0 and dense V1 alike:
    # num_blocks * block_size); "concurrency_x_len": int(max_concurrency * max_model_len).
    "kv_tokens_report": (
        Since("0.6", "blocks_per_group", "0.6.6.post1 vllm/executor/gpu_executor.py:initialize_cache:76 '# GPU blocks'"),
        Since("0.8", "blocks_per_group", "0.8.5.post1 vllm/v1/core/kv_cache_utils.py:_get_kv_cache_config_uniform_type:632; "
                                         "0.9.2 :_get_kv_cache_config_uniform_page_size:871; 0.19.1 :_report_kv_cache_config:1304"),
        Since("0.20", "concurrency_x_len", "0.20.2 vllm/v1/core/kv_cache_utils.py:_report_kv_cache_config:1706"),
    ),
    # "tokens_over_len": num_blocks * block_size / max_model_len, blind to sliding windows and Mamba;
    # "blocks_per_request": num_blocks / blocks one full-length request takes from every group.
    "concurrency_formula": (
        Since("0.6", "tokens_over_len", "0.6.6.post1 vllm/executor/gpu_executor.py:initialize_cache:78"),
        Since("0.8", "tokens_over_len", "0.8.5.post1 vllm/v1/core/kv_cache_utils.py:_get_kv_cache_config_uniform_type:636"),
        Since("0.9", "blocks_per_request", "0.9.2 vllm/v1/core/kv_cache_utils.py:get_max_concurrency_for_kv_cache_config:626"),
    ),
    # Logged once per worker, before the workers' block counts are unified (several lines under PP).
    "kv_report_per_worker": (
        Since("0.6", False, "0.6.6.post1 vllm/executor/distributed_gpu_executor.py:initialize_cache: min over workers first"),
        Since("0.8", True, "0.10.2 vllm/v1/engine/core.py:_initialize_kv_caches:193 get_kv_cache_config per worker"),
        Since("0.11", False, "0.11.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs: report after unifying"),
    ),
    # ---- the start-up fit check and the estimated maximum length ---------------------------------------------
    # "v0": max_model_len <= num_gpu_blocks * block_size; "layer_sum": sum of every layer's own spec (window-aware,
    # no grouping, no padding) <= available; "first_group": group_size * page * blocks of the FIRST group only;
    # "group_sum": bytes_per_block * blocks of all groups.
    # V0 with PP splits the blocks among pp virtual engines: a request must fit in blocks // pp.
    "v0_fit_divides_by_pp": (
        Since("0.6", False, "0.7.3 vllm/worker/worker.py:raise_if_cache_size_invalid: block_size * num_gpu_blocks"),
        Since("0.8", True, "0.8.5.post1 vllm/worker/worker.py:raise_if_cache_size_invalid:553"),
    ),
    "fit_needed": (
        Since("0.6", "v0", "0.6.6.post1 vllm/worker/worker.py:raise_if_cache_size_invalid:486"),
        Since("0.8", "layer_sum", "0.8.5.post1 vllm/v1/core/kv_cache_utils.py:check_enough_kv_cache_memory:534; "
                                  "0.13.0 :check_enough_kv_cache_memory:696"),
        Since("0.14", "first_group", "0.14.1 vllm/v1/core/kv_cache_utils.py:_max_memory_usage_bytes_from_groups:1348"),
        Since("0.19", "group_sum", "0.19.1 vllm/v1/core/kv_cache_utils.py:_max_memory_usage_bytes_from_groups:1362"),
    ),
    # 0.14-0.16 check the whole model's groups against the smallest worker budget; otherwise each worker its own.
    "fit_scope": (
        Since("0.6", "worker", "0.6.6.post1 vllm/worker/worker.py:raise_if_cache_size_invalid (min blocks)"),
        Since("0.14", "model_min_worker", "0.14.1 vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs:1515 min(available_memory)"),
        Since("0.17", "worker", "0.17.1 vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs:1569 projected groups per worker"),
    ),
    # The null block the block pool keeps is taken out of the budget before the check.
    "fit_reserves_null_block": (
        Since("0.6", False, "0.6.6.post1 vllm/worker/worker.py:raise_if_cache_size_invalid:496"),
        Since("0.29", True, "0.29.0 vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs:2319 check_memory"),
    ),
    # ---- grouping of hybrid models ----------------------------------------------------------------------------
    # 0.8 has no hybrid allocator: a model mixing full and sliding layers is sized as all-full.
    "hybrid_allocator": (
        Since("0.6", False, "V0 block manager: one block table per sequence"),
        Since("0.8", False, "0.8.5.post1 vllm/v1/core/kv_cache_utils.py:unify_hybrid_kv_cache_specs:672"),
        Since("0.9", True, "0.9.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_config:945"),
    ),
    # Layers per group: the smallest bucket, or the largest when it is within this factor of the smallest.
    "group_size_slack": (
        Since("0.6", 1.0, "no grouping before 0.9"),
        Since("0.9", 1.0, "0.9.2 vllm/v1/core/kv_cache_utils.py:_get_kv_cache_config_uniform_page_size:826 min"),
        Since("0.12", 1.25, "0.12.0 vllm/v1/core/kv_cache_utils.py:_get_kv_cache_groups_uniform_page_size:1017"),
        Since("0.18", 1.5, "0.18.1 vllm/v1/core/kv_cache_utils.py:_get_kv_cache_groups_uniform_page_size:1043"),
    ),
    # Before 0.11 every worker groups its own layers (PP stages may group differently); from 0.11 the grouping is
    # decided once for the whole model and projected onto each worker.
    "grouping_scope": (
        Since("0.6", "worker", "0.10.2 vllm/v1/engine/core.py:_initialize_kv_caches:193"),
        Since("0.11", "model", "0.11.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_configs:1294"),
    ),
    # Layers of one kind with different page sizes: one group of summed pages from 0.11; pages of different kinds
    # unified (block size scaled by an integer ratio, or padded) from 0.12. Before that vLLM raises.
    "merges_uneven_pages": (
        Since("0.6", False, "0.10.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_config:1133 NotImplementedError"),
        Since("0.11", True, "0.11.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_groups:1165 UniformTypeKVCacheSpecs"),
    ),
    "unifies_page_sizes": (
        Since("0.6", False, "0.11.2 vllm/v1/core/kv_cache_utils.py:get_kv_cache_groups: no unification"),
        Since("0.12", True, "0.12.0 vllm/v1/core/kv_cache_utils.py:get_kv_cache_groups:1224 unify_kv_cache_spec_page_size"),
    ),
    # ---- which layer kinds the model runner keeps apart -------------------------------------------------------
    "chunked_local_spec": (
        Since("0.6", False, "V0: every attention layer stores the whole context"),
        Since("0.8", False, "0.9.2 vllm/v1/worker/gpu_model_runner.py:get_kv_cache_spec:2645 FullAttentionSpec"),
        Since("0.10", True, "0.10.2 vllm/v1/worker/gpu_model_runner.py:get_kv_cache_spec:3670 ChunkedLocalAttentionSpec"),
    ),
    # VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaulted to 0: chunked models ran without the hybrid
    # allocator (every layer full).
    "chunked_disables_hybrid": (
        Since("0.6", False, "no chunked spec before 0.10"),
        Since("0.10", True, "0.10.2 vllm/config/__init__.py:VllmConfig.__post_init__:3549; 0.13.0 vllm/envs.py:1432 default '0'"),
        Since("0.14", False, "0.14.1 vllm/envs.py:1468 default '1'"),
    ),
    "sliding_window_spec": (
        Since("0.6", False, "V0 (0.6/0.7): sliding layers take full-length blocks (CacheEngine.get_cache_block_size)"),
        Since("0.8", True, "0.8.5.post1 vllm/v1/worker/gpu_model_runner.py:get_kv_cache_spec:1752 SlidingWindowSpec"),
    ),
    # Tokens a sliding/chunked layer keeps beyond its window: max_num_batched_tokens, or (0.26+) every batch in
    # flight: max_concurrent_batches x max_num_batched_tokens.
    "inflight_term": (
        Since("0.6", "batched_tokens", "0.8.5.post1 vllm/v1/kv_cache_interface.py:SlidingWindowSpec.max_memory_usage_bytes"),
        Since("0.26", "concurrent_batches", "0.26.0 vllm/v1/kv_cache_interface.py:SlidingWindowSpec:568 max_in_flight_tokens; "
                                            "vllm/config/vllm.py:VllmConfig.max_concurrent_batches:512"),
    ),
    # Model Runner V2 (pp + 1 batches in flight with async scheduling): never before 0.26; 0.26-0.28 for generative
    # models that are neither Mamba hybrids nor MoE (a few MoE architectures listed); from 0.29 by default.
    "v2_model_runner": (
        Since("0.6", "never", "no V2 runner before 0.26"),
        Since("0.26", "dense_models", "0.26.0 vllm/config/vllm.py:VllmConfig._is_default_v2_model_runner_model:605"),
        Since("0.29", "default", "0.29.0 vllm/config/vllm.py:VllmConfig.use_v2_model_runner:645"),
    ),
    # ---- Mamba / linear attention --------------------------------------------------------------------------------
    # State blocks a request holds, with prefix caching on (the default). "one": a single state block;
    # "per_block_if_supported": models with Mamba prefix caching keep a state per block of the context, the others
    # run with prefix caching off (one block); "all_if_supported_else_align": mamba_cache_mode "all" (a state per
    # block) for those models, "align" (two, plus checkpoint blocks) for the rest; "align": every model.
    "mamba_cache_policy": (
        Since("0.6", "one", "0.10.2 vllm/v1/kv_cache_interface.py:MambaSpec.max_memory_usage_bytes (page_size_bytes)"),
        Since("0.11", "per_block_if_supported", "0.11.2 vllm/model_executor/models/config.py:MambaModelConfig:291-305; "
                                                "vllm/v1/kv_cache_interface.py:MambaSpec.max_memory_usage_bytes"),
        Since("0.15", "all_if_supported_else_align", "0.15.1 vllm/model_executor/models/config.py:MambaModelConfig:335"),
        Since("0.28", "align", "0.28.0 vllm/model_executor/models/config.py:MambaModelConfig:604"),
    ),
    # Architectures implementing SupportsMambaPrefixCaching (vllm/model_executor/models/*.py).
    "mamba_prefix_caching_architectures": (
        Since("0.6", (), "no Mamba prefix caching before 0.11"),
        Since("0.11", ("BambaForCausalLM", "FalconH1ForCausalLM", "GraniteMoeHybridForCausalLM", "JambaForCausalLM",
                       "Mamba2ForCausalLM", "MambaForCausalLM", "NemotronHForCausalLM", "Zamba2ForCausalLM"),
              "0.11.2 vllm/model_executor/models/{bamba,falcon_h1,granitemoehybrid,jamba,mamba,mamba2,nemotron_h,zamba2}.py"),
        Since("0.26", ("FalconH1ForCausalLM", "GraniteMoeHybridForCausalLM", "JambaForCausalLM", "Mamba2ForCausalLM",
                       "MambaForCausalLM", "NemotronHForCausalLM", "Zamba2ForCausalLM"),
              "0.26.0 vllm/model_executor/models/*.py (bamba.py no longer declares it)"),
        Since("0.33", ("Mamba2ForCausalLM", "MambaForCausalLM"), "0.33.0 vllm/model_executor/models/{mamba,mamba2}.py"),
    ),
    "mamba_checkpoint_blocks": (
        Since("0.6", False, "0.28.0 vllm/v1/kv_cache_interface.py:MambaSpec: no prefill checkpoint blocks"),
        Since("0.29", True, "0.29.0 vllm/v1/kv_cache_interface.py:MambaSpec:858 num_prefill_checkpoint_blocks"),
    ),
    # ---- defaults ---------------------------------------------------------------------------------------------------
    "default_gpu_memory_utilization": (
        Since("0.6", 0.9, "0.6.6.post1 vllm/engine/arg_utils.py:EngineArgs:121"),
        Since("0.20", 0.92, "0.20.2 vllm/config/cache.py:66 (0.19.1 :41 was 0.9)"),
    ),
    # (tokens, seqs) for `vllm serve`, first matching row: "v0" = V0 scheduler defaults (below); else rows of
    # (minimum device GiB, excluded name fragments, tokens, seqs).
    "batch_defaults": (
        Since("0.6", "v0", "0.6.6.post1 vllm/config.py:SchedulerConfig:1438; vllm/engine/arg_utils.py:213"),
        Since("0.8", ((70, (), 8192, 1024), (0, (), 2048, 256)),
              "0.8.5.post1 vllm/engine/arg_utils.py:_set_default_args_v1:1596"),
        Since("0.9", ((70, ("a100",), 8192, 1024), (0, (), 2048, 256)),
              "0.9.2 vllm/engine/arg_utils.py:_set_default_args_v1:1629"),
        Since("0.28", ((160, (), 16384, 1024), (70, ("a100",), 8192, 1024), (0, (), 2048, 256)),
              "0.28.0 vllm/engine/arg_utils.py:get_batch_defaults:2582"),
        Since("0.33", ((160, (), 16384, 1024), (70, ("a100", "gb10"), 8192, 1024), (0, (), 2048, 256)),
              "0.33.0 vllm/engine/arg_utils.py:get_batch_defaults:2986 (DGX Spark GB10 excluded)"),
    ),
    # CPU backend: (tokens, seqs) per worker, and whether they scale with TP x PP.
    "cpu_batch_defaults": (
        Since("0.6", (None, 256, False), "V0 scheduler defaults"),
        Since("0.9", (2048, 32, False), "0.9.2 vllm/engine/arg_utils.py:_set_default_args_v1:1673"),
        Since("0.10", (2048, 128, True), "0.10.2 vllm/engine/arg_utils.py:_set_default_args_v1:1714"),
    ),
    # Caps applied to defaulted values: max_num_seqs <= max_num_batched_tokens (0.10+);
    # max_num_batched_tokens <= max_num_seqs * max_model_len (0.11+).
    "caps_default_seqs": (
        Since("0.6", False, "0.9.2 vllm/engine/arg_utils.py: no cap"),
        Since("0.10", True, "0.10.2 vllm/engine/arg_utils.py:_set_default_args_v1:1742"),
    ),
    "caps_default_tokens": (
        Since("0.6", False, "0.10.2 vllm/config/scheduler.py: cap only when the scheduler picks the default"),
        Since("0.11", True, "0.11.2 vllm/engine/arg_utils.py:_set_default_args:2024"),
    ),
    "cpu_block_size": (
        Since("0.6", 16, "0.6.6.post1 vllm/platforms/cpu.py:check_and_update_config:64"),
        Since("0.8", 128, "0.8.5.post1 vllm/platforms/cpu.py:check_and_update_config:75 (128 with IPEX, the CPU build's)"),
    ),
    # Default block size of MLA models by GPU family (compute capability major): SM90 FlashMLA forces 64
    # (0.8-0.17); Blackwell CUTLASS MLA 128 (0.10-0.15) then FlashInfer MLA; 0.18+ takes the first backend's
    # preferred size (FLASH_ATTN_MLA keeps 16 on Hopper; FlashInfer MLA's smallest, 32, on Blackwell).
    "mla_block_size": (
        Since("0.6", {}, "0.7.3 vllm/platforms/cuda.py:check_and_update_config: 16 for every backend"),
        Since("0.8", {9: 64}, "0.8.5.post1 vllm/platforms/cuda.py:check_and_update_config:156"),
        Since("0.10", {9: 64, 10: 128}, "0.10.2 vllm/platforms/cuda.py:check_and_update_config:179"),
        Since("0.16", {9: 64, 10: 64}, "0.16.0 vllm/platforms/cuda.py:check_and_update_config:199 FlashInfer MLA"),
        Since("0.18", {10: 32}, "0.18.1 vllm/platforms/interface.py:update_block_size_for_backend:427; "
                                "vllm/platforms/cuda.py:_get_backend_priorities:70 FLASH_ATTN_MLA first on SM90"),
    ),
    # V0 pads an MLA latent row to 256 bytes (VLLM_CUDA_MEM_ALIGN_KV_CACHE, default on).
    "v0_mla": (
        Since("0.6", "none", "0.6.6.post1 vllm/config.py:ModelConfig.get_head_size:719 (DeepSeek head 256, no MLA)"),
        Since("0.7", "aligned_256", "0.7.3 vllm/worker/cache_engine.py:CacheEngine._align_cache:132"),
        Since("0.8", "latent", "0.8.5.post1 vllm/worker/cache_engine.py:get_cache_block_size (alignment removed)"),
    ),
    # Pipeline stages: the layers left over go to the last stage, or (0.8+) one each to the stages before it.
    "pp_remainder": (
        Since("0.6", "last", "0.7.3 vllm/distributed/utils.py:get_pp_indices:90"),
        Since("0.8", "before_last", "0.8.5.post1 vllm/distributed/utils.py:get_pp_indices:105"),
    ),
    # ---- which memory terms the profile subtracts (formulas: launcher/sizing/memory.py) ------------------------
    "subtracts_cudagraph_memory": (
        Since("0.6", False, "graphs captured after the KV cache is sized"),
        Since("0.20", True, "0.20.2 vllm/envs.py:1737 VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default '1' (0.19.1 :1655 '0')"),
    ),
    # NCCL/custom all-reduce buffers counted as non-torch memory at TP > 1 (from logs: 0.10.1.1 budgets TP runs
    # like single-GPU ones, obs003-obs005; 0.19 logs 2.07 GiB at TP=2, obs091).
    "profiles_tp_buffers": (
        Since("0.6", False, "tests/data/observations.json obs003-obs005 (0.10.1.1)"),
        Since("0.19", True, "tests/data/observations.json obs091, obs092 (0.19.0)"),
    ),
    "kv_cache_memory_bytes_flag": (
        Since("0.6", False, "0.9.2 vllm/engine/arg_utils.py: no --kv-cache-memory-bytes"),
        Since("0.10", True, "0.10.2 vllm/engine/arg_utils.py:344 kv_cache_memory_bytes"),
    ),
    # ---- max_model_len derivation (config/model.py _get_and_verify_max_len) -----------------------------------
    "max_target_positions_key": (
        Since("0.6", False, "0.6.6.post1 vllm/config.py:_get_and_verify_max_len:2281 possible_keys"),
        Since("0.7", True, "0.7.3 vllm/config.py:_get_and_verify_max_len:2453"),
    ),
    # A truthy model_max_length replaces the minimum over the keys (before 0.8 it is one of the keys).
    "model_max_length_replaces": (
        Since("0.6", False, "0.7.3 vllm/config.py:_get_and_verify_max_len:2453"),
        Since("0.8", True, "0.8.5.post1 vllm/config.py:_get_and_verify_max_len:3016 tmp_max_len := model_max_length"),
    ),
    "gemma3_skips_rope_scaling": (
        Since("0.6", False, "0.7.3 vllm/config.py:_get_and_verify_max_len (no Gemma 3)"),
        Since("0.8", True, "0.8.5.post1 vllm/config.py:_get_and_verify_max_len:3052"),
    ),
    # RoPE types whose factor does not multiply the derived length. Before 0.30 `yarn` sets the length to
    # original_max_position_embeddings x factor.
    "rope_non_scaling": (
        Since("0.6", ("su", "longrope", "llama3"), "0.6.6.post1 vllm/config.py:_get_and_verify_max_len:2341"),
        Since("0.30", ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling"),
              "0.30.0 vllm/config/model.py:_get_and_verify_max_len:2393"),
    ),
    "yarn_scales_max_len": (
        Since("0.6", True, "0.29.0 vllm/config/model.py:_get_and_verify_max_len:2384 rope_type == 'yarn'"),
        Since("0.30", False, "0.30.0 vllm/config/model.py:_get_and_verify_max_len:2393 (vllm PR #56446)"),
    ),
    # Without --max-model-len, LongRoPE models start at original_max_position_embeddings.
    "longrope_default_original": (
        Since("0.6", False, "0.10.2 vllm/config/__init__.py:_get_and_verify_max_len:2797"),
        Since("0.11", True, "0.11.2 vllm/config/model.py:_get_and_verify_max_len:2114"),
    ),
    # ---- request checks -------------------------------------------------------------------------------------------
    "clamps_max_tokens": (
        Since("0.6", False, "0.10.2 vllm/entrypoints/openai/serving_engine.py:649; 0.31.0 vllm/renderers/params.py:500 "
                            "(prompt + max_tokens > max_model_len is rejected)"),
        Since("0.32", True, "0.32.0 vllm/renderers/params.py:531 (only the prompt is checked); "
                            "vllm/entrypoints/serve/utils/api_utils.py:get_max_tokens clamps"),
    ),
    # ---- what the memory profile measures (formulas in memory.py) -------------------------------------------------
    # How the profile run's sampler warm-up filters top-k/top-p over one logits row per profiled sequence, which sets
    # its memory peak: "sort" for the V0 engine and again from 0.11 (0.12 made FlashInfer sampling opt-in and
    # apply_top_k_top_p sorts the vocabulary; 0.11's image measured the same, llm-d-benchmark
    # empirical-vllm-memory-results.md); "flashinfer" for V1 0.8-0.10 with FlashInfer installed, as the official images
    # have it; "triton" from 0.17 (filters in place).
    "sampler": (
        Since("0.6", "sort", "0.7.3 vllm/v1/sample/ops/topk_topp_sampler.py (V0 uses FlashInfer only with VLLM_USE_FLASHINFER_SAMPLER=1)"),
        Since("0.8", "flashinfer", "0.10.1.1 vllm/v1/sample/ops/topk_topp_sampler.py:TopKTopPSampler.__init__ "
                                   "(logged 'Using FlashInfer for top-p & top-k sampling')"),
        Since("0.11", "sort", "0.12.0 vllm/v1/sample/ops/topk_topp_sampler.py:apply_top_k_top_p (FlashInfer opt-in)"),
        Since("0.17", "triton", "0.17.1 vllm/v1/sample/ops/topk_topp_triton.py:apply_top_k_top_p_triton"),
    ),
    # Fused-MoE scratch buffers come from the persistent WorkspaceManager from 0.13, so they are still held during the
    # sampler warm-up; before, fused_experts allocated them per call.
    "moe_workspace_persists": (
        Since("0.6", False, "0.12.0 vllm/model_executor/layers/fused_moe/fused_moe.py:fused_experts allocates per call"),
        Since("0.13", True, "0.13.0 vllm/v1/worker/workspace.py; model_executor/layers/fused_moe/modular_kernel.py:_allocate_buffers"),
    ),
    # Non-torch memory a single-GPU profile run adds (library workspaces), as logged (not in the source): 0.13 GiB on
    # 0.10-0.17 (llm-d-benchmark 0.11 H100; llm-d-planner version sweep 0.15-0.17), 0.25 GiB from 0.18 (same sweep).
    "non_torch_gib": (
        Since("0.6", 0.13, "logged: tests/data/observations.json (llm-d-benchmark 0.11, llm-d-planner 0.15-0.17 sweep)"),
        Since("0.18", 0.25, "logged: tests/data/observations.json (llm-d-planner 0.18 and 0.19 runs)"),
    ),
    # What tensor parallelism adds to it while NCCL/custom all-reduce buffers are not profiled (profiles_tp_buffers
    # False), as logged: 0.12 GiB at TP=2 on 0.10.1.1 (obs003/obs004), 0.42 GiB on 0.11 (obs238).
    "tp_non_torch_gib": (
        Since("0.6", 0.12, "logged: tests/data/observations.json obs003, obs004 (0.10.1.1, TP=2)"),
        Since("0.11", 0.42, "logged: tests/data/observations.json obs238 (0.11)"),
        Since("0.19", 0.0, "NCCL buffers are profiled from 0.19 (profiles_tp_buffers)"),
    ),
    # Nemotron-H's SSM state dtype when neither --mamba-ssm-cache-dtype nor the config sets one: the model dtype
    # ("auto") until 0.12, float16 in 0.13-0.19, float32 from 0.20 (the only one "known to have no accuracy issues").
    "nemotron_h_ssm_cache_dtype": (
        Since("0.6", "auto", "0.12.0 vllm/model_executor/models/config.py: no NemotronH override"),
        Since("0.13", "float16", "0.13.0 vllm/model_executor/models/config.py:NemotronHForCausalLMConfig:493 getattr(..., 'float16')"),
        Since("0.20", "float32", "0.20.2 vllm/model_executor/models/config.py:NemotronHForCausalLMConfig:410"),
    ),
}
# fmt: on


@dataclass(frozen=True)
class VersionRules:
    version: tuple[int, int, int]
    release: str  # the release whose code these rules come from
    covered: bool  # False when the version is outside 0.6 .. 0.33 (nearest rules used)
    default_engine: str
    v1_falls_back_for_pp: bool
    v1_falls_back_for_mamba: bool
    v1_fp8_kv_capabilities: tuple[tuple[int, int], ...] | None
    v1_min_compute_capability: tuple[int, int] | None
    v1_on_cpu: str
    kv_tokens_report: str
    concurrency_formula: str
    kv_report_per_worker: bool
    v0_fit_divides_by_pp: bool
    fit_needed: str
    fit_scope: str
    fit_reserves_null_block: bool
    hybrid_allocator: bool
    group_size_slack: float
    grouping_scope: str
    merges_uneven_pages: bool
    unifies_page_sizes: bool
    chunked_local_spec: bool
    chunked_disables_hybrid: bool
    sliding_window_spec: bool
    inflight_term: str
    v2_model_runner: str
    mamba_cache_policy: str
    mamba_prefix_caching_architectures: tuple[str, ...]
    mamba_checkpoint_blocks: bool
    default_gpu_memory_utilization: float
    batch_defaults: Any
    cpu_batch_defaults: tuple[int | None, int, bool]
    caps_default_seqs: bool
    caps_default_tokens: bool
    cpu_block_size: int
    mla_block_size: dict[int, int]
    v0_mla: str
    pp_remainder: str
    subtracts_cudagraph_memory: bool
    profiles_tp_buffers: bool
    kv_cache_memory_bytes_flag: bool
    max_target_positions_key: bool
    model_max_length_replaces: bool
    gemma3_skips_rope_scaling: bool
    rope_non_scaling: tuple[str, ...]
    yarn_scales_max_len: bool
    longrope_default_original: bool
    clamps_max_tokens: bool
    sampler: str
    moe_workspace_persists: bool
    non_torch_gib: float
    tp_non_torch_gib: float
    nemotron_h_ssm_cache_dtype: str

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))

    def source(self, rule: str) -> str:
        """The citation of this rule's value for this release."""
        return _entry(rule, self.version[:2]).source


def _minor(release: str) -> tuple[int, int]:
    major, minor, _ = parse_version(release)
    return major, minor


def _entry(rule: str, minor: tuple[int, int]) -> Since:
    history = TABLE[rule]
    current = history[0]
    for since in history:
        if _minor(since.release) <= minor:
            current = since
    return current


def _check_table() -> None:
    names = {f.name for f in fields(VersionRules)} - {"version", "release", "covered"}
    if names != set(TABLE):
        raise RuntimeError(f"versions.TABLE and VersionRules disagree: {sorted(names ^ set(TABLE))}")
    for rule, history in TABLE.items():
        releases = [_minor(s.release) for s in history]
        if releases != sorted(releases) or releases[0] != min(RELEASES):
            raise RuntimeError(f"versions.TABLE[{rule!r}] must start at 0.6 and be in release order")


_check_table()


@cache  # the table is constant and the rules frozen; a layout search asks thousands of times
def rules_for(version: str | None) -> VersionRules:
    """The rules of this vLLM version (the newest release's when None)."""
    v = parse_version(version or DEFAULT_VERSION)
    minor = min(max(v[:2], min(RELEASES)), max(RELEASES))
    values = {rule: _entry(rule, minor).value for rule in TABLE}
    return VersionRules(version=v, release=RELEASES[minor], covered=v[:2] in RELEASES, **values)


# ---- decisions that combine several rules with the deployment ---------------------------------------------------

# Compute capability by GPU name (NVML/preset names): decides the MLA backend and whether 0.8-0.10 keep fp8 KV on V1.
_CAPABILITIES = (
    ("gb10", (12, 1)),
    ("rtx pro 6000", (12, 0)),
    ("5090", (12, 0)),
    ("b300", (10, 3)),
    ("b200", (10, 0)),
    ("gb200", (10, 0)),
    ("h200", (9, 0)),
    ("h100", (9, 0)),
    ("h800", (9, 0)),
    ("h20", (9, 0)),
    ("gh200", (9, 0)),
    ("l40", (8, 9)),
    ("l4", (8, 9)),
    ("4090", (8, 9)),
    ("ada", (8, 9)),
    ("a100", (8, 0)),
    ("a800", (8, 0)),
    ("a30", (8, 0)),
    ("a10", (8, 6)),
    ("a40", (8, 6)),
    ("3090", (8, 6)),
    ("a6000", (8, 6)),
    ("t4", (7, 5)),
    ("v100", (7, 0)),
)


def compute_capability(gpu_name: str) -> tuple[int, int] | None:
    name = gpu_name.lower()
    for fragment, capability in _CAPABILITIES:
        if fragment in name:
            return capability
    return None


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # "v0" or "v1"
    reason: str  # why V0 was chosen over the release's default V1 ("" otherwise)


def choose_engine(
    rules: VersionRules, *, device: str, gpu_name: str, pp: int, kv_cache_dtype: str, has_mamba: bool, has_sliding: bool
) -> EngineChoice:
    """The engine `vllm serve` runs on: the release's default, or V0 where 0.8-0.10 fall back to it."""
    if rules.default_engine == "v0":
        return EngineChoice("v0", "")
    if device == "cpu":
        if rules.v1_on_cpu == "no" or (rules.v1_on_cpu == "without_sliding_window" and has_sliding):
            return EngineChoice("v0", f"vLLM {rules.release} runs this model on the CPU backend's V0 engine")
        return EngineChoice("v1", "")
    capability = compute_capability(gpu_name)
    minimum = rules.v1_min_compute_capability
    if minimum and capability and capability < minimum:
        return EngineChoice("v0", f"vLLM {rules.release} falls back to V0 below compute capability 8.0")
    if rules.v1_falls_back_for_pp and pp > 1:
        return EngineChoice("v0", f"vLLM {rules.release} falls back to V0 for pipeline parallelism without Ray")
    if rules.v1_falls_back_for_mamba and has_mamba:
        return EngineChoice("v0", f"vLLM {rules.release} runs Mamba models on V0")
    fp8_ok = rules.v1_fp8_kv_capabilities
    if kv_cache_dtype.startswith("fp8") and fp8_ok is not None and (capability is None or capability[:1] not in {c[:1] for c in fp8_ok}):
        return EngineChoice("v0", f"vLLM {rules.release} keeps an fp8 KV cache on V1 only on Hopper/Blackwell")
    return EngineChoice("v1", "")


def uses_v2_model_runner(rules: VersionRules, *, is_moe: bool, has_mamba: bool, architecture: str) -> bool:
    if rules.v2_model_runner == "never":
        return False
    if rules.v2_model_runner == "dense_models":
        return not has_mamba and (not is_moe or architecture in V2_RUNNER_MOE_ARCHITECTURES)
    return True


# 0.26.0 vllm/config/vllm.py:68 DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES (0.27 adds Kimi-K3, 0.28 DeepSeek-V4).
V2_RUNNER_MOE_ARCHITECTURES = frozenset(
    {
        "DeepseekV2ForCausalLM",
        "DeepseekV4ForCausalLM",
        "GraniteMoeForCausalLM",
        "InklingForCausalLM",
        "InklingForConditionalGeneration",
        "KimiK3ForConditionalGeneration",
        "LongcatFlashNgramForCausalLM",
        "Qwen2MoeForCausalLM",
    }
)


def concurrent_batches(rules: VersionRules, *, pp: int, async_scheduling: bool, v2_runner: bool) -> int:
    """How many max_num_batched_tokens batches a sliding/chunked layer must keep room for (its in-flight term)."""
    if rules.inflight_term == "batched_tokens":
        return 1
    # 0.26.0 vllm/config/vllm.py:VllmConfig.max_concurrent_batches:512
    if async_scheduling:
        if v2_runner:
            return pp + 1
        if pp <= 1:
            return 2
    return pp


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

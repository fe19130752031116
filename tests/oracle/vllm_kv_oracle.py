"""Runs INSIDE the vLLM (CPU build) venv: feed vLLM's own KV-cache sizing code the layer specs of a case and
print what vLLM computes. Used by tests/test_differential_vllm.py; reads a JSON list of cases on stdin.

Each case: {"max_model_len", "inflight", "tp", "pp", "block_size", "mamba_cache_mode", "disable_hybrid",
"available": [bytes per worker], "workers": [[layer, ...] per worker]} with layer =
{"name", "kind", "kv_heads", "head_size", "dtype_bytes", "window", "mamba_shapes", "mamba_state_bytes_dtype"}.
Output per case: num_blocks (min over workers), max_concurrency, kv_cache_tokens, estimate (or null),
fits, bytes_per_block (per worker), group sizes.
"""

import json
import sys
from types import SimpleNamespace as NS

import torch
from vllm.config import CacheConfig
from vllm.v1.core import kv_cache_utils as ku
from vllm.v1.kv_cache_interface import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
)

DTYPES = {1: torch.float8_e4m3fn, 2: torch.bfloat16, 4: torch.float32}


def layer_spec(layer, block_size):
    dtype = DTYPES[layer["dtype_bytes"]]
    kind = layer["kind"]
    if kind == "mla":
        return MLAAttentionSpec(block_size=block_size, num_kv_heads=1, head_size=layer["head_size"], dtype=dtype)
    if kind == "mamba":
        shapes = tuple(tuple(s) for s in layer["mamba_shapes"])
        dtypes = tuple(DTYPES[b] for b in layer["mamba_dtype_bytes"])
        return MambaSpec(block_size=block_size, shapes=shapes, dtypes=dtypes, num_prefill_checkpoint_blocks=layer["checkpoint_blocks"])
    common = dict(block_size=block_size, num_kv_heads=layer["kv_heads"], head_size=layer["head_size"], dtype=dtype)
    if kind == "sliding":
        return SlidingWindowSpec(sliding_window=layer["window"], **common)
    if kind == "chunked":
        return ChunkedLocalAttentionSpec(attention_chunk_size=layer["window"], **common)
    return FullAttentionSpec(**common)


def run(case):
    cache = CacheConfig(block_size=case["block_size"])
    cache.mamba_cache_mode = case["mamba_cache_mode"]
    cache.kv_cache_layout = "NHD"  # FlashAttention's layout on CUDA (alias of LBNHC: layer-compact)
    config = NS(
        model_config=NS(max_model_len=case["max_model_len"], original_max_model_len=case["max_model_len"]),
        parallel_config=NS(decode_context_parallel_size=1, tensor_parallel_size=case["tp"], pipeline_parallel_size=case["pp"]),
        cache_config=cache,
        scheduler_config=NS(disable_hybrid_kv_cache_manager=case["disable_hybrid"], max_num_encoder_input_tokens=0),
        attention_config=NS(hisparse_config=None),
        speculative_config=None,
        num_prefill_lookahead_tokens=0,
        max_in_flight_tokens=case["inflight"],
    )
    workers = [{layer["name"]: layer_spec(layer, case["block_size"]) for layer in worker} for worker in case["workers"]]
    out = {"fits": True, "estimate": None}
    try:
        configs = ku.get_kv_cache_configs(config, workers, case["available"])
    except ValueError as exc:
        out["fits"] = False
        text = str(exc)
        marker = "estimated maximum model length is "
        out["estimate"] = int(text.split(marker)[1].split(".")[0]) if marker in text else 0
        out["error"] = text
        return out
    first = configs[0]
    out["num_blocks"] = first.num_blocks
    out["max_concurrency"] = ku.get_max_concurrency_for_kv_cache_config(config, first)
    out["kv_cache_tokens"] = int(out["max_concurrency"] * case["max_model_len"])
    out["groups"] = [len(g.layer_names) for g in first.kv_cache_groups]
    out["bytes_per_block"] = [ku._pool_bytes_per_block(config, c.kv_cache_groups) for c in configs]
    return out


if __name__ == "__main__":
    print(json.dumps([run(case) for case in json.load(sys.stdin)]))

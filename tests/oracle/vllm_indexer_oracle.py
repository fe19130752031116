"""Runs INSIDE the vLLM (CPU build) venv: the KV specs a DeepSeek-V3.2-style model allocates per layer, built the way
vLLM 0.32's `MLAAttention.get_kv_cache_spec` (layers/attention/mla_attention.py) and
`DeepseekV32IndexerCache.get_kv_cache_spec` (models/deepseek_v2.py) build them, sized by vLLM's own
`get_kv_cache_configs`. vLLM's CPU build cannot instantiate these models (sparse attention has no CPU backend), so
this checks the grouping of the two caches (one UniformTypeKVCacheSpecs group per layer pair) the plan relies on.

stdin: a JSON list of {"layers", "latent", "indexer_head", "block_size", "max_model_len", "inflight", "available"}.
stdout: per case num_blocks, max_concurrency, kv_cache_tokens, bytes_per_block, groups (or the estimate when short).
"""

import json
import sys
from types import SimpleNamespace as NS

import torch
from vllm.config import CacheConfig
from vllm.v1.core import kv_cache_utils as ku
from vllm.v1.kv_cache_interface import MLAAttentionSpec, SparseCacheRole


def run(case):
    block, length = case["block_size"], case["max_model_len"]
    cache = CacheConfig(block_size=block)
    cache.kv_cache_layout = "NHD"  # FlashAttention's layout on CUDA (layer-compact)
    config = NS(
        model_config=NS(max_model_len=length, original_max_model_len=length),
        parallel_config=NS(decode_context_parallel_size=1, tensor_parallel_size=1, pipeline_parallel_size=1),
        cache_config=cache,
        scheduler_config=NS(disable_hybrid_kv_cache_manager=False, max_num_encoder_input_tokens=0),
        attention_config=NS(hisparse_config=None),
        speculative_config=None,
        num_prefill_lookahead_tokens=0,
        max_in_flight_tokens=case["inflight"],
    )
    specs = {}
    for i in range(case["layers"]):
        common = dict(block_size=block, num_kv_heads=1, max_tp_shards=1)
        specs[f"model.layers.{i}.self_attn.attn"] = MLAAttentionSpec(
            **common, head_size=case["latent"], dtype=torch.bfloat16, cache_dtype_str="auto", is_index_group_leader=True
        )
        specs[f"model.layers.{i}.self_attn.indexer.k_cache"] = MLAAttentionSpec(
            **common, head_size=case["indexer_head"], dtype=torch.uint8, cache_role=SparseCacheRole.INDEXER
        )
    try:
        configs = ku.get_kv_cache_configs(config, [specs], [case["available"]])
    except ValueError as exc:
        text = str(exc)
        marker = "estimated maximum model length is "
        return {"fits": False, "estimate": int(text.split(marker)[1].split(".")[0]) if marker in text else 0}
    first = configs[0]
    concurrency = ku.get_max_concurrency_for_kv_cache_config(config, first)
    return {
        "fits": True,
        "num_blocks": first.num_blocks,
        "max_concurrency": concurrency,
        "kv_cache_tokens": int(concurrency * length),
        "bytes_per_block": ku._pool_bytes_per_block(config, first.kv_cache_groups),
        "groups": [len(g.layer_names) for g in first.kv_cache_groups],
    }


if __name__ == "__main__":
    print(json.dumps([run(case) for case in json.load(sys.stdin)]))

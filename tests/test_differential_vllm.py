"""Differential test: the engine's KV-cache numbers against vLLM 0.32's own sizing code.

For each case the engine plans with an explicit KV memory size (so only the KV arithmetic is compared);
the same layers, as vLLM `KVCacheSpec`s, go through vLLM's `get_kv_cache_configs` in the vLLM CPU venv
(tests/oracle/vllm_kv_oracle.py). Blocks, concurrency, KV tokens, the fit check and the estimated maximum
length must agree exactly, for every architecture family.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import model_configs as mc
import pytest

from launcher.hardware import GiB, inventory_from_size
from launcher.model.config import spec_from_config
from launcher.model.spec import ModelSpec
from launcher.sizing import kv
from launcher.sizing.plan import Requirements, make_plan
from launcher.sizing.versions import rules_for

ORACLE = Path(__file__).resolve().parent / "oracle" / "vllm_kv_oracle.py"
ORACLE_VERSION = "0.32.0"  # the vLLM CPU venv's release: the engine plans with its rules

CASES = [
    # (name, config, max_model_len, KV GiB per GPU, extra requirements)
    ("llama-3.1-8b", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 131072, 60, {}),
    ("llama-3.1-8b-100k", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 100000, 60, {}),
    ("llama-3.1-8b-fp8", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 131072, 10, {"kv_cache_dtype": "fp8"}),
    ("llama-3.1-8b-too-small", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 131072, 10, {}),
    ("llama-3.1-8b-tp2", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 65536, 20, {"tensor_parallel_size": 2}),
    ("llama-3.1-8b-pp3", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 65536, 4, {"pipeline_parallel_size": 3}),
    ("llama-3.1-70b-tp16-replicated", mc.catalog("meta-llama/Llama-3.1-70B-Instruct"), 32768, 8, {"tensor_parallel_size": 16}),
    ("qwen2.5-32b-tp4", mc.catalog("Qwen/Qwen2.5-32B-Instruct"), 32768, 30, {"tensor_parallel_size": 4}),
    ("starcoder-mqa-tp4", mc.MQA, 8192, 2, {"tensor_parallel_size": 4}),
    ("gpt-oss-20b", mc.catalog("openai/gpt-oss-20b"), 131072, 40, {}),
    ("gpt-oss-20b-no-hybrid", mc.catalog("openai/gpt-oss-20b"), 131072, 40, {"disable_hybrid_kv_cache_manager": True}),
    ("gpt-oss-20b-small", mc.catalog("openai/gpt-oss-20b"), 131072, 1, {}),
    ("gemma-3-27b", mc.GEMMA3_27B, 131072, 20, {}),
    ("gemma-3-4b-pp2", mc.catalog("google/gemma-3-4b-it"), 32768, 6, {"pipeline_parallel_size": 2}),
    ("gemma-3-27b-short", mc.GEMMA3_27B, 4096, 1, {"max_num_batched_tokens": 2048}),
    ("mistral-7b-v0.1", mc.MISTRAL_7B_V01, 32768, 4, {}),
    ("deepseek-v2-lite-mla", mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), 163840, 20, {}),
    ("deepseek-v2-lite-mla-tp2", mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), 32768, 3, {"tensor_parallel_size": 2}),
    ("llama-4-scout-chunked", mc.LLAMA4_SCOUT, 262144, 30, {"tensor_parallel_size": 8}),
    ("qwen3-next-gdn", mc.QWEN3_NEXT, 262144, 30, {}),
    ("qwen3-next-gdn-no-prefix-caching", mc.QWEN3_NEXT, 262144, 30, {"enable_prefix_caching": False}),
    ("nemotron-h-mamba2", mc.NEMOTRON_H, 8192, 2, {}),
    ("gemma-3n-shared-kv", mc.SHARED_KV, 32768, 3, {}),
]


def oracle_case(spec: ModelSpec, plan, req: Requirements) -> dict:
    """The same layers as vLLM KVCacheSpecs (built from the model facts, not from the engine's page sizes)."""
    tp, pp = req.tensor_parallel_size, req.pipeline_parallel_size
    elem = kv.kv_elem_bytes(req.kv_cache_dtype, "bfloat16", False)
    rules = rules_for(ORACLE_VERSION)
    layers = []
    for i, layer in enumerate(spec.layers):
        if layer.kind in ("shared", "none"):
            layers.append(None)
            continue
        entry = {
            "name": f"layers.{i}",
            "kind": layer.kind,
            "kv_heads": max(1, layer.kv_heads // tp),
            "head_size": layer.head_size,
            "dtype_bytes": elem,
            "window": layer.window,
        }
        if req.disable_hybrid_kv_cache_manager and layer.kind in ("sliding", "chunked"):
            entry["kind"] = "full"
        if layer.kind == "mamba":
            m = layer.mamba
            shapes = kv.mamba_state_shapes(m, tp)
            dtype_bytes = [2 if role == "conv" or m.ssm_dtype is None else 4 for _, role in shapes]
            entry.update(mamba_shapes=[list(s) for s, _ in shapes], mamba_dtype_bytes=dtype_bytes, checkpoint_blocks=m.align_blocks - 2)
        layers.append(entry)
    workers = []
    for stage in kv.split_layers(len(spec.layers), pp, rules):
        stage_layers = [layers[i] for i in stage if layers[i] is not None]
        workers.extend([stage_layers] * tp)
    return {
        "max_model_len": plan.max_model_len,
        "inflight": plan.inflight_tokens,
        "tp": tp,
        "pp": pp,
        "block_size": plan.block_size,
        "mamba_cache_mode": kv.mamba_cache_mode(rules, req.enable_prefix_caching, spec.architecture),
        "disable_hybrid": req.disable_hybrid_kv_cache_manager,
        "available": [req.kv_cache_memory_bytes] * len(workers),
        "workers": workers,
    }


@pytest.fixture(scope="module")
def compared(vllm_venv: Path) -> list[tuple[str, object, dict]]:
    planned, cases = [], []
    for name, config, length, gib, extra in CASES:
        spec = spec_from_config(config, name, weights_bytes=1, weights_source="test")
        req = Requirements(
            max_model_len=length, kv_cache_memory_bytes=gib * GiB, allow_long_max_model_len=True, vllm_version=ORACLE_VERSION, **extra
        )
        inv = inventory_from_size(80 * GiB, req.tensor_parallel_size * req.pipeline_parallel_size)
        plan = make_plan(spec, inv, req)
        planned.append((name, plan))
        cases.append(oracle_case(spec, plan, req))
    result = subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(ORACLE)], input=json.dumps(cases), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    return [(name, plan, answer) for (name, plan), answer in zip(planned, answers, strict=True)]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_engine_matches_vllm(compared, index: int) -> None:
    name, plan, vllm = compared[index]
    kv_problem = any("KV cache too small" in p or "No available memory" in p for p in plan.problems)
    assert kv_problem == (not vllm["fits"]), (name, plan.problems, vllm.get("error"))
    if not vllm["fits"]:
        assert plan.estimated_max_model_len == vllm["estimate"], name
        return
    assert plan.num_gpu_blocks == vllm["num_blocks"], name
    # One value per worker: pipeline stages holding different layer counts have different pages; the plan reports one.
    assert plan.bytes_per_block in vllm["bytes_per_block"], name
    if plan.pipeline_parallel_size == 1:
        assert set(vllm["bytes_per_block"]) == {plan.bytes_per_block}, name
    assert plan.max_concurrency == pytest.approx(vllm["max_concurrency"], rel=1e-12), name
    assert plan.kv_cache_tokens == vllm["kv_cache_tokens"], name
    assert plan.num_kv_groups == len(vllm["groups"]), name

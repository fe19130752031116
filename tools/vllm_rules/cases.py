"""The fixed case set of the golden KV tables, and the vLLM-side description of what the engine plans for a case.

A case is a model config plus requirements with an explicit KV memory size per worker, so that only the KV
arithmetic is compared (the profiled memory terms cannot be run without a GPU). `describe()` turns the engine's
plan into the inputs a release's own code takes: per worker, the layer specs as that release's model runner
builds them (kind, KV heads on the rank, head size, element bytes, window, Mamba state shapes and padding), and
the scheduler settings its KV functions read (block size, max_num_batched_tokens, async scheduling, ...).
Pure: no I/O; shared by tools/vllm_rules/golden.py and tests/test_golden_kv.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from launcher.hardware import GiB, inventory_from_preset
from launcher.model.architectures import text_of
from launcher.model.config import spec_from_config
from launcher.model.spec import ModelSpec
from launcher.sizing import kv
from launcher.sizing.plan import Plan, PlanError, Requirements, make_plan, model_dtype
from launcher.sizing.versions import VersionRules, rules_for

ROOT = Path(__file__).resolve().parents[2]
GPU = "H100-80GB"  # decides the MLA backend's block size and whether 0.8-0.10 keep fp8 KV on V1
_CATALOG = json.loads((ROOT / "launcher" / "data" / "catalog.json").read_text())


def catalog(repo: str) -> dict:
    return json.loads(json.dumps(_CATALOG[repo]["config"]))


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # catalog repo, or the name of a shape in tests/model_configs.py
    max_model_len: int
    kv_gib: float  # KV memory per worker
    extra: dict = field(default_factory=dict)  # further Requirements fields


CASES = (
    Case("dense", "meta-llama/Llama-3.1-8B-Instruct", 131072, 60),
    Case("dense-100k", "meta-llama/Llama-3.1-8B-Instruct", 100000, 60),
    Case("dense-too-small", "meta-llama/Llama-3.1-8B-Instruct", 131072, 10),
    Case("dense-no-memory", "meta-llama/Llama-3.1-8B-Instruct", 8192, 0),
    Case("fp8-kv", "meta-llama/Llama-3.1-8B-Instruct", 131072, 10, {"kv_cache_dtype": "fp8"}),
    Case("gqa-tp2", "meta-llama/Llama-3.1-8B-Instruct", 65536, 20, {"tensor_parallel_size": 2}),
    Case("gqa-tp16-replicated", "meta-llama/Llama-3.1-70B-Instruct", 32768, 8, {"tensor_parallel_size": 16}),
    Case("gqa-tp4", "Qwen/Qwen2.5-32B-Instruct", 32768, 30, {"tensor_parallel_size": 4}),
    Case("mqa-tp4", "MQA", 8192, 2, {"tensor_parallel_size": 4}),
    Case("pp3", "meta-llama/Llama-3.1-8B-Instruct", 65536, 4, {"pipeline_parallel_size": 3}),
    Case("mla", "deepseek-ai/DeepSeek-V2-Lite", 163840, 20),
    Case("mla-tp2-small", "deepseek-ai/DeepSeek-V2-Lite", 32768, 3, {"tensor_parallel_size": 2}),
    Case("sliding-hybrid", "openai/gpt-oss-20b", 131072, 40),
    Case("sliding-hybrid-small", "openai/gpt-oss-20b", 131072, 1),
    Case("sliding-hybrid-no-hybrid-manager", "openai/gpt-oss-20b", 131072, 40, {"disable_hybrid_kv_cache_manager": True}),
    Case("sliding-alternating", "GEMMA2_9B", 8192, 4),
    Case("sliding-5to1", "GEMMA3_27B", 131072, 20),
    Case("sliding-5to1-short", "GEMMA3_27B", 4096, 1, {"max_num_batched_tokens": 2048}),
    Case("sliding-pp2", "google/gemma-3-4b-it", 32768, 6, {"pipeline_parallel_size": 2}),
    Case("all-sliding", "MISTRAL_7B_V01", 32768, 4),
    Case("chunked", "LLAMA4_SCOUT", 262144, 30, {"tensor_parallel_size": 8}),
    Case("mamba-gdn-hybrid", "QWEN3_NEXT", 262144, 30),
    Case("mamba-gdn-hybrid-no-prefix-caching", "QWEN3_NEXT", 262144, 30, {"enable_prefix_caching": False}),
    Case("mamba2-hybrid", "NEMOTRON_H", 8192, 2),
    Case("shared-kv", "SHARED_KV", 32768, 3),
)


# google/gemma-2-9b config.json shapes, as quoted in tests/data/observations.json obs071 (sources listed there:
# mlc-llm model_preset.py MODEL_PRESETS['gemma2_9b'], TransformerLens hf_config_cache.py): 42 layers alternating
# sliding (4096) and full attention from layer 0.
GEMMA2_9B = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "num_hidden_layers": 42,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "hidden_size": 3584,
    "max_position_embeddings": 8192,
    "sliding_window": 4096,
    "torch_dtype": "bfloat16",
    "vocab_size": 256000,
    "intermediate_size": 14336,
}


def model_config(case: Case) -> dict:
    if "/" in case.model:
        return catalog(case.model)
    if case.model == "GEMMA2_9B":
        return json.loads(json.dumps(GEMMA2_9B))
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import model_configs

    return json.loads(json.dumps(getattr(model_configs, case.model)))


def requirements(case: Case, version: str) -> Requirements:
    return Requirements(
        max_model_len=case.max_model_len,
        kv_cache_memory_bytes=int(case.kv_gib * GiB),
        allow_long_max_model_len=True,
        vllm_version=version,
        **case.extra,
    )


def plan_case(config: dict, name: str, req: Requirements) -> tuple[ModelSpec, Plan]:
    spec = spec_from_config(config, name, weights_bytes=1, weights_source="golden")
    inv = inventory_from_preset(GPU, req.tensor_parallel_size * req.pipeline_parallel_size)
    return spec, make_plan(spec, inv, req)


def describe(config: dict, spec: ModelSpec, plan: Plan, req: Requirements, rules: VersionRules) -> dict:
    """What the release's own code is given for this plan (one entry per worker: TP ranks of each PP stage)."""
    tp, pp = req.tensor_parallel_size, req.pipeline_parallel_size
    dtype = model_dtype(spec, req.dtype)
    elem = kv.kv_elem_bytes(req.kv_cache_dtype, dtype, spec.kv_cache_quantized)
    base = {
        "engine": plan.engine,
        "max_model_len": plan.max_model_len,
        "tp": tp,
        "pp": pp,
        "block_size": plan.block_size,
        "max_num_batched_tokens": plan.max_num_batched_tokens,
        "async_scheduling": plan.async_scheduling,
        "v2_model_runner": plan.v2_model_runner,
        "available": [req.kv_cache_memory_bytes] * (tp * pp),
    }
    if plan.engine == "v0":
        return base | {
            "hf_config": text_of(config),
            "is_hybrid": any(layer.kind == "mamba" for layer in spec.layers),
            "kv_cache_dtype": req.kv_cache_dtype,
            "model_dtype_bytes": kv.KV_DTYPE_BYTES[dtype],
        }
    pages, _ = kv.layer_pages(
        spec.layers,
        tp=tp,
        block_size=plan.block_size,
        elem=elem,
        kv_cache_dtype=req.kv_cache_dtype,
        ssm_elem=kv.KV_DTYPE_BYTES[dtype],
        prefix_caching=req.enable_prefix_caching,
        rules=rules,
        architecture=spec.architecture,
    )
    mode = kv.mamba_cache_mode(rules, req.enable_prefix_caching, spec.architecture)
    padded = max((p.page_bytes for p in pages if p.kind == "mamba"), default=None)
    specs: list[dict] = []  # the distinct layer specs; a stage lists (layer index, spec index) pairs
    layers: list[tuple[int, int] | None] = []
    for i, layer in enumerate(spec.layers):
        if layer.kind in ("shared", "none"):  # no cache of their own (shared KV, MLP-only layers of hybrids)
            layers.append(None)
            continue
        kind = kv.spec_kind(layer.kind, rules)
        entry: dict = {"kind": kind, "dtype_bytes": elem}
        if kind == "mamba":
            assert layer.mamba is not None
            m = kv.release_state(layer.mamba, rules)
            state_bytes = kv.FIXED_DTYPE_BYTES[m.ssm_dtype] if m.ssm_dtype else kv.KV_DTYPE_BYTES[dtype]
            shapes = kv.mamba_state_shapes(m, tp)
            entry["mamba_shapes"] = [list(shape) for shape, _ in shapes]
            entry["mamba_dtype_bytes"] = [kv.KV_DTYPE_BYTES[dtype] if role == "conv" else state_bytes for _, role in shapes]
            entry["page_size_padded"] = padded
            entry["checkpoint_blocks"] = m.align_blocks - 2
            if rules.mamba_cache_policy == "per_block_if_supported":
                # 0.11-0.14: the Mamba spec's block size is mamba_block_size: the attention block size when the
                # model keeps a state per block, else max_model_len (one block) (models/config.py MambaModelConfig)
                entry["block_size"] = plan.block_size if mode == "all" else plan.max_model_len
        else:
            entry["kv_heads"] = 1 if kind == "mla" else max(1, layer.kv_heads // tp)
            entry["head_size"] = layer.head_size
            entry["window"] = layer.window if kind in ("sliding", "chunked") else None
        if entry not in specs:
            specs.append(entry)
        layers.append((i, specs.index(entry)))
    stages = [[list(layers[i]) for i in stage if layers[i] is not None] for stage in kv.split_layers(len(spec.layers), pp, rules)]
    return base | {
        "mamba_cache_mode": mode,
        "disable_hybrid": plan.hybrid_allocator_disabled,
        "layer_specs": specs,
        "stages": stages,  # each stage runs on tp workers with the same specs
    }


def compare(table: dict, case: dict) -> list[str]:
    """Differences between the engine and the release's own answer for one case ([] when they agree)."""
    req = Requirements(allow_long_max_model_len=True, **case["requirements"])
    try:
        spec, plan = plan_case(case["config"], case["name"], req)
    except PlanError as exc:
        refused = case.get("engine_refuses")
        return [] if refused and refused == str(exc) else [f"engine refuses: {exc}"]
    if "engine_refuses" in case:
        return ["engine plans a case it refused when the table was written"]
    rules = rules_for(table["release"])
    inputs = describe(case["config"], spec, plan, req, rules)
    if inputs != case["inputs"]:
        return ["the engine now builds different inputs: regenerate with tools/vllm_rules/golden.py"]
    vllm = case["vllm"]
    if "unsupported" in vllm:
        return [f"vLLM cannot size it ({vllm['unsupported']}) but the engine plans it"]
    kv_problem = any("KV cache too small" in p or "No available memory" in p for p in plan.problems)
    diffs = []
    if kv_problem == vllm["fits"]:
        diffs.append(f"fits: engine {not kv_problem}, vLLM {vllm['fits']}")
    if not vllm["fits"]:
        if plan.estimated_max_model_len != vllm["estimate"]:
            diffs.append(f"estimate: engine {plan.estimated_max_model_len}, vLLM {vllm['estimate']}")
        return diffs
    checks = {"num_blocks": (plan.num_gpu_blocks, vllm["num_blocks"]), "kv_cache_tokens": (plan.kv_cache_tokens, vllm["kv_cache_tokens"])}
    if "groups" in vllm:  # V0 has one block table, no groups
        checks["groups"] = (plan.num_kv_groups, len(vllm["groups"]))
    for key, (value, expected) in checks.items():
        if value != expected:
            diffs.append(f"{key}: engine {value}, vLLM {expected}")
    if "max_concurrency" in vllm:
        if not math.isclose(plan.max_concurrency, vllm["max_concurrency"], rel_tol=1e-12):
            diffs.append(f"max_concurrency: engine {plan.max_concurrency}, vLLM {vllm['max_concurrency']}")
    elif f"{plan.max_concurrency:.2f}" != f"{vllm['logged_concurrency']:.2f}":
        diffs.append(f"logged concurrency: engine {plan.max_concurrency:.2f}, vLLM {vllm['logged_concurrency']:.2f}")
    return diffs

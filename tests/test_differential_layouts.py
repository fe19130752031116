"""Differential test of layouts: the ranked TP x PP x DP rows against vLLM 0.32's own code, per rank.

For each architecture family the layout search runs on 4 GPUs with an explicit KV size per GPU (so the KV arithmetic
is what is compared, as in tests/test_differential_vllm.py). For a TP, a PP, a DP and a TP x DP row, one replica's
TP x PP workers (their layers, as vLLM KVCacheSpecs built from the model facts) go through vLLM's
`get_kv_cache_configs`; blocks, concurrency and KV tokens must be equal. Every DP engine sizes its own cache over its
own workers, all with the same layout and budget (vLLM 0.32 v1/engine/core.py:157: each EngineCore runs
_initialize_kv_caches), so the total is DP times one replica's.
vLLM's `get_pp_indices` gives each stage's layers, and for MoE models `FusedMoEParallelConfig.make` with
`determine_expert_map` gives each rank's share of the experts (tests/oracle/vllm_layout_oracle.py).
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
from launcher.sizing import kv, layouts
from launcher.sizing.plan import Plan, Requirements, expert_share, model_dtype, rope_cache_bytes

ORACLE = Path(__file__).resolve().parent / "oracle" / "vllm_layout_oracle.py"
GPUS = 4
WEIGHTS = 8 * GiB  # a nominal checkpoint: the KV size is explicit, the weights only feed the per-rank split checked below

FAMILIES = [
    # (family, config, max_model_len, KV GiB per GPU, layouts TP x PP x DP)
    ("dense", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), 65536, 6, [(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 1, 2)]),
    ("gqa-kv-replicated", mc.MQA, 8192, 1, [(2, 1, 1), (4, 1, 1), (1, 2, 1), (1, 1, 2), (2, 1, 2)]),
    ("mla", mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), 32768, 2, [(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 1, 2), (1, 1, 3)]),
    ("sliding-hybrid", mc.GEMMA3_27B, 32768, 10, [(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 1, 2)]),
    ("moe-expert-parallel", mc.catalog("openai/gpt-oss-20b"), 65536, 3, [(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 1, 2), (1, 1, 3)]),
]
CASES = [(family, shape) for family, _, _, _, shapes in FAMILIES for shape in shapes]


def kv_case(spec: ModelSpec, plan: Plan, req: Requirements) -> dict:
    """One data-parallel replica as vllm_kv_oracle reads it: its TP x PP workers' layers as vLLM would build them."""
    tp, pp = plan.tensor_parallel_size, plan.pipeline_parallel_size
    elem = kv.kv_elem_bytes(req.kv_cache_dtype, "bfloat16", False)
    layers = []
    for i, layer in enumerate(spec.layers):
        if layer.kind == "shared":
            layers.append(None)
            continue
        layers.append(
            {
                "name": f"layers.{i}",
                "kind": layer.kind,
                "kv_heads": max(1, layer.kv_heads // tp),  # vLLM replicates a KV head on TP / kv_heads ranks
                "head_size": layer.head_size,
                "dtype_bytes": elem,
                "window": layer.window,
            }
        )
    workers = []
    for stage in kv.split_layers(len(spec.layers), pp):
        workers.extend([[layers[i] for i in stage if layers[i] is not None]] * tp)
    return {
        "max_model_len": plan.max_model_len,
        "inflight": plan.inflight_tokens,
        "tp": tp,
        "pp": pp,
        "block_size": plan.block_size,
        "mamba_cache_mode": "align",
        "disable_hybrid": False,
        "available": [req.kv_cache_memory_bytes] * len(workers),
        "workers": workers,
    }


def planned() -> list[tuple[str, ModelSpec, layouts.Layout, Requirements]]:
    out = []
    for family, config, length, gib, shapes in FAMILIES:
        spec = spec_from_config(config, family, weights_bytes=WEIGHTS, weights_source="test")
        req = Requirements(max_model_len=length, kv_cache_memory_bytes=gib * GiB, allow_long_max_model_len=True)
        rows = {row.shape: row for row in layouts.search(spec, inventory_from_size(80 * GiB, GPUS), req, layouts.Fixed())}
        out += [(family, spec, rows[shape], req) for shape in shapes]
    return out


@pytest.fixture(scope="module")
def compared(vllm_venv: Path) -> list[tuple[str, ModelSpec, layouts.Layout, dict]]:
    rows = planned()
    cases = []
    for _, spec, row, req in rows:
        tp, pp, dp = row.shape
        cases.append(
            {
                "kv": [kv_case(spec, row.plan, req)],
                "num_layers": len(spec.layers),
                "pp": pp,
                "num_experts": spec.num_experts,
                "tp": tp,
                "dp": dp,
                "expert_parallel": row.plan.enable_expert_parallel,
            }
        )
    result = subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(ORACLE)], input=json.dumps(cases), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    return [(family, spec, row, answer) for (family, spec, row, _), answer in zip(rows, answers, strict=True)]


def test_the_cases_cover_every_family_and_kind_of_layout():
    shapes = {family: {shape for f, shape in CASES if f == family} for family, *_ in FAMILIES}
    for family, found in shapes.items():
        assert any(tp > 1 for tp, pp, dp in found) and any(pp > 1 for _, pp, _ in found) and any(dp > 1 for *_, dp in found), family
    assert any(layer.kind == "sliding" for layer in spec_from_config(mc.GEMMA3_27B, "g").layers)
    assert spec_from_config(mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), "d").layers[0].kind == "mla"
    assert spec_from_config(mc.catalog("openai/gpt-oss-20b"), "o").is_moe


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{f}-tp{s[0]}-pp{s[1]}-dp{s[2]}" for f, s in CASES])
def test_layout_matches_vllm_per_rank(compared, index: int) -> None:
    family, spec, row, vllm = compared[index]
    plan = row.plan
    tp, pp, dp = row.shape
    [replica] = vllm["replicas"]
    assert replica["fits"] == plan.kv_fits, (family, plan.problems, replica.get("error"))
    if not replica["fits"]:  # vLLM refuses to start: the same estimate of the longest length that fits
        assert plan.estimated_max_model_len == replica["estimate"], family
    else:
        assert plan.num_gpu_blocks == replica["num_blocks"], family
        assert plan.max_concurrency == pytest.approx(replica["max_concurrency"], rel=1e-12), family
        assert plan.kv_cache_tokens == replica["kv_cache_tokens"], family
        assert plan.num_kv_groups == len(replica["groups"]), family
        assert plan.total_concurrency == pytest.approx(dp * replica["max_concurrency"], rel=1e-12)
    assert [[r.start, r.stop] for r in kv.split_layers(len(spec.layers), pp)] == vllm["pp_ranges"], family
    if spec.is_moe:
        shares = vllm["expert_shares"]
        assert len(shares) == tp * dp
        assert expert_share(spec.num_experts, tp, dp, plan.enable_expert_parallel) == pytest.approx(max(shares), rel=1e-12)
        if pp == 1:  # the rank holding the most experts sets the budget: the rest split over TP, the experts over TP x DP,
            w = spec.weights  # and every rank holds the whole rotary cache
            rope = rope_cache_bytes(spec, model_dtype(spec, "auto"))
            expected = (w.total_bytes - w.expert_bytes) // tp + int(w.expert_bytes * max(shares)) + rope
            assert abs(plan.memory.weights - expected) <= 1, family

"""The KV spec read from config.json against what vLLM builds from the same config, per architecture family.

tests/data/arch/<family>.json holds a real config (or, where no public copy was at hand, transformers' default one,
said so in the file) that tools/vllm_arch/cases.py scales down; tools/vllm_arch/vllm_specs.py built each in vLLM's
CPU build with dummy weights and recorded, in tests/data/arch/vllm_golden.json, the KV-cache spec vLLM allocates
per layer and what vLLM's own `get_kv_cache_configs` makes of that spec for two budgets at each context length.
Here the reader must give the same layers, and the plan the same blocks, KV tokens, concurrency and estimated length.
The live test rebuilds a few families in the venv so that drift in vLLM shows up.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.hardware import GiB, Gpu, GpuInventory
from launcher.model import architectures as arch
from launcher.model.config import spec_from_config
from launcher.model.spec import LayerSpec, ModelSpec
from launcher.sizing import kv
from launcher.sizing.plan import Requirements, make_plan, model_dtype

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "vllm_arch"))
from arch_cases import GOLDEN, load_cases  # noqa: E402

CASES = {c["family"]: c for c in load_cases()}
VLLM = json.loads(GOLDEN.read_text())
BUILT = sorted(f for f, r in VLLM["cases"].items() if "error" not in r)
NOT_BUILT = sorted(f for f, r in VLLM["cases"].items() if "error" in r)
CPU = GpuInventory((Gpu(0, "CPU", 64 * GiB, 60 * GiB),), "host memory", device="cpu")
DTYPES = {"bfloat16": 2, "float16": 2, "float32": 4, "uint8": 1, "int8": 1, "float8_e4m3fn": 1}
KINDS = {
    "FullAttentionSpec": "full",
    "SlidingWindowSpec": "sliding",
    "ChunkedLocalAttentionSpec": "chunked",
    "MLAAttentionSpec": "mla",
    "MambaSpec": "mamba",
    "CrossAttentionSpec": "cross",
}


def spec_of(family: str) -> ModelSpec:
    return spec_from_config(CASES[family]["config"], family, weights_bytes=1, weights_source="test")


def layer_index(name: str) -> int:
    return int(re.search(r"(\d+)", name).group(1))  # model.layers.3.self_attn.attn, transformer.h.3..., 3.mixer


def vllm_layers(family: str) -> dict[int, list[tuple]]:
    """vLLM's specs grouped by decoder layer, each as (kind, heads, head size, value head size, window, dtype, shapes)."""
    out: dict[int, list[tuple]] = {}
    for name, s in VLLM["cases"][family]["layers"].items():
        kind = KINDS[s["type"]]
        if kind == "mamba":
            fact = (kind, 0, 0, 0, None, tuple(s["dtypes"]), tuple(tuple(x) for x in s["shapes"]))
        else:
            value = 0 if kind == "mla" else s["head_size_v"]
            fact = (
                kind,
                s["num_kv_heads"],
                s["head_size"],
                value,
                s.get("sliding_window") or s.get("attention_chunk_size"),
                s["dtype"],
                (),
            )
        out.setdefault(layer_index(name), []).append(fact)
    return {i: sorted(v, key=repr) for i, v in out.items()}


def our_layers(spec: ModelSpec) -> dict[int, list[tuple]]:
    dtype = model_dtype(spec, "auto")
    out: dict[int, list[tuple]] = {}
    for index, layer in kv.kv_layers(spec.layers):
        out.setdefault(index, []).append(describe(layer, dtype))
    return {i: sorted(v, key=repr) for i, v in out.items()}


def describe(layer: LayerSpec, dtype: str) -> tuple:
    if layer.kind == "mamba":
        assert layer.mamba is not None
        ssm = layer.mamba.ssm_dtype or dtype
        shapes = kv.mamba_state_shapes(layer.mamba, 1)
        return ("mamba", 0, 0, 0, None, tuple(dtype if role == "conv" else ssm for _, role in shapes), tuple(s for s, _ in shapes))
    value = 0 if layer.kind == "mla" else layer.value_size
    return (layer.kind, layer.kv_heads, layer.head_size, value, layer.window, layer.dtype or dtype, ())


# vLLM 0.32.0 CPU build, vllm/platforms/cpu.py:274-280: "CPU MLA backend requires block_size=16" (the decode kernel
# compiles only for 16); a CPU-only choice the plan's device rules leave to the caller.
CPU_MLA_BLOCK_SIZE = 16


def cpu_block_size(spec: ModelSpec) -> int | None:
    """The block size to plan with: CPU_MLA_BLOCK_SIZE for MLA models, else the plan's default."""
    return CPU_MLA_BLOCK_SIZE if any(layer.kind == "mla" for _, layer in kv.kv_layers(spec.layers)) else None


def test_the_golden_file_covers_every_case():
    assert set(VLLM["cases"]) == set(CASES), "regenerate: tools/vllm_arch/vllm_specs.py"
    assert VLLM["vllm"].startswith("0.32.0")
    assert len(BUILT) >= 40, BUILT


# Why vLLM's CPU build cannot build these (the reading of them rests on the vLLM source alone): a new failure, or one
# of these starting to build, shows up here.
CPU_BUILD_FAILURES = {
    "nemotron_h": "is_act_and_mul=False is supported only for CUDA, XPU and ROCm",  # its relu2 MLP
    "olmo_hybrid": "module 'triton' has no attribute 'set_allocator'",  # its GDN kernels need Triton
}


def test_families_vllm_cannot_build_on_cpu_say_why():
    assert set(NOT_BUILT) == set(CPU_BUILD_FAILURES)
    for family, reason in CPU_BUILD_FAILURES.items():
        assert reason in VLLM["cases"][family]["error"], family


@pytest.mark.parametrize("family", BUILT)
def test_layers_match_what_vllm_allocates(family):
    spec = spec_of(family)
    assert not spec.unverified, spec.unverified  # a real config of a known family is fully understood
    ours, theirs = our_layers(spec), vllm_layers(family)
    if all(re.search(r"layers\.\d+\.", name) for name in VLLM["cases"][family]["layers"]):
        assert ours == theirs  # layer by layer
    else:  # some hybrids name their mixers outside model.layers.N (Falcon-H1's model.2.mixer): the same caches overall
        assert sorted(f for v in ours.values() for f in v) == sorted(f for v in theirs.values() for f in v)


@pytest.mark.parametrize("family", BUILT)
def test_page_sizes_match_vllm(family):
    """Bytes per block of every layer, after vLLM's hybrid alignment (block size raised, Mamba pages padded)."""
    spec, built = spec_of(family), VLLM["cases"][family]
    dtype = model_dtype(spec, "auto")
    pages, block = kv.layer_pages(
        spec.layers,
        tp=1,
        block_size=cpu_block_size(spec) or 128,
        elem=kv.kv_elem_bytes("auto", dtype, spec.kv_cache_quantized),
        kv_cache_dtype="auto",
        ssm_elem=DTYPES[dtype],
        prefix_caching=True,
    )
    theirs = [s["page_size_bytes"] for s in built["layers"].values()]
    assert block == built["block_size"]
    assert sorted(p.page_bytes for p in pages) == sorted(theirs)


SCENARIOS = [(f, i) for f in BUILT for i in range(len(VLLM["cases"][f]["scenarios"]))]


@pytest.mark.parametrize(("family", "index"), SCENARIOS, ids=[f"{f}-{i}" for f, i in SCENARIOS])
def test_plan_matches_vllm_kv_config(family, index):
    """The plan against vLLM's `get_kv_cache_configs` on the spec vLLM built (not ours)."""
    want = VLLM["cases"][family]["scenarios"][index]
    spec = spec_of(family)
    req = Requirements(
        max_model_len=want["max_model_len"],
        kv_cache_memory_bytes=want["kv_cache_memory_bytes"],
        allow_long_max_model_len=True,
        block_size=cpu_block_size(spec),
    )
    plan = make_plan(spec, CPU, req)
    short = any("KV cache too small" in p or "No available memory" in p for p in plan.problems)
    assert short == (not want["fits"]), (plan.problems, want.get("error"))
    if not want["fits"]:
        assert plan.estimated_max_model_len == want["estimate"]
        return
    assert plan.num_gpu_blocks == want["num_blocks"]
    assert plan.bytes_per_block == want["bytes_per_block"]
    assert math.isclose(plan.max_concurrency, want["max_concurrency"], rel_tol=1e-12)
    assert plan.kv_cache_tokens == want["kv_cache_tokens"]
    assert plan.num_kv_groups == len(want["groups"])


def test_the_case_configs_are_the_real_ones_scaled():
    """Every case file names where its config comes from, and the scaling keeps the attention fields."""
    for family, case in CASES.items():
        assert case["copy"] and case["layers"] >= 1, family
        real = arch.text_of(case["real"])
        small = arch.text_of(case["config"])
        for key in ("num_attention_heads", "num_key_value_heads", "head_dim", "sliding_window", "kv_lora_rank", "attention_chunk_size"):
            assert real.get(key) == small.get(key), (family, key)


# --- never guess silently ---------------------------------------------------------------------------------------

BASE = {
    "hidden_size": 1024,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "num_hidden_layers": 4,
    "max_position_embeddings": 8192,
    "vocab_size": 1000,
}
SAMPLES = {
    arch.gpt_oss: {**BASE, "sliding_window": 128},
    arch.chatglm: {**BASE, "multi_query_attention": True, "multi_query_group_num": 2, "num_layers": 4},
    arch.dbrx: {"d_model": 1024, "n_heads": 8, "n_layers": 4, "attn_config": {"kv_n_heads": 2}},
    arch.falcon: {**BASE, "new_decoder_architecture": True, "num_kv_heads": 2},
    arch.mla: {**BASE, "kv_lora_rank": 512, "qk_rope_head_dim": 64},
    arch.nemotron_nas: {
        **BASE,
        "block_configs": [{"attention": {"no_op": i == 2, "n_heads_in_group": 4}, "ffn": {"ffn_mult": 1.0}} for i in range(4)],
    },
    arch.longcat_flash: {**BASE, "kv_lora_rank": 512, "qk_rope_head_dim": 64},
    arch.mla_indexed: {**BASE, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "index_head_dim": 128},
    arch.llama4: {**BASE, "attention_chunk_size": 8192},
    arch.gemma3n: {**BASE, "num_kv_shared_layers": 2, "sliding_window": 512},
    arch.gemma4: {**BASE, "sliding_window": 512, "global_head_dim": 256},
    arch.mamba: {"hidden_size": 1024, "num_hidden_layers": 4, "intermediate_size": 2048, "state_size": 16, "conv_kernel": 4},
    arch.mamba2: {"hidden_size": 1024, "num_hidden_layers": 4, "num_heads": 32, "head_dim": 64, "state_size": 128, "n_groups": 8},
    arch.nemotron_h: {
        **BASE,
        "hybrid_override_pattern": "M-M*",
        "mamba_num_heads": 32,
        "mamba_head_dim": 64,
        "n_groups": 8,
        "ssm_state_size": 128,
        "conv_kernel": 4,
    },
    arch.jamba: {**BASE, "attn_layer_period": 2, "attn_layer_offset": 1, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2},
    arch.granite_hybrid: {
        **BASE,
        "layer_types": ["mamba", "attention", "mamba", "attention"],
        "mamba_n_heads": 32,
        "mamba_d_head": 64,
        "mamba_d_state": 128,
        "mamba_d_conv": 4,
    },
    arch.falcon_h1: {**BASE, "mamba_n_heads": 32, "mamba_d_head": 64, "mamba_d_state": 128, "mamba_d_conv": 4},
    arch.gated_deltanet: {
        **BASE,
        "linear_num_key_heads": 16,
        "linear_key_head_dim": 128,
        "linear_num_value_heads": 32,
        "linear_value_head_dim": 128,
    },
    arch.qwen3_5: {
        **BASE,
        "linear_num_key_heads": 16,
        "linear_key_head_dim": 128,
        "linear_num_value_heads": 32,
        "linear_value_head_dim": 128,
        "mamba_ssm_dtype": "float32",
    },
    arch.minicpm3: {**BASE, "kv_lora_rank": 256, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32},
    arch.step3p5: {**BASE, "num_attention_groups": 8, "sliding_window": 512, "layer_types": ["sliding_attention", "full_attention"] * 2},
    arch.mimo_v2: {
        **BASE,
        "hybrid_layer_pattern": [0, 1, 1, 1],
        "swa_head_dim": 192,
        "swa_num_key_value_heads": 8,
        "swa_v_head_dim": 128,
        "v_head_dim": 128,
        "sliding_window_size": 128,
    },
    arch.exaone_moe: {**BASE, "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"] * 2},
    arch.kimi_linear: {
        **BASE,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "linear_attn_config": {"kda_layers": [1, 2, 3], "full_attn_layers": [4], "num_heads": 32, "head_dim": 128},
    },
    arch.kda_hybrid: {
        **BASE,
        "linear_num_key_heads": 16,
        "linear_key_head_dim": 128,
        "layer_types": ["linear_attention", "full_attention"] * 2,
    },
    arch.lfm2: {**BASE, "conv_L_cache": 3, "full_attn_idxs": [1, 3]},
    arch.zamba2: {
        **BASE,
        "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid"],
        "n_mamba_heads": 32,
        "mamba_d_state": 64,
        "mamba_d_conv": 4,
    },
    arch.bailing_linear: {**BASE, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "layer_group_size": 2},
}
READABLE = sorted(name for name, row in arch.ARCHITECTURES.items() if row.read is not None)
UNREAD = sorted(name for name, row in arch.ARCHITECTURES.items() if row.read is None)


def sample_for(name: str) -> dict:
    row = arch.ARCHITECTURES[name]
    return {**SAMPLES.get(row.read, BASE), "architectures": [name], "torch_dtype": "bfloat16"}


@pytest.mark.parametrize("name", READABLE)
def test_every_row_warns_of_an_unknown_attention_field(name):
    plain = spec_from_config(sample_for(name), name, weights_bytes=1, weights_source="test")
    assert not plain.unverified, plain.unverified
    spec = spec_from_config({**sample_for(name), "kv_frobnication_window": 4096}, name, weights_bytes=1, weights_source="test")
    assert any("`kv_frobnication_window`" in reason for reason in spec.unverified), spec.unverified
    plan = make_plan(spec, CPU, Requirements(max_model_len=4096, kv_cache_memory_bytes=GiB, allow_long_max_model_len=True))
    assert plan.fits and plan.unverified
    assert any("kv_frobnication_window" in p for p in plan.problems)


@pytest.mark.parametrize("name", UNREAD)
def test_rows_not_read_yet_are_unverified(name):
    spec = spec_from_config(sample_for(name), name, weights_bytes=1, weights_source="test")
    assert any("not yet read" in reason for reason in spec.unverified)


def test_unknown_architecture_unknown_layer_type_and_kv_scheme_are_unverified():
    unknown = spec_from_config({**BASE, "architectures": ["FrobnicatorForCausalLM"]}, "x", weights_bytes=1, weights_source="test")
    assert any("FrobnicatorForCausalLM" in r for r in unknown.unverified)
    layered = {**BASE, "architectures": ["LlamaForCausalLM"], "layer_types": ["full_attention", "frobnicated_attention"] * 2}
    assert any("frobnicated_attention" in r for r in spec_from_config(layered, "x", weights_bytes=1, weights_source="test").unverified)
    nvfp4 = {
        **BASE,
        "architectures": ["LlamaForCausalLM"],
        "quantization_config": {"quant_method": "modelopt", "kv_cache_quant_algo": "NVFP4"},
    }
    assert any("NVFP4" in r for r in spec_from_config(nvfp4, "x", weights_bytes=1, weights_source="test").unverified)
    fp8 = {**BASE, "architectures": ["LlamaForCausalLM"], "quantization_config": {"quant_method": "modelopt", "kv_cache_quant_algo": "FP8"}}
    spec = spec_from_config(fp8, "x", weights_bytes=1, weights_source="test")
    assert spec.kv_cache_quantized and not spec.unverified


def test_nemotron_h_reads_layers_block_type_when_the_pattern_is_absent():
    """Nemotron-3-Ultra's config.json gives only `layers_block_type` (no num_hidden_layers, no hybrid_override_pattern);
    transformers 5.19's NemotronHConfig derives the pattern vLLM reads from that list, so the layers are the pattern's."""
    with_pattern = {**SAMPLES[arch.nemotron_h], "architectures": ["NemotronHForCausalLM"], "hybrid_override_pattern": "MEM*"}
    listed = {k: v for k, v in with_pattern.items() if k not in ("hybrid_override_pattern", "num_hidden_layers")}
    listed["layers_block_type"] = ["mamba", "moe", "mamba", "attention"]
    expected = spec_from_config(with_pattern, "x", weights_bytes=1, weights_source="test").layers
    got = spec_from_config(listed, "x", weights_bytes=1, weights_source="test")
    assert [layer.kind for layer in got.layers] == ["mamba", "none", "mamba", "full"] and got.layers == expected and not got.unverified


def test_every_row_cites_a_file_of_the_vllm_release():
    listing = ROOT / "tests/data/arch/vllm-0.33.0-model-files.txt"
    files = {line for line in listing.read_text().splitlines() if line and not line.startswith("#")}
    assert len(files) > 900
    folders = {str(Path(f).parent) for f in files}
    for name, row in arch.ARCHITECTURES.items():
        cited = row.source.removeprefix("vLLM 0.33 ")
        assert row.source.startswith("vLLM 0.33 ") and (cited in files or cited in folders), (name, row.source)


# --- live: vLLM rebuilds a few families, so drift in vLLM's code shows up -----------------------------------------

LIVE = ["llama", "gemma3", "gemma4_31b", "qwen3_next", "deepseek_v2", "jamba"]


def test_vllm_still_builds_these_families_as_recorded(vllm_venv):
    script = ROOT / "tools" / "vllm_arch" / "vllm_specs.py"
    result = subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(script), "--only", ",".join(LIVE), "--out", "-"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    live = json.loads(result.stdout)["cases"]
    for family in LIVE:
        assert live[family] == VLLM["cases"][family], family


def test_serve_asks_for_force_before_launching_an_unverified_plan(tmp_path):
    from helpers import run_cli, write_model_dir

    config = {**CASES["llama"]["real"], "kv_frobnication_window": 4096}
    model = write_model_dir(tmp_path / "m", config, index_total=16060522496)
    common = ("--model", str(model), "--gpu", "H100-80GB", "--max-model-len", "4096", "--vllm-version", "0.32.0", "--device", "cuda")
    plan = run_cli("plan", *common, "--json")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["fits"] and not data["kv_spec_verified"] and "kv_frobnication_window" in data["kv_spec_unverified"][0]
    serve = (*common, "--port", "1", "--vllm", "/bin/true")
    refused = run_cli(*serve, cwd=tmp_path)
    assert refused.returncode == 1 and "unverified (see above); pass --force to start" in refused.stderr, refused.stderr
    assert "starting:" not in refused.stderr
    forced = run_cli(*serve, "--force", cwd=tmp_path)  # launches (/bin/true stands in for vllm and exits at once)
    assert "starting: /bin/true serve" in forced.stderr and "pass --force" not in forced.stderr, forced.stderr


# --- DeepSeek-V3.2 / GLM-5: MLA plus the indexer's key cache, which vLLM's CPU build cannot instantiate -------------

INDEXED = {
    **BASE,
    "architectures": ["DeepseekV32ForCausalLM"],
    "model_type": "deepseek_v32",
    "num_hidden_layers": 4,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "index_head_dim": 128,
    "torch_dtype": "bfloat16",
}


@pytest.mark.parametrize(("length", "gib"), [(8192, 1.0), (163840, 0.25)])
def test_indexer_cache_groups_with_mla_as_vllm_sizes_it(vllm_venv, length, gib):
    spec = spec_from_config(INDEXED, "v32", weights_bytes=1, weights_source="test")
    assert [(layer.kind, layer.head_size, layer.extra[0].head_size, layer.extra[0].dtype) for layer in spec.layers] == [
        ("mla", 576, 132, "uint8")
    ] * 4
    inv = GpuInventory((Gpu(0, "H100", 80 * GiB, 79 * GiB),), "H100")
    plan = make_plan(spec, inv, Requirements(max_model_len=length, kv_cache_memory_bytes=int(gib * GiB)))
    case = {"layers": 4, "latent": 576, "indexer_head": 132, "block_size": plan.block_size, "max_model_len": length}
    case.update(inflight=plan.inflight_tokens, available=int(gib * GiB))
    oracle = ROOT / "tests" / "oracle" / "vllm_indexer_oracle.py"
    result = subprocess.run(
        [str(vllm_venv / "bin" / "python"), str(oracle)], input=json.dumps([case]), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    want = json.loads(result.stdout.strip().splitlines()[-1])[0]
    if not want["fits"]:
        assert plan.estimated_max_model_len == want["estimate"]
        return
    assert (plan.num_gpu_blocks, plan.bytes_per_block, plan.kv_cache_tokens) == (
        want["num_blocks"],
        want["bytes_per_block"],
        want["kv_cache_tokens"],
    )
    assert math.isclose(plan.max_concurrency, want["max_concurrency"], rel_tol=1e-12) and plan.num_kv_groups == len(want["groups"])


@pytest.mark.parametrize(("max_window_layers", "sliding"), [(0, 4), (2, 2), (4, 0), (None, 0)])
def test_qwen2_slides_from_max_window_layers_on(max_window_layers, sliding):
    # transformers 5.19 configuration_qwen2.py: layer i slides when use_sliding_window and i >= max_window_layers, so 0
    # makes every layer slide (vLLM 0.33 qwen2.py accepts that: one layer type); a missing or null value means 28.
    config = {**BASE, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "use_sliding_window": True, "sliding_window": 512}
    if max_window_layers is not None:
        config["max_window_layers"] = max_window_layers
    layers = spec_from_config(config, "x", weights_bytes=1, weights_source="test").layers
    assert [layer.kind for layer in layers] == ["full"] * (4 - sliding) + ["sliding"] * sliding


def test_dbrx_heads_and_experts_are_read_from_its_own_keys():
    # DBRX names its heads n_heads, its width d_model and nests its experts in ffn_config (vLLM 0.33 dbrx.py:
    # total_num_heads = config.n_heads, FusedMoE(num_experts=ffn_config.moe_num_experts, top_k=ffn_config.moe_top_k)).
    config = json.loads((ROOT / "tests/data/arch/dbrx.json").read_text())["real"]
    spec = spec_from_config(config, "dbrx", weights_bytes=None)
    assert (spec.num_attention_heads, spec.hidden_size) == (16, 2048)
    assert spec.moe is not None and (spec.num_experts, spec.moe.experts_per_token, spec.moe.intermediate_size) == (4, 1, 3584)
    inv = GpuInventory(tuple(Gpu(i, "NVIDIA H100 80GB HBM3", 80 * GiB, 79 * GiB) for i in range(8)), "nvml")
    for tp, refused in ((2, False), (3, True), (6, True), (8, False)):
        problems = make_plan(spec, inv, Requirements(max_model_len=2048, tensor_parallel_size=tp)).problems
        assert any("must be divisible by tensor parallel size" in p for p in problems) == refused, (tp, problems)
    # 24 layers of 16 query heads of 128 and 4 experts of 3 x 2048 x 3584: the estimate counts them all.
    body = spec.weights.total_bytes - spec.weights.embedding_bytes - spec.weights.lm_head_bytes
    assert body == 24 * 2 * (2048 * 16 * 128 * 2 + 2 * 2048 * 1 * 128 + 3 * 2048 * 4 * 3584)

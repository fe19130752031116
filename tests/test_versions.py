"""The release rules (launcher/sizing/versions.py) and the decisions built on them.

Each expectation below restates what the cited release code does (the citation is in the rules table); the KV
arithmetic itself is checked against every release's own code in tests/test_golden_kv.py.
"""

import model_configs as mc
import pytest

from launcher.hardware import GiB, Gpu, GpuInventory, inventory_from_preset
from launcher.model.architectures import text_of
from launcher.model.config import context_facts, spec_from_config
from launcher.sizing.context import derive_context_limit
from launcher.sizing.plan import PlanError, Requirements, batch_defaults, default_block_size, make_plan
from launcher.sizing.versions import (
    DEFAULT_VERSION,
    RELEASES,
    TABLE,
    choose_engine,
    compute_capability,
    concurrent_batches,
    parse_version,
    rules_for,
    uses_v2_model_runner,
)


def test_default_is_the_newest_release():
    assert DEFAULT_VERSION == "0.33.0"
    assert rules_for(None).release == "0.33.0"


@pytest.mark.parametrize(
    ("version", "release", "covered"),
    [
        ("0.10.1.1", "0.10.2", True),
        ("v0.19.0", "0.19.1", True),
        ("0.32.0+cpu", "0.32.0", True),
        ("0.5.4", "0.6.6.post1", False),
        ("0.40.0", "0.33.0", False),
    ],
)
def test_a_version_gets_its_minor_release_rules(version, release, covered):
    rules = rules_for(version)
    assert (rules.release, rules.covered, rules.version) == (release, covered, parse_version(version))


def test_every_rule_cites_its_source_for_every_release():
    for minor in RELEASES:
        rules = rules_for(f"{minor[0]}.{minor[1]}.0")
        for rule in TABLE:
            assert rules.source(rule), (minor, rule)


def test_bad_version_is_a_clear_error():
    with pytest.raises(ValueError, match="not a vLLM version"):
        rules_for("latest")


@pytest.mark.parametrize(
    ("version", "gmu", "cudagraphs"),
    [("0.19.1", 0.9, False), ("0.20.0", 0.92, True), ("0.33.0", 0.92, True), ("0.6.6", 0.9, False)],
)
def test_defaults_change_with_0_20(version, gmu, cudagraphs):
    rules = rules_for(version)
    assert (rules.default_gpu_memory_utilization, rules.subtracts_cudagraph_memory) == (gmu, cudagraphs)


def _inv(preset: str, count: int = 1) -> GpuInventory:
    return inventory_from_preset(preset, count)


@pytest.mark.parametrize(
    ("version", "preset", "expected"),
    [
        ("0.8.5", "A100-80GB", (8192, 1024)),  # 0.8: >= 70 GiB, no A100 exception
        ("0.9.2", "A100-80GB", (2048, 256)),
        ("0.27.1", "B200", (8192, 1024)),
        ("0.28.0", "B200", (16384, 1024)),
        ("0.33.0", "H100-80GB", (8192, 1024)),
        ("0.33.0", "L40S", (2048, 256)),
    ],
)
def test_batch_defaults_by_release_and_gpu(version, preset, expected):
    req = Requirements(max_model_len=32768)
    assert batch_defaults(_inv(preset), 1, 32768, req, rules_for(version), "v1") == expected


def test_batch_defaults_cap_by_release():
    req = Requirements(max_model_len=4)
    # 0.11+: defaulted tokens <= seqs x max_model_len, then seqs <= tokens; 0.10 caps only the sequences.
    assert batch_defaults(_inv("H100-80GB"), 1, 4, req, rules_for("0.11.2"), "v1") == (4096, 1024)
    assert batch_defaults(_inv("H100-80GB"), 1, 4, req, rules_for("0.10.2"), "v1") == (8192, 1024)
    assert batch_defaults(_inv("H100-80GB"), 1, 4, req, rules_for("0.9.2"), "v1") == (8192, 1024)


def test_v0_batch_defaults_follow_chunked_prefill():
    rules = rules_for("0.6.6")
    req = Requirements(max_model_len=8192)
    assert batch_defaults(_inv("H100-80GB"), 1, 8192, req, rules, "v0") == (8192, 256)  # max(L, 2048), no chunking
    assert batch_defaults(_inv("H100-80GB"), 1, 65536, req, rules, "v0") == (2048, 256)  # > 32K: chunked prefill


def test_cpu_batch_defaults():
    cpu = GpuInventory((Gpu(0, "cpu", 64 * GiB, 60 * GiB),), "host memory", device="cpu")
    req = Requirements(max_model_len=4096)
    assert batch_defaults(cpu, 1, 4096, req, rules_for("0.9.2"), "v1") == (2048, 32)
    assert batch_defaults(cpu, 2, 4096, req, rules_for("0.10.2"), "v1") == (4096, 256)


MLA = spec_from_config(mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), "mla", weights_bytes=1, weights_source="t")
DENSE = spec_from_config(mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), "dense", weights_bytes=1, weights_source="t")


@pytest.mark.parametrize(
    ("version", "preset", "expected"),
    [
        ("0.8.5", "H100-80GB", 64),  # FlashMLA on Hopper
        ("0.8.5", "A100-80GB", 16),  # Triton MLA
        ("0.12.0", "B200", 128),  # CUTLASS MLA
        ("0.16.0", "B200", 64),  # FlashInfer MLA
        ("0.17.1", "H100-80GB", 64),
        ("0.18.1", "H100-80GB", 16),  # FLASH_ATTN_MLA's preferred block size
        ("0.18.1", "B200", 32),
    ],
)
def test_mla_block_size_by_release_and_gpu(version, preset, expected):
    assert default_block_size(MLA, _inv(preset), rules_for(version), "v1") == expected
    assert default_block_size(DENSE, _inv(preset), rules_for(version), "v1") == 16


def test_cpu_block_size():
    cpu = GpuInventory((Gpu(0, "cpu", 64 * GiB, 60 * GiB),), "host memory", device="cpu")
    assert default_block_size(DENSE, cpu, rules_for("0.7.3"), "v0") == 16
    assert default_block_size(DENSE, cpu, rules_for("0.11.2"), "v1") == 128


def _engine(version, *, device="cuda", gpu="H100 80GB HBM3", pp=1, kv="auto", mamba=False, sliding=False):
    choice = choose_engine(rules_for(version), device=device, gpu_name=gpu, pp=pp, kv_cache_dtype=kv, has_mamba=mamba, has_sliding=sliding)
    return choice.engine


def test_engine_choice():
    assert _engine("0.7.3") == "v0"
    assert _engine("0.8.5") == "v1"
    assert _engine("0.9.2", pp=2) == "v0" and _engine("0.10.2", pp=2) == "v1"
    assert _engine("0.9.2", gpu="Tesla T4") == "v0" and _engine("0.10.2", gpu="Tesla T4") == "v1"
    assert _engine("0.10.2", gpu="A100-SXM4-80GB", kv="fp8") == "v0"
    assert _engine("0.10.2", kv="fp8") == "v1" and _engine("0.11.2", gpu="A100-SXM4-80GB", kv="fp8") == "v1"
    assert _engine("0.9.2", mamba=True) == "v0" and _engine("0.10.2", mamba=True) == "v1"
    assert _engine("0.8.5", device="cpu") == "v0"
    assert _engine("0.9.2", device="cpu", sliding=True) == "v0" and _engine("0.9.2", device="cpu") == "v1"


def test_compute_capability_from_names():
    assert compute_capability("NVIDIA H100 80GB HBM3") == (9, 0)
    assert compute_capability("NVIDIA GH200 480GB") == (9, 0)
    assert compute_capability("NVIDIA A100-SXM4-40GB") == (8, 0)
    assert compute_capability("NVIDIA A10G") == (8, 6)
    assert compute_capability("mystery accelerator") is None


def test_inflight_batches():
    def batches(version, pp, async_scheduling=True, v2=False):
        return concurrent_batches(rules_for(version), pp=pp, async_scheduling=async_scheduling, v2_runner=v2)

    assert batches("0.25.1", 1) == 1  # max_num_batched_tokens only
    assert batches("0.26.0", 1) == 2
    assert batches("0.26.0", 2, v2=True) == 3
    assert batches("0.26.0", 2) == 2
    assert batches("0.32.0", 3, async_scheduling=False) == 3


def test_v2_model_runner_by_release():
    rules = rules_for("0.26.0")
    assert uses_v2_model_runner(rules, is_moe=False, has_mamba=False, architecture="LlamaForCausalLM")
    assert not uses_v2_model_runner(rules, is_moe=True, has_mamba=False, architecture="MixtralForCausalLM")
    assert uses_v2_model_runner(rules, is_moe=True, has_mamba=False, architecture="DeepseekV2ForCausalLM")
    assert not uses_v2_model_runner(rules, is_moe=False, has_mamba=True, architecture="NemotronHForCausalLM")
    assert uses_v2_model_runner(rules_for("0.29.0"), is_moe=True, has_mamba=False, architecture="MixtralForCausalLM")
    assert not uses_v2_model_runner(rules_for("0.25.1"), is_moe=False, has_mamba=False, architecture="LlamaForCausalLM")


def _limit(config: dict, version: str):
    cfg = text_of(config)
    return derive_context_limit(context_facts(cfg), str(cfg.get("model_type", "")), rules_for(version))


def test_yarn_stops_scaling_in_0_30():
    config = mc.catalog("Qwen/Qwen2.5-32B-Instruct")
    config["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert _limit(config, "0.29.0").derived == 131072
    assert _limit(config, "0.30.0").derived == 32768


def test_model_max_length_replaces_the_minimum_from_0_8():
    config = {"model_type": "cohere", "max_position_embeddings": 8192, "model_max_length": 131072}
    assert _limit(config, "0.7.3").derived == 8192
    assert (_limit(config, "0.8.5").derived, _limit(config, "0.8.5").key) == (131072, "model_max_length")


def test_max_target_positions_read_from_0_7():
    config = {"model_type": "whisper", "max_position_embeddings": 4096, "max_target_positions": 448}
    assert _limit(config, "0.6.6").derived == 4096
    assert _limit(config, "0.7.3").derived == 448


def test_longrope_default_from_0_11():
    config = {
        "model_type": "phi3",
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "rope_scaling": {"type": "su", "short_factor": [1.0], "long_factor": [1.0]},
    }
    assert (_limit(config, "0.10.2").derived, _limit(config, "0.10.2").default) == (131072, 131072)
    assert (_limit(config, "0.11.2").derived, _limit(config, "0.11.2").default) == (131072, 4096)


def _plan(config, version, **extra):
    spec = spec_from_config(config, "m", weights_bytes=1, weights_source="t")
    req = Requirements(vllm_version=version, allow_long_max_model_len=True, **extra)
    return make_plan(spec, _inv("H100-80GB", req.tensor_parallel_size * req.pipeline_parallel_size), req)


def test_sliding_window_hybrid_report_on_0_10():
    """0.10 logs blocks per group x block size for a hybrid model, not concurrency x max_model_len (the +59%)."""
    config = mc.catalog("openai/gpt-oss-20b")
    old = _plan(config, "0.10.1.1", max_model_len=8192, kv_cache_memory_bytes=20 * GiB, max_num_batched_tokens=2048)
    new = _plan(config, "0.20.2", max_model_len=8192, kv_cache_memory_bytes=20 * GiB, max_num_batched_tokens=2048)
    assert old.num_kv_groups == new.num_kv_groups == 2
    assert old.kv_cache_tokens == old.num_gpu_blocks // 2 * 16
    assert new.kv_cache_tokens == int(new.max_concurrency * 8192)
    assert new.kv_cache_tokens > 1.5 * old.kv_cache_tokens


def test_v0_plans_say_so():
    plan = _plan(mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), "0.9.2", max_model_len=8192, pipeline_parallel_size=2)
    assert plan.engine == "v0"
    assert any("falls back to V0" in note for note in plan.notes)


def test_mla_before_0_7_is_refused_clearly():
    with pytest.raises(PlanError, match="predates MLA"):
        _plan(mc.catalog("deepseek-ai/DeepSeek-V2-Lite"), "0.6.6", max_model_len=8192)


def test_kv_cache_memory_bytes_flag_exists_from_0_10():
    config = mc.catalog("meta-llama/Llama-3.1-8B-Instruct")
    old = _plan(config, "0.9.2", max_model_len=8192, kv_cache_memory_bytes=20 * GiB)
    new = _plan(config, "0.10.2", max_model_len=8192, kv_cache_memory_bytes=20 * GiB)
    assert any("no --kv-cache-memory-bytes" in p for p in old.problems)
    assert new.fits

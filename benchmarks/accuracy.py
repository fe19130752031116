"""Accuracy of the sizing engine against real vLLM start-up logs (tests/data/observations.json).

Two checks per observation whose model config is known:
  1. KV tokens from the *logged* available KV memory (the KV arithmetic alone): within +-1% (log rounding).
  2. KV tokens from *total GPU memory* through the whole memory model: within +-5%.
Prints one line per observation and the totals. Run: python benchmarks/accuracy.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from launcher.hardware import GiB, Gpu, GpuInventory, inventory_from_preset
from launcher.model.config import spec_from_config
from launcher.sizing.plan import Requirements, make_plan

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "observations.json"
GPU_NAMES = [
    ("a100 40", "A100-40GB"),
    ("a100 80", "A100-80GB"),
    ("4090", "RTX-4090"),
    ("3090", "RTX-3090"),
    ("l40s", "L40S"),
    ("h100", "H100-80GB"),
    ("a6000", None),
]


def version_of(text: str | None) -> str | None:
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text or "")
    return match[1] if match else None


def inventory_for(obs: dict) -> GpuInventory | None:
    count = max(obs["gpu_count"] or 1, (obs["tensor_parallel_size"] or 1) * (obs["pipeline_parallel_size"] or 1))
    name = (obs["gpu_type"] or "").lower()
    if obs["total_gpu_memory_gib"]:
        total = int(obs["total_gpu_memory_gib"] * GiB)
        label = next((p for k, p in GPU_NAMES if k in name), None) or "GPU"
        return GpuInventory(tuple(Gpu(i, label, total, total) for i in range(count)), "log")
    preset = next((p for k, p in GPU_NAMES if k in name), None)
    return inventory_from_preset(preset, count) if preset else None


def requirements(obs: dict, **extra) -> Requirements:
    tokens = obs["max_num_batched_tokens"]
    return Requirements(
        max_model_len=obs["max_concurrency_tokens"] or obs["max_model_len"],
        gpu_memory_utilization=obs["gpu_memory_utilization"],
        tensor_parallel_size=obs["tensor_parallel_size"] or 1,
        pipeline_parallel_size=obs["pipeline_parallel_size"] or 1,
        kv_cache_dtype=obs["kv_cache_dtype"] if obs["kv_cache_dtype"] in ("fp8",) else "auto",
        block_size=obs["block_size"] if obs["block_size"] in (16, 32) else None,
        max_num_batched_tokens=tokens,
        max_num_seqs=256 if tokens == 2048 else None,
        vllm_version=version_of(obs["vllm_version"]),
        allow_long_max_model_len=True,
        **extra,
    )


def checkpoint_bytes(obs: dict, observations: list[dict]) -> int | None:
    """Logged weights are per rank: for TP/PP runs take the same model's single-GPU log."""
    if (obs["tensor_parallel_size"] or 1) * (obs["pipeline_parallel_size"] or 1) == 1:
        return int(obs["weights_gib"] * GiB) if obs["weights_gib"] else None
    single = [
        o
        for o in observations
        if o["model"] == obs["model"]
        and o["weights_gib"]
        and o["dtype"] == obs["dtype"]
        and (o["tensor_parallel_size"] or 1) * (o["pipeline_parallel_size"] or 1) == 1
    ]
    return int(single[0]["weights_gib"] * GiB) if single else int(obs["weights_gib"] * obs["tensor_parallel_size"] * GiB)


def main() -> int:
    observations = json.loads(DATA.read_text())["observations"]
    exact_ok = exact_n = total_ok = total_n = 0
    print(f"{'id':<7} {'model':<34} {'logged':>10} {'from-avail':>10} {'err%':>6} {'from-total':>10} {'err%':>6}")
    for obs in observations:
        if not obs["config"] or not obs["kv_cache_tokens"] or not obs["max_concurrency_tokens"] and not obs["max_model_len"]:
            continue
        if obs["dtype"] == "float32":
            continue  # the logged run forced fp32 weights; its config is bf16
        spec = spec_from_config(obs["config"], obs["model"], weights_bytes=checkpoint_bytes(obs, observations), weights_source="log")
        inv = inventory_for(obs) or inventory_from_preset("H100-80GB", 1)
        logged = obs["kv_cache_tokens"]
        row = f"{obs['id']:<7} {obs['model'][:34]:<34} {logged:>10,}"
        if obs["available_kv_cache_gib"]:
            plan = make_plan(spec, inv, requirements(obs, kv_cache_memory_bytes=int(obs["available_kv_cache_gib"] * GiB)))
            err = (plan.kv_cache_tokens - logged) / logged * 100
            exact_n += 1
            exact_ok += abs(err) <= 1.0
            row += f" {plan.kv_cache_tokens:>10,} {err:>6.2f}"
        else:
            row += f" {'-':>10} {'-':>6}"
        if not version_of(obs["vllm_version"]):
            row += "  (version not logged: no rules to apply)"
        elif inventory_for(obs) and obs["weights_gib"] and obs["gpu_memory_utilization"]:
            plan = make_plan(spec, inv, requirements(obs))
            err = (plan.kv_cache_tokens - logged) / logged * 100
            total_n += 1
            total_ok += abs(err) <= 5.0
            row += f" {plan.kv_cache_tokens:>10,} {err:>6.2f}"
        print(row)
    print(f"\nKV tokens from logged KV memory within +-1%: {exact_ok}/{exact_n}")
    print(
        f"KV tokens from total GPU memory within +-5%: {total_ok}/{total_n} of the cases with a logged version "
        f"({100 * total_ok / max(1, total_n):.0f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

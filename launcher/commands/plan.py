"""`vllm-launch plan`: predict what vLLM will do, and whether it fits."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import replace

from launcher import gpus as gpu_adapter
from launcher.errors import UserError
from launcher.hardware import GPU_PRESETS, GiB, Gpu, GpuInventory, find_preset, inventory_from_preset, inventory_from_size, preset_names
from launcher.inputs import check_against_model, check_plan
from launcher.installed import InstalledVllm, find_vllm
from launcher.model.reader import read_model
from launcher.output import emit
from launcher.report import plan_json, plan_text, vllm_config_yaml
from launcher.settings import PlanSettings
from launcher.sizing import layouts
from launcher.sizing.plan import Plan, Requirements, make_plan

GPUS_PER_NODE = 8  # capacity planning without --gpus looks for layouts of up to one 8-GPU node


def host_inventory() -> GpuInventory:
    import psutil

    vm = psutil.virtual_memory()
    return GpuInventory((Gpu(0, "CPU (host memory)", vm.total, vm.available),), "host memory", device="cpu")


def gpu_types(s: PlanSettings) -> list[str]:
    """--gpu as given: one preset, a comma-separated list of them, or `all` (every preset)."""
    if not s.gpu:
        return []
    if s.gpu.strip().lower() == "all":
        return list(GPU_PRESETS)
    names = [name.strip() for name in s.gpu.split(",") if name.strip()]
    unknown = [name for name in names if find_preset(name) is None]
    if unknown or not names:
        raise UserError(
            f"unknown GPU {', '.join(map(repr, unknown or [s.gpu]))}",
            "presets carry each GPU's memory as CUDA reports it",
            f"use one of: {', '.join(preset_names())} (several: comma-separated; every preset: all); or --gpu-memory SIZE --gpus N",
        )
    return names


def capacity_planning(s: PlanSettings) -> bool:
    """Planning for GPUs you do not have yet, without --gpus: several GPU types, or a GPU and a --min-concurrency target,
    ask how many GPUs, in which layout."""
    offline = bool(s.gpu or s.gpu_memory) and s.gpus is None
    return offline and (len(gpu_types(s)) > 1 or "min_concurrency" in s.model_fields_set)


def layout_count(s: PlanSettings) -> int:
    return s.tensor_parallel_size * s.pipeline_parallel_size * s.data_parallel_size


def inventory_for(s: PlanSettings, cpu: bool, gpu: str | None = None) -> GpuInventory:
    count = s.gpus or (GPUS_PER_NODE if capacity_planning(s) else layout_count(s))
    if cpu:
        return host_inventory()
    if s.gpu:
        return inventory_from_preset(gpu or gpu_types(s)[0], count, max_gpus=0 if s.gpus else GPUS_PER_NODE)
    if s.gpu_memory:
        return inventory_from_size(s.gpu_memory, count, max_gpus=0 if s.gpus else GPUS_PER_NODE)
    return gpu_adapter.require_inventory()


def fixed_layout(s: PlanSettings) -> layouts.Fixed:
    """What the user set (flags, environment or config file): kept by the layout search."""
    given = s.model_fields_set
    return layouts.Fixed(
        s.tensor_parallel_size if "tensor_parallel_size" in given else None,
        s.pipeline_parallel_size if "pipeline_parallel_size" in given else None,
        s.data_parallel_size if "data_parallel_size" in given else None,
        s.enable_expert_parallel if "enable_expert_parallel" in given else None,
    )


def requirements_for(s: PlanSettings, version: str | None) -> Requirements:
    if s.max_model_len is None and (s.prompt is None or s.completion is None):
        raise UserError(
            "no context size given",
            "max_model_len = prompt + completion + buffer",
            "pass --prompt N --completion N (and optionally --buffer N), or --max-model-len N",
        )
    if s.max_model_len is not None and (s.prompt is not None or s.completion is not None):
        raise UserError("--max-model-len and --prompt/--completion both given", "they say the same thing two ways", "pass one or the other")
    if s.max_model_len_cap is not None and s.max_model_len != -1:
        raise UserError(
            "--max-model-len-cap without --max-model-len auto",
            "the cap bounds the length that auto chooses",
            "add --max-model-len auto, or drop --max-model-len-cap",
        )
    prompt = s.prompt
    if s.turns and prompt is not None and s.completion is not None:
        # The last turn's prompt holds every earlier turn's completion and observation.
        prompt += (s.turns - 1) * (s.completion + s.observation)
    return Requirements(
        max_model_len=s.max_model_len,
        max_model_len_cap=s.max_model_len_cap,
        prompt=prompt,
        completion=s.completion,
        buffer=s.buffer,
        gpu_memory_utilization=s.gpu_memory_utilization,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        dtype=s.dtype,
        kv_cache_dtype=s.kv_cache_dtype,
        block_size=s.block_size,
        max_num_batched_tokens=s.max_num_batched_tokens,
        max_num_seqs=s.max_num_seqs,
        kv_cache_memory_bytes=s.kv_cache_memory_bytes,
        min_concurrency=s.min_concurrency,
        enforce_eager=s.enforce_eager,
        enable_prefix_caching=s.enable_prefix_caching,
        disable_hybrid_kv_cache_manager=s.disable_hybrid_kv_cache_manager,
        allow_long_max_model_len=s.allow_long_max_model_len,
        vllm_version=version,
        served_model_name=s.served_model_name,
        hf_overrides=s.hf_overrides,
        data_parallel_size=s.data_parallel_size,
        enable_expert_parallel=s.enable_expert_parallel,
    )


def build_plan(s: PlanSettings, installed: InstalledVllm | None = None) -> Plan:
    """Settings -> plan, through the adapters (model reader, GPUs, installed vLLM) and the pure engine.
    `installed` spares a second look-up when the caller already found vLLM."""
    if installed is None and (s.vllm_version is None or s.device == "auto"):
        installed = find_vllm(s.vllm)
    version = s.vllm_version or (installed.version if installed else None)
    cpu = s.device == "cpu" or (s.device == "auto" and installed is not None and installed.cpu_build and not s.gpu and not s.gpu_memory)
    for warning in check_plan(s, "cpu" if cpu else "cuda", version):
        print(f"vllm-launch: warning: {warning}", file=sys.stderr)
    spec = read_model(s.model, s.revision, s.hf_overrides)
    check_against_model(s, spec)
    inventory = inventory_for(s, cpu)
    requirements = requirements_for(s, version)
    cpu_kv_space = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "").strip()
    if inventory.device == "cpu" and cpu_kv_space.isdigit():
        # vLLM's CPU backend takes its KV size (GiB) from this variable, over --kv-cache-memory-bytes.
        requirements = replace(requirements, kv_cache_memory_bytes=int(cpu_kv_space) * GiB)
    if inventory.device != "cpu" and layout_count(s) > inventory.count:
        raise UserError(
            f"TP x PP x DP = {layout_count(s)} GPUs asked, {inventory.count} present",
            "vLLM needs one GPU per rank (World size is larger than the number of available GPUs)",
            "lower --tensor-parallel-size/--pipeline-parallel-size/--data-parallel-size, or pass --gpus N when planning offline",
        )
    if spec.num_attention_heads % s.tensor_parallel_size:
        divisors = [n for n in range(1, spec.num_attention_heads + 1) if spec.num_attention_heads % n == 0 and n <= 16]
        raise UserError(
            f"--tensor-parallel-size {s.tensor_parallel_size} does not divide the model's {spec.num_attention_heads} attention heads",
            "vLLM splits the heads evenly over the ranks and refuses to start otherwise",
            f"use one of: {', '.join(map(str, divisors))}",
        )
    try:
        known = s.gpus is not None or capacity_planning(s) or not (s.gpu or s.gpu_memory)  # NVML, --gpus, or what to rent
        if inventory.device != "cpu" and inventory.count > 1 and known:
            inventories = [inventory, *(inventory_for(s, cpu, name) for name in gpu_types(s)[1:])]
            return layouts.plan_with_layouts(spec, inventories, requirements, fixed_layout(s), exact=capacity_planning(s))
        return make_plan(spec, inventory, requirements)
    except ValueError as exc:  # PlanError and its kin: the engine's word for requirements it cannot plan at all
        raise UserError(str(exc), "the sizing engine cannot plan these inputs", "check the values you passed") from exc


def formatted(plan: Plan, fmt: str, command: list[str] | None = None) -> str:
    """The plan as text, JSON, vLLM's arguments or a vLLM config file; `command` is the exact argv serve would run."""
    if fmt in ("args", "vllm-config") and plan.env:
        # Neither form can carry environment variables, and vLLM refuses to start without them.
        needed = " ".join(f"{k}={shlex.quote(v)}" for k, v in plan.env)
        print(f"vllm-launch: note: vLLM needs {needed} in its environment for this plan", file=sys.stderr)
    if fmt == "json":
        data = plan_json(plan)
        if command is not None:
            data["command"] = command
        return json.dumps(data, indent=2) + "\n"
    if fmt == "args":
        return shlex.join(plan.vllm_args if command is None else command) + "\n"
    if fmt == "vllm-config":
        return vllm_config_yaml(plan)
    return plan_text(plan, command)


def run(s: PlanSettings) -> int:
    plan = build_plan(s)
    text = formatted(plan, "json" if s.json_output else s.format)
    if s.output and str(s.output) != "-" and not plan.fits:
        sys.stderr.write(plan_text(plan))  # the explanation goes where logs show it (e.g. a Kubernetes init container)
        print(f"vllm-launch plan: the plan does not fit, so {s.output} was not written", file=sys.stderr)
        return 1
    emit(text, s.output, s.force)
    return 0 if plan.fits else 1

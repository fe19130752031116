"""Ways to make a plan fit, each re-planned through the engine (never guessed), and the closest working command:
the cheapest combination of them that fits. Pure functions over the engine's `assess`."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, replace

from launcher.hardware import CUDA_CONTEXT_BYTES, GiB, GpuInventory
from launcher.model.spec import ModelSpec, RopeEntry
from launcher.sizing.plan import Plan, Remedy, Requirements, assess, kv_head_problems
from launcher.sizing.versions import rules_for

YARN_FAMILIES = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")
# What each change costs a user, for ranking combinations: a smaller buffer or another utilization is free; YaRN and fp8
# KV cost some quality; every extra GPU costs hardware. fp8 KV (3) ranks before a second GPU (4).
COST_BUFFER = 1
COST_UTILIZATION = 1
COST_YARN = 2
COST_FP8 = 3
COST_PER_GPU = 4
# Utilization is never suggested above this: the process also needs memory outside the budget (its CUDA context, NCCL
# buffers, allocator fragmentation; vllm-memory-model.md E.1), so running a GPU to 0.99 trades a start for an OOM later.
MAX_SUGGESTED_UTILIZATION = 0.95


def attach(spec: ModelSpec, inv: GpuInventory, req: Requirements, plan: Plan) -> Plan:
    """The plan with its remedies and the closest working command."""
    found = find_remedies(spec, inv, req, plan)
    best = closest_working(spec, inv, req, plan)
    if best is None:
        return replace(plan, remedies=tuple(found))
    command = ("vllm", "serve", *best.plan.vllm_args)
    return replace(plan, remedies=tuple(found), working_command=command, working_changes=best.changes)


def _fitting(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> Plan | None:
    try:
        candidate = assess(spec, inv, req)
    except ValueError:  # PlanError included: a layout vLLM refuses
        return None
    return candidate if candidate.fits else None


def gpus_needed(req: Requirements) -> int:
    """GPUs vLLM runs on: TP x PP per engine, DP engines."""
    return req.tensor_parallel_size * req.pipeline_parallel_size * req.data_parallel_size


def with_gpus(inv: GpuInventory, count: int) -> GpuInventory:
    """The inventory with `count` GPUs: the real ones first, then copies of the first (planning from a preset)."""
    if inv.count >= count:
        return inv
    extra = tuple(replace(inv.gpus[0], index=i, processes=()) for i in range(inv.count, count))
    return replace(inv, gpus=inv.gpus + extra)


def idle(inv: GpuInventory) -> GpuInventory:
    """The same GPUs with nothing else on them (free = total minus vLLM's own CUDA context)."""
    gpus = tuple(replace(g, free_bytes=g.total_bytes - CUDA_CONTEXT_BYTES, processes=()) for g in inv.gpus)
    return replace(inv, gpus=gpus)


def free_ceiling(plan: Plan) -> float:
    """The largest --gpu-memory-utilization worth suggesting: what vLLM's free-memory check passes (two decimals, as
    users write it), at most MAX_SUGGESTED_UTILIZATION."""
    return min(MAX_SUGGESTED_UTILIZATION, math.floor(plan.free_memory_bytes / plan.total_memory_bytes * 100) / 100)


def tensor_parallel_options(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> list[int]:
    """Larger tensor-parallel sizes that vLLM accepts for this model and that the GPUs at hand can hold."""
    if inv.device == "cpu":
        return []
    replicas = req.pipeline_parallel_size * req.data_parallel_size
    out = []
    for tp in range(req.tensor_parallel_size + 1, inv.max_gpus // replicas + 1):
        if spec.num_attention_heads % tp or kv_head_problems(spec, tp):
            continue
        out.append(tp)
    return out


def yarn_override(spec: ModelSpec, plan: Plan, req: Requirements) -> tuple[ModelSpec, str, float] | None:
    """YaRN rope scaling that lifts the model's limit to cover the plan's length: (spec with it, --hf-overrides, factor).

    Offered for models that declare YaRN or whose family documents it (Qwen2/3). From 0.30 vLLM no longer multiplies the
    derived length by the YaRN factor (versions.TABLE `yarn_scales_max_len`, vllm PR #56446), so max_position_embeddings
    is overridden too; older releases derive the same length from the rope parameters alone."""
    context = plan.context
    if not (context.yarn_factor or spec.model_type in YARN_FAMILIES):
        return None
    mpe = int(spec.context.lengths.get("max_position_embeddings", context.derived))
    original = context.yarn_original or mpe
    factor = float(2 ** math.ceil(math.log2(plan.max_model_len / original)))
    params: dict[str, object] = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    if spec.context.rope_theta:
        params["rope_theta"] = spec.context.rope_theta
    extended = int(original * factor)
    overrides = json.loads(req.hf_overrides) if req.hf_overrides else {}
    overrides.update({"rope_parameters": params, "max_position_embeddings": extended})
    lengths = {**spec.context.lengths, "max_position_embeddings": float(extended)}
    facts = replace(spec.context, lengths=lengths, rope=(RopeEntry("yarn", factor, original),))
    return replace(spec, context=facts), json.dumps(overrides), factor


def yarn_reason(plan: Plan) -> str:
    """Why the override sets max_position_embeddings too, in the planned release's terms."""
    if rules_for(plan.vllm_version).yarn_scales_max_len:
        return f"vLLM {plan.vllm_version} derives it from the rope parameters; max_position_embeddings is set to match, as 0.30+ needs"
    return f"vLLM {plan.vllm_version} needs both the rope parameters and max_position_embeddings overridden (0.30+)"


def context_remedies(spec: ModelSpec, plan: Plan, req: Requirements) -> list[Remedy]:
    length, context = plan.max_model_len, plan.context
    out = []
    yarn = yarn_override(spec, plan, req)
    if yarn:
        _, overrides, factor = yarn
        extended = json.loads(overrides)["max_position_embeddings"]
        out.append(
            Remedy(
                f"YaRN rope scaling x{factor:g}",
                f"extends positions to {extended}: {yarn_reason(plan)}. Static YaRN may cost some quality on short texts.",
                ("--hf-overrides", overrides),
            )
        )
    out.append(
        Remedy(
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1",
            "starts anyway; positions past the model's trained length give garbage (RoPE: NaNs; absolute "
            "positions: CUDA out-of-bounds errors). Use only if you know the model extrapolates.",
            env=(("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1"),),
        )
    )
    out.append(
        Remedy(
            f"--max-model-len {context.derived}",
            f"the model's own limit; that leaves {context.derived} tokens for prompt + completion (you asked for {length})",
            ("--max-model-len", str(context.derived)),
        )
    )
    return out


def busy_gpu_remedies(spec: ModelSpec, inv: GpuInventory, req: Requirements, plan: Plan) -> list[Remedy]:
    """Other processes hold memory: the largest utilization free memory allows, or how much must be freed, or other GPUs."""
    gmu = plan.gpu_memory_utilization
    if plan.free_memory_bytes >= math.ceil(plan.total_memory_bytes * gmu) or (inv.device == "cpu" and req.kv_cache_memory_bytes):
        return []
    out = []
    where = "the node" if inv.device == "cpu" else "GPU " + ",".join(map(str, plan.gpu_indices))
    held = ", ".join(f"pid {p.pid} ({p.name or '?'}) {p.used_bytes / GiB:.2f} GiB" for p in plan.holders)
    ceiling = free_ceiling(plan)
    fitted = _fitting(spec, inv, replace(req, gpu_memory_utilization=ceiling)) if ceiling >= 0.01 else None
    if fitted:
        out.append(
            Remedy(
                f"--gpu-memory-utilization {ceiling:g}",
                f"the most that free memory on {where} allows ({plan.free_memory_bytes / GiB:.2f} of "
                f"{plan.total_memory_bytes / GiB:.2f} GiB): {fitted.kv_cache_tokens:,} KV tokens, "
                f"concurrency {fitted.max_concurrency:.2f}x",
                ("--gpu-memory-utilization", f"{ceiling:g}"),
            )
        )
    else:
        least = least_utilization(spec, idle(inv), req)
        if least is not None:
            needed = math.ceil(plan.total_memory_bytes * least) - plan.free_memory_bytes
            out.append(
                Remedy(
                    f"free {needed / GiB:.2f} GiB on {where}",
                    f"no --gpu-memory-utilization works while other processes hold the memory: this request needs at least "
                    f"{least:g} x {plan.total_memory_bytes / GiB:.2f} GiB and only {plan.free_memory_bytes / GiB:.2f} GiB is free"
                    + (f"; held by {held}" if held else ""),
                )
            )
    world = gpus_needed(req)
    if inv.device != "cpu" and inv.count > world:
        roomiest = sorted(inv.gpus, key=lambda g: -g.free_bytes)[:world]
        chosen = replace(inv, gpus=tuple(roomiest))
        fitted = _fitting(spec, chosen, req)
        if fitted and [g.index for g in roomiest] != list(plan.gpu_indices):
            visible = ",".join(str(g.index) for g in roomiest)
            out.append(
                Remedy(
                    f"CUDA_VISIBLE_DEVICES={visible}",
                    f"run on the GPUs with the most free memory: {fitted.kv_cache_tokens:,} KV tokens, concurrency "
                    f"{fitted.max_concurrency:.2f}x",
                    env=(("CUDA_VISIBLE_DEVICES", visible),),
                )
            )
    return out


def least_utilization(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> float | None:
    """The smallest --gpu-memory-utilization (two decimals) at which the request fits on these GPUs."""

    def fits(percent: int) -> bool:
        return _fitting(spec, inv, replace(req, gpu_memory_utilization=percent / 100)) is not None

    top = min(math.floor(g.free_bytes / g.total_bytes * 100) for g in inv.gpus)  # the free-memory check's own ceiling
    if top < 1 or not fits(top):
        return None
    lo, hi = 1, top
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo / 100


def find_remedies(spec: ModelSpec, inv: GpuInventory, req: Requirements, plan: Plan) -> list[Remedy]:
    """Ranked single changes that make it fit, each re-planned through the engine."""
    out: list[Remedy] = []
    length, context = plan.max_model_len, plan.context
    base = replace(req, max_model_len=length)
    if length > context.derived and not req.allow_long_max_model_len:
        out.extend(context_remedies(spec, plan, req))
        # Memory remedies are judged as if the context limit were lifted by one of the remedies above.
        base = replace(base, allow_long_max_model_len=True)
        if _fitting(spec, inv, base):
            return out
    out.extend(busy_gpu_remedies(spec, inv, base, plan))
    suffix = " (with a context fix above)" if base.allow_long_max_model_len and not req.allow_long_max_model_len else ""
    for tp in tensor_parallel_options(spec, inv, req):
        gpus = gpus_needed(replace(req, tensor_parallel_size=tp))
        fitted = _fitting(spec, with_gpus(inv, gpus), replace(base, tensor_parallel_size=tp))
        if fitted:
            out.append(
                Remedy(
                    f"--tensor-parallel-size {tp}",
                    f"{gpus} GPUs: {fitted.kv_cache_tokens:,} KV tokens, concurrency {fitted.max_concurrency:.2f}x{suffix}",
                    ("--tensor-parallel-size", str(tp)),
                )
            )
            break
    if req.kv_cache_dtype == "auto" and not spec.kv_cache_quantized:
        fitted = _fitting(spec, inv, replace(base, kv_cache_dtype="fp8"))
        if fitted:
            out.append(
                Remedy(
                    "--kv-cache-dtype fp8",
                    f"halves KV bytes per token: {fitted.kv_cache_tokens:,} KV tokens, concurrency "
                    f"{fitted.max_concurrency:.2f}x{suffix} (small accuracy cost; needs fp8 support on the GPU)",
                    ("--kv-cache-dtype", "fp8"),
                )
            )
    ceiling = free_ceiling(plan)
    if inv.device != "cpu" and req.kv_cache_memory_bytes is None and ceiling > plan.gpu_memory_utilization:
        fitted = _fitting(spec, inv, replace(base, gpu_memory_utilization=ceiling))
        if fitted:
            out.append(
                Remedy(
                    f"--gpu-memory-utilization {ceiling:g}",
                    f"free memory allows it: {fitted.kv_cache_tokens:,} KV tokens, concurrency {fitted.max_concurrency:.2f}x{suffix}",
                    ("--gpu-memory-utilization", f"{ceiling:g}"),
                )
            )
    estimate = plan.estimated_max_model_len
    if req.max_model_len is None and req.buffer > 0 and estimate and length - estimate <= req.buffer:
        out.append(
            Remedy(
                f"--buffer {req.buffer - (length - estimate)}",
                f"a buffer of {req.buffer - (length - estimate)} instead of {req.buffer} gives max_model_len {estimate}, which fits",
            )
        )
    if estimate and estimate < length and (estimate <= context.derived or req.allow_long_max_model_len):
        out.append(
            Remedy(
                f"--max-model-len {estimate}",
                "the longest context this memory holds for one request (shorter than you asked for)",
                ("--max-model-len", str(estimate)),
            )
        )
    return out


@dataclass(frozen=True)
class Candidate:
    plan: Plan
    cost: int
    changes: tuple[str, ...]


def closest_working(spec: ModelSpec, inv: GpuInventory, req: Requirements, plan: Plan) -> Candidate | None:
    """The cheapest combination of remedies (context override, tensor parallelism, fp8 KV, utilization, buffer) that
    fits while keeping the prompt and completion asked for. Never the risky VLLM_ALLOW_LONG_MAX_MODEL_LEN."""
    length = plan.max_model_len
    contexts: list[tuple[ModelSpec, Requirements, int, tuple[str, ...]]] = [(spec, replace(req, max_model_len=length), 0, ())]
    if length > plan.context.derived and not req.allow_long_max_model_len:
        yarn = yarn_override(spec, plan, req)
        if yarn is None:
            return None
        yarn_spec, overrides, factor = yarn
        contexts = [(yarn_spec, replace(req, max_model_len=length, hf_overrides=overrides), COST_YARN, (f"YaRN x{factor:g}",))]
    tps = [req.tensor_parallel_size, *tensor_parallel_options(spec, inv, req)]
    kvs = [req.kv_cache_dtype] + (["fp8"] if req.kv_cache_dtype == "auto" and not spec.kv_cache_quantized else [])
    gmus: list[float | None] = [req.gpu_memory_utilization]
    ceiling = free_ceiling(plan)
    if inv.device != "cpu" and req.kv_cache_memory_bytes is None and ceiling >= 0.01 and ceiling != plan.gpu_memory_utilization:
        gmus.append(ceiling)
    best: Candidate | None = None
    for (cspec, creq, ccost, cchanges), tp, kv_dtype, gmu in itertools.product(contexts, tps, kvs, gmus):
        gpus = gpus_needed(replace(req, tensor_parallel_size=tp))
        cost, changes = ccost, list(cchanges)
        if tp != req.tensor_parallel_size:
            cost += COST_PER_GPU * (gpus - gpus_needed(req))
            changes.append(f"--tensor-parallel-size {tp} ({gpus} GPUs)")
        if kv_dtype != req.kv_cache_dtype:
            cost += COST_FP8
            changes.append(f"--kv-cache-dtype {kv_dtype}")
        if gmu != req.gpu_memory_utilization:
            cost += COST_UTILIZATION
            changes.append(f"--gpu-memory-utilization {gmu:g}")
        if best is not None and cost > best.cost:
            continue
        trial = replace(creq, tensor_parallel_size=tp, kv_cache_dtype=kv_dtype, gpu_memory_utilization=gmu)
        candidate = _candidate(cspec, with_gpus(inv, gpus), trial, req, cost, tuple(changes))
        if candidate and (best is None or (candidate.cost, -candidate.plan.max_concurrency) < (best.cost, -best.plan.max_concurrency)):
            best = candidate
    return best


def _candidate(
    spec: ModelSpec, inv: GpuInventory, trial: Requirements, asked: Requirements, cost: int, changes: tuple[str, ...]
) -> Candidate | None:
    try:
        planned = assess(spec, inv, trial)
    except ValueError:  # PlanError included: a layout vLLM refuses
        return None
    if planned.fits:
        return Candidate(planned, cost, changes)
    # A smaller buffer keeps prompt + completion: take what the memory holds when that still covers them.
    estimate = planned.estimated_max_model_len
    if asked.max_model_len is None and asked.prompt is not None and asked.completion is not None and estimate:
        needed = asked.prompt + asked.completion
        if needed <= estimate < planned.max_model_len:
            shorter = _fitting(spec, inv, replace(trial, max_model_len=estimate))
            if shorter:
                return Candidate(shorter, cost + COST_BUFFER, (*changes, f"--buffer {estimate - needed}"))
    return None

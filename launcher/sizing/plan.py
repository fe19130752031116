"""The sizing engine: (ModelSpec, GpuInventory, Requirements) -> Plan. Pure functions, no I/O."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace

from launcher.hardware import GiB, GpuInventory
from launcher.model.config import DTYPE_BYTES
from launcher.model.spec import ModelSpec
from launcher.sizing import kv, memory
from launcher.sizing.context import ContextLimit, derive_context_limit
from launcher.sizing.versions import VersionRules, rules_for

DEFAULT_BUFFER = 1000
CPU_BLOCK_SIZE = 128
GPU_BLOCK_SIZE = 16
MLA_BLOCK_SIZE = 64  # FLASHMLA (SM90 default after FLASH_ATTN_MLA, which also uses 64 in practice)


class PlanError(ValueError):
    """The requirements cannot be planned at all (as opposed to a plan that does not fit)."""


@dataclass(frozen=True)
class Requirements:
    """What the user asked for. `None` means "vLLM's default"."""

    max_model_len: int | None = None
    prompt: int | None = None
    completion: int | None = None
    buffer: int = DEFAULT_BUFFER
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    kv_cache_memory_bytes: int | None = None
    min_concurrency: float = 1.0
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    disable_hybrid_kv_cache_manager: bool = False
    allow_long_max_model_len: bool = False
    vllm_version: str | None = None
    served_model_name: str | None = None
    hf_overrides: str | None = None

    def resolved_max_model_len(self) -> int:
        if self.max_model_len is not None:
            return self.max_model_len
        if self.prompt is None or self.completion is None:
            raise PlanError("give --max-model-len, or both --prompt and --completion")
        return self.prompt + self.completion + self.buffer


@dataclass(frozen=True)
class Remedy:
    """One way to make the plan fit, with the numbers that back it."""

    title: str
    detail: str
    vllm_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    model: str
    max_model_len: int
    fits: bool
    problems: tuple[str, ...]
    context: ContextLimit
    vllm_version: str
    device: str
    gpu_name: str
    gpus_available: int
    total_memory_bytes: int
    free_memory_bytes: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    pipeline_parallel_size: int
    block_size: int
    kv_cache_dtype: str
    kv_bytes_per_token: int
    bytes_per_block: int
    num_kv_groups: int
    blocks_per_request: int
    inflight_tokens: int
    max_num_batched_tokens: int
    max_num_seqs: int
    memory: memory.StageMemory
    num_gpu_blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    estimated_max_model_len: int | None
    weights_source: str
    facts_source: str
    vllm_args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    remedies: tuple[Remedy, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Why the KV numbers may not be vLLM's: config fields or layer types the model reader does not understand.
    # Listed in `problems` too, but they do not make the plan unfit: `serve` starts such a plan only with --force.
    unverified: tuple[str, ...] = ()

    @property
    def kv_cache_memory_bytes(self) -> int:
        return self.memory.kv_available

    @property
    def weights_bytes(self) -> int:
        return self.memory.weights


def batch_defaults(inv: GpuInventory, world: int, max_model_len: int, req: Requirements) -> tuple[int, int]:
    """vLLM's `get_batch_defaults` for `vllm serve`, then the caps applied after it."""
    if inv.device == "cpu":
        tokens, seqs = 2048 * world, 128 * world
    else:
        total_gib = inv.gpus[0].total_bytes / GiB
        if total_gib >= 160:
            tokens, seqs = 16384, 1024
        elif total_gib >= 70 and "a100" not in inv.name.lower():
            tokens, seqs = 8192, 1024
        else:
            tokens, seqs = 2048, 256
    seqs = req.max_num_seqs or seqs
    tokens = req.max_num_batched_tokens or min(tokens, seqs * max_model_len)
    if req.max_num_seqs is None:
        seqs = min(seqs, tokens)
    return tokens, seqs


def model_dtype(spec: ModelSpec, requested: str) -> str:
    if requested != "auto":
        return {"half": "float16", "float": "float32"}.get(requested, requested)
    # vLLM's "auto" keeps 16-bit checkpoints as they are and serves fp32 checkpoints in 16 bits.
    return "bfloat16" if spec.dtype == "float32" else spec.dtype


def default_block_size(spec: ModelSpec, device: str) -> int:
    if device == "cpu":
        return CPU_BLOCK_SIZE
    if any(layer.kind == "mla" for layer in spec.layers):
        return MLA_BLOCK_SIZE
    return GPU_BLOCK_SIZE


def check_parallelism(spec: ModelSpec, tp: int, pp: int, inv: GpuInventory) -> list[str]:
    problems = []
    if spec.num_attention_heads % tp:
        problems.append(f"Total number of attention heads ({spec.num_attention_heads}) must be divisible by tensor parallel size ({tp}).")
    kv_heads = spec.num_kv_heads
    if kv_heads and not any(layer.kind == "mla" for layer in spec.layers):
        if kv_heads >= tp and kv_heads % tp:
            problems.append(f"{kv_heads} KV heads cannot be split evenly over tensor parallel size {tp}.")
        if kv_heads < tp and tp % kv_heads:
            problems.append(f"tensor parallel size {tp} is not a multiple of the {kv_heads} KV heads to replicate.")
    if pp > len(spec.layers):
        problems.append(f"pipeline parallel size {pp} exceeds the model's {len(spec.layers)} layers.")
    if inv.device != "cpu" and tp * pp > inv.count:
        problems.append(f"TP x PP = {tp * pp} GPUs are needed but only {inv.count} are available.")
    return problems


def stage_weights(spec: ModelSpec, stage: int, pp: int, layers_in_stage: int) -> int:
    w = spec.weights
    body = max(0, w.total_bytes - w.embedding_bytes - w.lm_head_bytes)
    share = body * layers_in_stage // max(1, len(spec.layers))
    if pp == 1:
        return w.total_bytes
    return share + (w.embedding_bytes if stage == 0 else 0) + (w.lm_head_bytes if stage == pp - 1 else 0)


def stage_budgets(
    spec: ModelSpec,
    inv: GpuInventory,
    req: Requirements,
    rules: VersionRules,
    groups: list[kv.KVGroup],
    requested: int,
    dtype: str,
    tokens: int,
    seqs: int,
) -> list[tuple[memory.StageMemory, int, int]]:
    """Per pipeline stage: its memory budget, its bytes per block (its layers of each group), and its block count."""
    tp, pp = req.tensor_parallel_size, req.pipeline_parallel_size
    owners = [i for i, _ in kv.kv_layers(spec.layers)]  # KV layer index -> model layer (shared-KV layers have none)
    on_gpu = inv.device != "cpu"
    out = []
    for s, layer_range in enumerate(kv.split_layers(len(spec.layers), pp)):
        on_stage = {page for page, owner in enumerate(owners) if owner in layer_range}
        bpb = kv.bytes_per_block(groups, on_stage if pp > 1 else None)
        weights = stage_weights(spec, s, pp, len(layer_range)) // tp
        if req.kv_cache_memory_bytes is not None:
            budget = memory.StageMemory(s, requested, weights, 0, 0, 0, req.kv_cache_memory_bytes, True)
        else:
            non_torch = memory.non_torch_bytes(tp, pp, inv.device, rules.profiles_tp_buffers)
            act = 0
            if on_gpu:  # the CPU worker's budget is its measured footprint (weights + runtime), no profile run
                act = memory.activation_bytes(
                    vocab=spec.vocab_size,
                    hidden=spec.hidden_size,
                    intermediate=spec.intermediate_size,
                    dtype_bytes=DTYPE_BYTES[dtype],
                    max_num_batched_tokens=tokens,
                    max_num_seqs=seqs,
                    tp=tp,
                    samples=s == pp - 1,
                )
            graphs = memory.cudagraph_bytes(spec.is_moe, seqs, on_gpu and rules.subtracts_cudagraph_memory and not req.enforce_eager)
            avail = requested - weights - non_torch - act - graphs
            budget = memory.StageMemory(s, requested, weights, non_torch, act, graphs, avail, False)
        out.append((budget, bpb, budget.kv_available // bpb if bpb and budget.kv_available > 0 else 0))
    return out


def make_plan(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> Plan:
    """Predict what vLLM will do with these requirements on this hardware."""
    rules = rules_for(req.vllm_version)
    if not inv.gpus:
        raise PlanError("no GPUs in the inventory")
    length = req.resolved_max_model_len()
    if length <= 0:
        raise PlanError(f"max_model_len must be a positive integer, got {length}")
    tp, pp = req.tensor_parallel_size, req.pipeline_parallel_size
    gmu = req.gpu_memory_utilization if req.gpu_memory_utilization is not None else rules.default_gpu_memory_utilization
    problems = check_parallelism(spec, tp, pp, inv)
    context = derive_context_limit(spec.context, spec.model_type, rules)
    notes: list[str] = []
    if length > context.derived and not req.allow_long_max_model_len:
        problems.append(
            f"max_model_len {length} is greater than the model's derived limit "
            f"({context.key}={context.derived}); vLLM refuses to start with 'User-specified max_model_len ({length}) is greater than "
            "the derived max_model_len'."
        )

    dtype = model_dtype(spec, req.dtype)
    elem = kv.kv_elem_bytes(req.kv_cache_dtype, dtype, spec.kv_cache_quantized)
    block_size = req.block_size or default_block_size(spec, inv.device)
    pages, block_size = kv.layer_pages(
        spec.layers,
        tp=tp,
        block_size=block_size,
        elem=elem,
        kv_cache_dtype=req.kv_cache_dtype,
        ssm_elem=DTYPE_BYTES[dtype],
        prefix_caching=req.enable_prefix_caching,
        hybrid_allocator=not req.disable_hybrid_kv_cache_manager,
    )
    if req.block_size and block_size != req.block_size:
        notes.append(f"vLLM raises the block size to {block_size} so an attention page holds a Mamba state.")
    groups = kv.kv_groups(pages)
    world = tp * pp
    tokens, seqs = batch_defaults(inv, world, length, req)
    async_scheduling = inv.device != "cpu"
    inflight = (pp + 1 if async_scheduling else pp) * tokens
    blocks_needed = kv.request_blocks(groups, length, inflight)

    gpu = min(inv.gpus, key=lambda g: g.total_bytes)
    total, free = gpu.total_bytes, min(g.free_bytes for g in inv.gpus)
    requested = memory.requested_bytes(total, gmu)
    stages = stage_budgets(spec, inv, req, rules, groups, requested, dtype, tokens, seqs)
    budget, bpb, num_blocks = min(stages, key=lambda item: item[2])  # all ranks use the smallest block count
    concurrency = num_blocks / blocks_needed if blocks_needed else 0.0
    kv_tokens = int(concurrency * length)

    estimated, starved = None, None
    for stage_budget, stage_bpb, _ in stages:
        usable = stage_budget.kv_available - stage_bpb  # vLLM checks after reserving the null block
        if usable <= 0:
            starved, estimated = stage_budget, 0
            break
        if blocks_needed * stage_bpb > usable:
            est = kv.estimate_max_len(groups, stage_bpb, usable, length, inflight)
            estimated = est if estimated is None else min(estimated, est)
    if starved is not None:
        problems.append(
            "No available memory for the cache blocks: the weights and profiled memory exceed "
            f"{gmu:.2f} x {total / GiB:.2f} GiB on pipeline stage {starved.stage}."
        )
    elif estimated is not None:
        problems.append(
            f"KV cache too small: one {length}-token request needs {blocks_needed * bpb / GiB:.2f} GiB "
            f"of KV cache, {(budget.kv_available - bpb) / GiB:.2f} GiB is available; vLLM refuses to start "
            f"(estimated maximum model length {estimated})."
        )
    elif concurrency < req.min_concurrency:
        problems.append(f"maximum concurrency {concurrency:.2f} is below the requested --min-concurrency {req.min_concurrency:g}.")

    # vLLM's start-up check of free memory against the budget: always on GPUs, on CPU only without an explicit KV size.
    if requested > free and (inv.device != "cpu" or req.kv_cache_memory_bytes is None):
        holders = ", ".join(f"pid {p.pid} ({p.name or '?'}) {p.used_bytes / GiB:.2f} GiB" for g in inv.gpus for p in g.processes)
        where = "on the node" if inv.device == "cpu" else "on device"
        problems.append(
            f"Free memory {where} ({free / GiB:.2f}/{total / GiB:.2f} GiB) is less than the desired memory "
            f"utilization ({gmu}, {requested / GiB:.2f} GiB); vLLM refuses to start."
            + (f" Memory is held by: {holders}." if holders else "")
            + (" On CPU, give the KV cache an explicit size (--kv-cache-memory-bytes)." if inv.device == "cpu" else "")
        )

    args = vllm_serve_args(spec.name, length, gmu, req, block_size)
    env: tuple[tuple[str, str], ...] = ()
    if req.allow_long_max_model_len and length > context.derived:
        env = (("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1"),)
    if spec.max_new_tokens:
        notes.append(
            f"generation_config.json sets max_new_tokens={spec.max_new_tokens}: requests that send no max_tokens "
            f"get at most {spec.max_new_tokens} tokens (vLLM's default cap); send max_tokens explicitly"
        )
    if spec.weights.is_estimate:
        notes.append("weights size is an estimate from the config's parameter count (no checkpoint index found)")
    unverified = tuple(f"KV cache unverified for this model: {reason}; vLLM may allocate otherwise." for reason in spec.unverified)
    plan = Plan(
        model=spec.name,
        max_model_len=length,
        fits=not problems,
        problems=tuple(problems) + unverified,
        context=context,
        vllm_version=rules.label,
        device=inv.device,
        gpu_name=gpu.name,
        gpus_available=inv.count,
        total_memory_bytes=total,
        free_memory_bytes=free,
        gpu_memory_utilization=gmu,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        block_size=block_size,
        kv_cache_dtype=req.kv_cache_dtype,
        kv_bytes_per_token=sum(p.page_bytes // p.block_size for p in pages if p.kind != "mamba"),
        bytes_per_block=bpb,
        num_kv_groups=len(groups),
        blocks_per_request=blocks_needed,
        inflight_tokens=inflight,
        max_num_batched_tokens=tokens,
        max_num_seqs=seqs,
        memory=budget,
        num_gpu_blocks=num_blocks,
        kv_cache_tokens=kv_tokens,
        max_concurrency=concurrency,
        estimated_max_model_len=estimated,
        weights_source=spec.weights.source,
        facts_source=spec.facts_source,
        vllm_args=tuple(args),
        env=env,
        notes=tuple(notes),
        unverified=unverified,
    )
    if not plan.fits:
        plan = replace(plan, remedies=tuple(find_remedies(spec, inv, req, plan, rules)))
    return plan


def vllm_serve_args(model: str, length: int, gmu: float, req: Requirements, block_size: int) -> list[str]:
    """`vllm serve` arguments; always an explicit integer --max-model-len, so the result does not depend on
    the version's default."""
    args = [model, "--max-model-len", str(length), "--gpu-memory-utilization", f"{gmu:g}"]
    if req.served_model_name:
        args += ["--served-model-name", req.served_model_name]
    if req.tensor_parallel_size != 1:
        args += ["--tensor-parallel-size", str(req.tensor_parallel_size)]
    if req.pipeline_parallel_size != 1:
        args += ["--pipeline-parallel-size", str(req.pipeline_parallel_size)]
    if req.dtype != "auto":
        args += ["--dtype", req.dtype]
    if req.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", req.kv_cache_dtype]
    if req.block_size:
        args += ["--block-size", str(block_size)]
    if req.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(req.max_num_batched_tokens)]
    if req.max_num_seqs:
        args += ["--max-num-seqs", str(req.max_num_seqs)]
    if req.kv_cache_memory_bytes is not None:
        args += ["--kv-cache-memory-bytes", str(req.kv_cache_memory_bytes)]
    if req.enforce_eager:
        args.append("--enforce-eager")
    if not req.enable_prefix_caching:
        args.append("--no-enable-prefix-caching")
    if req.disable_hybrid_kv_cache_manager:
        args.append("--disable-hybrid-kv-cache-manager")
    if req.hf_overrides:
        args += ["--hf-overrides", req.hf_overrides]
    return args


def _fits_with(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> Plan | None:
    try:
        candidate = make_plan(spec, inv, req)
    except (PlanError, ValueError):
        return None
    return candidate if candidate.fits else None


def find_remedies(spec: ModelSpec, inv: GpuInventory, req: Requirements, plan: Plan, rules: VersionRules) -> list[Remedy]:
    """Ranked ways to make it fit; each one re-planned through the engine, never guessed."""
    out: list[Remedy] = []
    length, context = plan.max_model_len, plan.context
    base = replace(req, max_model_len=length)
    if length > context.derived and not req.allow_long_max_model_len:
        out.extend(context_remedies(spec, plan))
        # Memory remedies are judged as if the context limit were lifted by one of the remedies above.
        base = replace(base, allow_long_max_model_len=True)
        if _fits_with(spec, inv, base):
            return out
    suffix = " (with a context fix above)" if base.allow_long_max_model_len and not req.allow_long_max_model_len else ""
    if inv.device != "cpu":
        for tp in range(req.tensor_parallel_size + 1, inv.max_gpus // req.pipeline_parallel_size + 1):
            if spec.num_attention_heads % tp:
                continue
            bigger = replace(inv, gpus=tuple(replace(inv.gpus[0], index=i) for i in range(tp * req.pipeline_parallel_size)))
            fitted = _fits_with(spec, bigger, replace(base, tensor_parallel_size=tp))
            if fitted:
                out.append(
                    Remedy(
                        f"--tensor-parallel-size {tp}",
                        f"{tp * req.pipeline_parallel_size} GPUs: {fitted.kv_cache_tokens:,} KV tokens, "
                        f"concurrency {fitted.max_concurrency:.2f}x{suffix}",
                        ("--tensor-parallel-size", str(tp)),
                    )
                )
                break
    if req.kv_cache_dtype == "auto" and not spec.kv_cache_quantized:
        fitted = _fits_with(spec, inv, replace(base, kv_cache_dtype="fp8"))
        if fitted:
            out.append(
                Remedy(
                    "--kv-cache-dtype fp8",
                    f"halves KV bytes per token: {fitted.kv_cache_tokens:,} KV tokens, concurrency "
                    f"{fitted.max_concurrency:.2f}x{suffix} (small accuracy cost; needs fp8 support on the GPU)",
                    ("--kv-cache-dtype", "fp8"),
                )
            )
    if inv.device != "cpu" and req.kv_cache_memory_bytes is None:
        ceiling = math.floor(plan.free_memory_bytes / plan.total_memory_bytes * 100) / 100
        if ceiling > plan.gpu_memory_utilization:
            fitted = _fits_with(spec, inv, replace(base, gpu_memory_utilization=ceiling))
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


YARN_FAMILIES = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe")


def context_remedies(spec: ModelSpec, plan: Plan) -> list[Remedy]:
    length, context = plan.max_model_len, plan.context
    out = []
    mpe = int(spec.context.lengths.get("max_position_embeddings", context.derived))
    if context.yarn_factor or spec.model_type in YARN_FAMILIES:
        original = context.yarn_original or mpe
        factor = float(2 ** math.ceil(math.log2(length / original)))
        params: dict[str, object] = {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
        if spec.context.rope_theta:
            params["rope_theta"] = spec.context.rope_theta
        overrides = json.dumps({"rope_parameters": params, "max_position_embeddings": int(original * factor)})
        out.append(
            Remedy(
                f"YaRN rope scaling x{factor:g}",
                f"extends positions to {int(original * factor)}: vLLM 0.32 needs both the rope parameters and "
                "max_position_embeddings overridden. Static YaRN may cost some quality on short texts.",
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
            f"the model's own limit; that leaves {context.derived} tokens for prompt + completion",
            ("--max-model-len", str(context.derived)),
        )
    )
    return out

"""The sizing engine: (ModelSpec, GpuInventory, Requirements) -> Plan. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from launcher.hardware import GiB, GpuInventory, GpuProcess
from launcher.model.config import DTYPE_BYTES
from launcher.model.spec import ModelSpec
from launcher.sizing import capacity, kv, memory
from launcher.sizing.context import ContextLimit, derive_context_limit
from launcher.sizing.versions import (
    VersionRules,
    choose_engine,
    compute_capability,
    concurrent_batches,
    rules_for,
    uses_v2_model_runner,
)

if TYPE_CHECKING:
    from launcher.sizing.layouts import Layout

DEFAULT_BUFFER = 1000
AUTO = -1  # --max-model-len auto / -1: the longest length that holds --min-concurrency full-length requests
GPU_BLOCK_SIZE = 16  # CacheConfig's default on CUDA in every release (FlashAttention/FlashInfer keep it)


class PlanError(ValueError):
    """The requirements cannot be planned at all (as opposed to a plan that does not fit)."""


@dataclass(frozen=True)
class Requirements:
    """What the user asked for. `None` means "vLLM's default"."""

    max_model_len: int | None = None  # AUTO: search for the longest that fits
    max_model_len_cap: int | None = None  # upper bound for AUTO
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
    data_parallel_size: int = 1  # replicas of the TP x PP engine, each with its own KV cache
    enable_expert_parallel: bool = False

    def resolved_max_model_len(self) -> int:
        if self.max_model_len == AUTO:
            raise PlanError("--max-model-len auto must be resolved (make_plan does) before a plan is assessed")
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
    kv_fits: bool = True  # the KV cache holds one full-length request (vLLM's start-up check)
    gpu_indices: tuple[int, ...] = ()  # the GPUs vLLM's ranks run on: the first TP x PP visible ones
    holders: tuple[GpuProcess, ...] = ()  # other processes holding memory on those GPUs
    length_source: str = ""  # how max_model_len was chosen
    env: tuple[tuple[str, str], ...] = ()
    remedies: tuple[Remedy, ...] = field(default_factory=tuple)
    # The smallest combination of remedies that fits, as a `vllm serve` command line (None when it fits or nothing does).
    working_command: tuple[str, ...] | None = None
    working_changes: tuple[str, ...] = ()  # what that command changes, in words
    notes: tuple[str, ...] = field(default_factory=tuple)
    engine: str = "v1"  # the vLLM engine that serves it: "v1", or "v0" (releases before 0.8 and 0.8-0.10 fall-backs)
    async_scheduling: bool = True
    v2_model_runner: bool = False
    hybrid_allocator_disabled: bool = False
    # Per-replica numbers above; data parallelism runs this many replicas of the TP x PP engine.
    data_parallel_size: int = 1
    enable_expert_parallel: bool = False
    layouts: tuple[Layout, ...] = ()  # every TP x PP x DP layout ranked on the GPUs (launcher.sizing.layouts)
    layout_reason: str = ""  # why the plan's layout was chosen

    @property
    def total_concurrency(self) -> float:
        """Full-length requests at once over all data-parallel replicas."""
        return self.max_concurrency * self.data_parallel_size

    # Why the KV numbers may not be vLLM's: config fields or layer types the model reader does not understand.
    # Listed in `problems` too, but they do not make the plan unfit: `serve` starts such a plan only with --force.
    unverified: tuple[str, ...] = ()

    @property
    def kv_cache_memory_bytes(self) -> int:
        return self.memory.kv_available

    @property
    def weights_bytes(self) -> int:
        return self.memory.weights


def batch_defaults(
    inv: GpuInventory, world: int, max_model_len: int, req: Requirements, rules: VersionRules, engine: str
) -> tuple[int, int]:
    """vLLM's default max_num_batched_tokens / max_num_seqs for `vllm serve` (versions.batch_defaults rows),
    then the caps the release applies to defaulted values."""
    rows = rules.batch_defaults
    if engine == "v0" or rows == "v0":
        # V0 scheduler: 256 sequences; 2048 tokens with chunked prefill, which V0 turns on by itself only for
        # contexts over 32K on CUDA (0.6.6.post1 vllm/engine/arg_utils.py:1081), else max(max_model_len, 2048).
        seqs = req.max_num_seqs or 256
        chunked = inv.device != "cpu" and max_model_len > 32768
        return req.max_num_batched_tokens or (2048 if chunked else max(max_model_len, 2048)), seqs
    if inv.device == "cpu":
        cpu_tokens, cpu_seqs, scaled = rules.cpu_batch_defaults
        factor = world if scaled else 1
        tokens, seqs = (cpu_tokens or 2048) * factor, cpu_seqs * factor
    else:
        total_gib = inv.gpus[0].total_bytes / GiB
        name = inv.name.lower()
        tokens, seqs = next((t, n) for gib, excluded, t, n in rows if total_gib >= gib and not any(x in name for x in excluded))
    seqs = req.max_num_seqs or seqs
    if req.max_num_batched_tokens:
        tokens = req.max_num_batched_tokens
    elif rules.caps_default_tokens:
        tokens = min(tokens, seqs * max_model_len)
    if req.max_num_seqs is None and rules.caps_default_seqs:
        seqs = min(seqs, tokens)
    return tokens, seqs


def model_dtype(spec: ModelSpec, requested: str) -> str:
    if requested != "auto":
        return {"half": "float16", "float": "float32"}.get(requested, requested)
    # vLLM's "auto" keeps 16-bit checkpoints as they are and serves fp32 checkpoints in 16 bits.
    return "bfloat16" if spec.dtype == "float32" else spec.dtype


def default_block_size(spec: ModelSpec, inv: GpuInventory, rules: VersionRules, engine: str) -> int:
    """The block size vLLM picks when --block-size is not given (CPU backend, MLA backend by GPU family, else 16)."""
    if inv.device == "cpu":
        return rules.cpu_block_size if engine == "v1" else 16
    if engine == "v1" and any(layer.kind == "mla" for layer in spec.layers):
        capability = compute_capability(inv.name)
        return rules.mla_block_size.get(capability[0], GPU_BLOCK_SIZE) if capability else GPU_BLOCK_SIZE
    return GPU_BLOCK_SIZE


def hybrid_allocator_enabled(rules: VersionRules, req: Requirements, kinds: set[str]) -> bool:
    """Whether sliding/chunked layers keep their own block tables (the hybrid KV-cache manager)."""
    if not rules.hybrid_allocator or req.disable_hybrid_kv_cache_manager:
        return False
    return not ("chunked" in kinds and rules.chunked_local_spec and rules.chunked_disables_hybrid)


def v0_pages(pages: list[kv.LayerPage], rules: VersionRules) -> list[kv.LayerPage]:
    """V0's cache block: every attention layer at full length; 0.7 pads an MLA latent row to 256 bytes."""
    out = []
    for p in pages:
        if p.kind == "mla" and rules.v0_mla == "aligned_256":
            per_token = p.page_bytes // p.block_size
            p = replace(p, page_bytes=p.block_size * kv.cdiv(per_token, 256) * 256)
        out.append(replace(p, kind="full", window=None) if p.kind in ("sliding", "chunked") else p)
    return out


def stage_kv_layers(spec: ModelSpec, pp: int, rules: VersionRules) -> list[frozenset[int]]:
    """The KV layers (indices into the model's KV pages) of each pipeline stage."""
    owners = [i for i, _ in kv.kv_layers(spec.layers)]  # KV layer index -> model layer (layers without a cache have none)
    return [
        frozenset(page for page, owner in enumerate(owners) if owner in stage) for stage in kv.split_layers(len(spec.layers), pp, rules)
    ]


def kv_head_problems(spec: ModelSpec, tp: int) -> list[str]:
    """vLLM splits KV heads evenly over TP ranks or replicates them, per attention layer (models with per-layer head
    counts, such as Gemma 4's global layers, must satisfy it for each count); the MLA latent is never split."""
    attention = ("full", "sliding", "chunked", "cross")
    counts = sorted({layer.kv_heads for layer in spec.layers if layer.kind in attention and layer.kv_heads})
    problems = []
    for kv_heads in counts:
        if kv_heads >= tp and kv_heads % tp:
            problems.append(f"{kv_heads} KV heads cannot be split evenly over tensor parallel size {tp}.")
        if kv_heads < tp and tp % kv_heads:
            problems.append(f"tensor parallel size {tp} is not a multiple of the {kv_heads} KV heads to replicate.")
    return problems


def check_parallelism(spec: ModelSpec, tp: int, pp: int, inv: GpuInventory, dp: int = 1) -> list[str]:
    problems = []
    if spec.num_attention_heads % tp:
        problems.append(f"Total number of attention heads ({spec.num_attention_heads}) must be divisible by tensor parallel size ({tp}).")
    problems += kv_head_problems(spec, tp)
    if pp > len(spec.layers):
        problems.append(f"pipeline parallel size {pp} exceeds the model's {len(spec.layers)} layers.")
    if inv.device != "cpu" and tp * pp * dp > inv.count:
        sizes = f"TP x PP x DP = {tp * pp * dp}" if dp > 1 else f"TP x PP = {tp * pp}"
        problems.append(f"{sizes} GPUs are needed but only {inv.count} are available.")
    return problems


def stage_weights(spec: ModelSpec, stage: int, pp: int, layers_in_stage: int) -> int:
    w = spec.weights
    body = max(0, w.total_bytes - w.embedding_bytes - w.lm_head_bytes)
    share = body * layers_in_stage // max(1, len(spec.layers))
    if pp == 1:
        return w.total_bytes
    return share + (w.embedding_bytes if stage == 0 else 0) + (w.lm_head_bytes if stage == pp - 1 else 0)


def rope_cache_bytes(spec: ModelSpec, dtype: str) -> int:
    """The rotary cos/sin cache every rank holds whole: max_position x rotary dim in the model dtype."""
    attention = [layer for layer in spec.layers if layer.kind in ("full", "sliding", "chunked")]
    rotary = attention[0].head_size if attention else 64  # MLA rotates qk_rope_head_dim (64) dimensions
    positions = int(spec.context.lengths.get("max_position_embeddings", 0))
    return positions * rotary * DTYPE_BYTES[dtype]


def expert_share(num_experts: int, tp: int, dp: int, expert_parallel: bool) -> float:
    """The fraction of a MoE layer's routed experts one rank holds. vLLM shards the expert layers over all TP x DP ranks
    (`FusedMoEParallelConfig.make`, flatten_tp_across_dp_and_pcp, vllm 0.32/0.33 model_executor/layers/fused_moe/config.py):
    as tensor slices without expert parallelism, as whole experts with it, the first `E mod (TP x DP)` ranks holding one
    more (`determine_expert_map`, fused_moe/expert_map_manager.py); the rank holding the most sets the budget."""
    ranks = tp * dp
    if expert_parallel and ranks > 1 and num_experts:
        return -(-num_experts // ranks) / num_experts
    return 1 / ranks


def rank_weights(spec: ModelSpec, stage: int, pp: int, layer_range: range, req: Requirements, dtype: str) -> int:
    """Weight bytes on one rank of a pipeline stage: attention, embeddings and dense MLPs split over TP (replicated on
    every DP replica), routed experts over TP x DP, and the rotary cache every rank holds whole."""
    tp, dp = req.tensor_parallel_size, req.data_parallel_size
    stage_bytes = stage_weights(spec, stage, pp, len(layer_range))
    experts = spec.weights.expert_bytes * len(layer_range) // max(1, len(spec.layers))
    rope = rope_cache_bytes(spec, dtype)
    if not (spec.is_moe and experts):
        return memory.rank_weights(stage_bytes, rope, tp)
    share = expert_share(spec.num_experts, tp, dp, req.enable_expert_parallel)
    return memory.rank_weights(stage_bytes - experts, rope, tp) + int(experts * share)


def stage_budgets(
    spec: ModelSpec,
    inv: GpuInventory,
    req: Requirements,
    rules: VersionRules,
    requested: int,
    dtype: str,
    tokens: int,
    seqs: int,
) -> list[memory.StageMemory]:
    """Per pipeline stage: the memory budget of one of its workers (what is left for the KV cache included)."""
    tp, pp = req.tensor_parallel_size, req.pipeline_parallel_size
    on_gpu = inv.device != "cpu"
    out = []
    for s, layer_range in enumerate(kv.split_layers(len(spec.layers), pp, rules)):
        weights = rank_weights(spec, s, pp, layer_range, req, dtype)
        if req.kv_cache_memory_bytes is not None:
            budget = memory.StageMemory(s, requested, weights, 0, 0, 0, req.kv_cache_memory_bytes, True)
        else:
            non_torch = memory.non_torch_bytes(tp, pp, inv.device, rules, spec.hidden_size)
            act = 0
            if on_gpu:  # the CPU worker's budget is its measured footprint (weights + runtime), no profile run
                shape = memory.ProfileShape(
                    vocab=spec.vocab_size,
                    hidden=spec.hidden_size,
                    intermediate=spec.intermediate_size,
                    dtype_bytes=DTYPE_BYTES[dtype],
                    tokens=tokens,
                    seqs=seqs,
                    tp=tp,
                    first_stage=s == 0,
                    last_stage=s == pp - 1,
                    moe=spec.moe,
                    moe_modular=spec.quantization != "mxfp4",  # mxfp4 experts run monolithic kernels without the workspace
                    multimodal=spec.multimodal,
                    gpu_name=inv.name,
                )
                act = memory.activation_bytes(shape, rules)
            graphs = memory.cudagraph_bytes(
                spec.is_moe, len(layer_range), seqs, on_gpu and rules.subtracts_cudagraph_memory and not req.enforce_eager
            )
            avail = requested - weights - non_torch - act - graphs
            budget = memory.StageMemory(s, requested, weights, non_torch, act, graphs, avail, False)
        out.append(budget)
    return out


def make_plan(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> Plan:
    """Predict what vLLM will do with these requirements on this hardware, with remedies when it does not fit.

    `--max-model-len auto` is resolved first: the longest length that holds `min_concurrency` full-length requests."""
    from launcher.sizing import fit, remedies  # both build on assess(); imported here to keep the module graph acyclic

    length_source = "--max-model-len" if req.max_model_len is not None else "prompt + completion + buffer"
    if req.max_model_len == AUTO:
        auto = fit.resolve_auto(spec, inv, req)
        req = replace(req, max_model_len=auto.length)
        length_source = (
            f"auto: the longest length that holds {req.min_concurrency:g} full-length request(s), up to {auto.ceiling:,}"
            if auto.holds
            else f"auto: no length up to {auto.ceiling:,} holds {req.min_concurrency:g} full-length request(s)"
        )
    plan = replace(assess(spec, inv, req), length_source=length_source)
    if not plan.fits:
        plan = remedies.attach(spec, inv, req, plan)
    return plan


def assess(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> Plan:
    """The plan for exactly these requirements (an explicit length), without searching for remedies."""
    rules = rules_for(req.vllm_version)
    if not inv.gpus:
        raise PlanError("no GPUs in the inventory")
    length = req.resolved_max_model_len()
    if length <= 0:
        raise PlanError(f"max_model_len must be a positive integer, got {length}")
    tp, pp, dp = req.tensor_parallel_size, req.pipeline_parallel_size, req.data_parallel_size
    gmu = req.gpu_memory_utilization if req.gpu_memory_utilization is not None else rules.default_gpu_memory_utilization
    problems = check_parallelism(spec, tp, pp, inv, dp)
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
    kinds = {layer.kind for layer in spec.layers}
    choice = choose_engine(
        rules,
        device=inv.device,
        gpu_name=inv.name,
        pp=pp,
        kv_cache_dtype=req.kv_cache_dtype,
        has_mamba="mamba" in kinds,
        has_sliding=bool(kinds & {"sliding", "chunked"}),
    )
    if choice.reason:
        notes.append(choice.reason + " (its KV cache holds every attention layer's whole context).")
    if choice.engine == "v0" and "mla" in kinds and rules.v0_mla == "none":
        raise PlanError(f"vLLM {rules.release} predates MLA: its KV cache for {spec.name} is not modelled; plan for vLLM 0.7 or newer")
    block_size = req.block_size or default_block_size(spec, inv, rules, choice.engine)
    raw_pages, block_size = kv.layer_pages(
        spec.layers,
        tp=tp,
        block_size=block_size,
        elem=elem,
        kv_cache_dtype=req.kv_cache_dtype,
        ssm_elem=DTYPE_BYTES[dtype],
        prefix_caching=req.enable_prefix_caching,
        rules=rules,
        architecture=spec.architecture,
    )
    if choice.engine == "v0":
        raw_pages = v0_pages(raw_pages, rules)
    if req.block_size and block_size != req.block_size:
        notes.append(f"vLLM raises the block size to {block_size} so an attention page holds a Mamba state.")
    hybrid = hybrid_allocator_enabled(rules, req, kinds)
    pages = raw_pages if hybrid else kv.promote_to_full(raw_pages)
    world = tp * pp
    tokens, seqs = batch_defaults(inv, world, length, req, rules, choice.engine)
    async_scheduling = inv.device != "cpu"
    v2_runner = uses_v2_model_runner(rules, is_moe=spec.is_moe, has_mamba="mamba" in kinds, architecture=spec.architecture)
    inflight = concurrent_batches(rules, pp=pp, async_scheduling=async_scheduling, v2_runner=v2_runner) * tokens

    # vLLM runs its ranks on the first TP x PP visible GPUs; each rank profiles its own GPU and all use the smallest result.
    # Data-parallel replica d takes the next TP x PP (get_physical_gpu_ids_for_local_dp_rank, vllm 0.32 v1/engine/utils.py);
    # each replica sizes its own KV cache, and the tightest replica is reported.
    used = inv.gpus[: world * dp] if inv.device != "cpu" and inv.count >= world * dp else inv.gpus
    gpu = min(used, key=lambda g: g.total_bytes)
    total, free = gpu.total_bytes, min(g.free_bytes for g in used)
    requested = memory.requested_bytes(total, gmu)
    try:
        kv.kv_groups(pages, rules)  # a layout this release cannot group: vLLM refuses to start
    except kv.UnsupportedLayout as exc:
        raise PlanError(f"{exc}: {spec.name} does not start on vLLM {rules.release}") from exc
    stages = stage_budgets(spec, inv, req, rules, requested, dtype, tokens, seqs)
    stage_layers = stage_kv_layers(spec, pp, rules)
    workers = [capacity.Worker(layers, budget.kv_available) for layers, budget in zip(stage_layers, stages, strict=True)]
    try:
        cap = capacity.evaluate(pages, raw_pages, workers, length, inflight, rules, choice.engine)
    except kv.UnsupportedLayout as exc:
        raise PlanError(f"{exc}: {spec.name} does not start on vLLM {rules.release} with pipeline parallelism") from exc
    budget = stages[min(range(len(stages)), key=lambda s: workers[s].available)]
    concurrency, kv_tokens, estimated = cap.max_concurrency, cap.kv_tokens, cap.estimated_max_len
    kv_fits = cap.fits and cap.starved_worker is None
    if cap.starved_worker is not None:
        problems.append(
            "No available memory for the cache blocks: the weights and profiled memory exceed "
            f"{gmu:.2f} x {total / GiB:.2f} GiB on pipeline stage {cap.starved_worker}."
        )
    elif not cap.fits:
        problems.append(
            f"KV cache too small: one {length}-token request needs {cap.needed_bytes / GiB:.2f} GiB "
            f"of KV cache, {cap.usable_bytes / GiB:.2f} GiB is available; vLLM refuses to start "
            f"(estimated maximum model length {estimated})."
        )
    elif concurrency * dp < req.min_concurrency:
        replicas = f" ({dp} replicas x {concurrency:.2f})" if dp > 1 else ""
        problems.append(
            f"maximum concurrency {concurrency * dp:.2f}{replicas} is below the requested --min-concurrency {req.min_concurrency:g}."
        )

    if req.kv_cache_memory_bytes is not None and not rules.kv_cache_memory_bytes_flag and inv.device != "cpu":
        problems.append(
            f"vLLM {rules.release} has no --kv-cache-memory-bytes (added in 0.10); size the KV cache with --gpu-memory-utilization instead."
        )
    holders = [p for g in used for p in g.processes]
    held = "".join(f", pid {p.pid} ({p.name or '?'}) {p.used_bytes / GiB:.2f} GiB" for p in holders)[2:]
    # vLLM's start-up check of free memory against the budget: always on GPUs, on CPU only without an explicit KV size.
    if requested > free and (inv.device != "cpu" or req.kv_cache_memory_bytes is None):
        where = "on the node" if inv.device == "cpu" else "on device"
        problems.append(
            f"Free memory {where} ({free / GiB:.2f}/{total / GiB:.2f} GiB) is less than the desired memory "
            f"utilization ({gmu}, {requested / GiB:.2f} GiB); vLLM refuses to start."
            + (f" Memory is held by: {held}." if held else "")
            + (" On CPU, give the KV cache an explicit size (--kv-cache-memory-bytes)." if inv.device == "cpu" else "")
        )
    if req.kv_cache_memory_bytes is not None:
        # An explicit KV size skips the profile: nothing checks that it fits beside the weights until the allocation fails.
        profiled = stage_budgets(spec, inv, replace(req, kv_cache_memory_bytes=None), rules, requested, dtype, tokens, seqs)
        worst = max(profiled, key=lambda b: b.weights + b.non_torch + b.activation + b.cudagraph)
        overhead = worst.weights + worst.non_torch + worst.activation + worst.cudagraph
        if overhead + req.kv_cache_memory_bytes > free:
            problems.append(
                f"--kv-cache-memory-bytes {req.kv_cache_memory_bytes / GiB:.2f} GiB does not fit beside the weights: "
                f"{worst.weights / GiB:.2f} GiB weights + {(overhead - worst.weights) / GiB:.2f} GiB runtime + the KV cache need "
                f"{(overhead + req.kv_cache_memory_bytes) / GiB:.2f} GiB, but {free / GiB:.2f} GiB is free per "
                f"{'node' if inv.device == 'cpu' else 'GPU'}; vLLM would run out of memory allocating it "
                f"(at most {max(0, free - overhead) / GiB:.2f} GiB fits)."
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
    return Plan(
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
        bytes_per_block=cap.bytes_per_block,
        num_kv_groups=len(cap.groups),
        blocks_per_request=cap.blocks_per_request,
        inflight_tokens=inflight,
        max_num_batched_tokens=tokens,
        max_num_seqs=seqs,
        memory=budget,
        num_gpu_blocks=cap.num_blocks,
        kv_cache_tokens=kv_tokens,
        max_concurrency=concurrency,
        estimated_max_model_len=estimated,
        weights_source=spec.weights.source,
        facts_source=spec.facts_source,
        vllm_args=tuple(args),
        kv_fits=kv_fits,
        gpu_indices=tuple(g.index for g in used),
        holders=tuple(holders),
        env=env,
        notes=tuple(notes),
        engine=choice.engine,
        async_scheduling=async_scheduling,
        v2_model_runner=v2_runner,
        hybrid_allocator_disabled=not hybrid,
        data_parallel_size=dp,
        enable_expert_parallel=req.enable_expert_parallel,
        unverified=unverified,
    )


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
    if req.data_parallel_size != 1:
        args += ["--data-parallel-size", str(req.data_parallel_size)]
    if req.enable_expert_parallel:
        args.append("--enable-expert-parallel")
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

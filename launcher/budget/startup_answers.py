"""Answers to vLLM's start-up failures: the context limit, the KV cache and memory (re-planned through the sizing engine
when the user names the model), parallelism, ports and processes."""

from __future__ import annotations

import math
import shlex
from typing import TYPE_CHECKING, Any

from launcher import vllm_messages as msgs
from launcher.budget.answer import V0_BLOCK_SIZE, Answer, gib_text, serve_fix, size_text

if TYPE_CHECKING:
    from launcher.sizing.plan import Plan


# ------------------------------------------------------------------------------------------------ start-up: context -
def h_max_len_over_derived(ctx: Answer) -> None:
    L, D = ctx.n("max_model_len"), ctx.n("derived_max_model_len")
    key = ctx.m.fields.get("derived_key") or ("sliding_window" if "sliding_window=" in ctx.m.text else "the config")
    mml = ctx.n("model_max_length")
    warning_only = ctx.m.entry is not None and ctx.m.entry.severity == "warning"
    if D is None:
        ctx.what = f"--max-model-len {L} is above the model's limit (the message is cut before the limit)"
        return
    starts = max(D, mml) if mml else D
    shown_key = key if key != "None" else "no length key (vLLM's default 2048)"
    ctx.what = f"--max-model-len {L} is above the model's limit ({shown_key}={D})"
    ctx.why = "vLLM refuses a context longer than the model's config allows (positions past it give garbage)"
    if warning_only:
        ctx.why = "VLLM_ALLOW_LONG_MAX_MODEL_LEN is set, so vLLM only warns; positions past the limit may give garbage"
    ctx.set(derived_max_model_len=D, derived_key=key, max_model_len_that_starts=starts)
    ctx.flag = ("--max-model-len", str(starts))
    ctx.fixes.append(f"use --max-model-len {starts} or less")
    if key == "sliding_window":
        ctx.fixes.append("or drop --disable-sliding-window: the window only caps the length when sliding is disabled")
    plan = _replan(ctx, max_model_len=L)
    remedies = [r for r in (plan.remedies if plan else ()) if r.env or "--hf-overrides" in r.vllm_args]
    for remedy in remedies:
        flags = " ".join(f"{k}={v}" for k, v in remedy.env) or shlex.join(list(remedy.vllm_args))
        ctx.fixes.append(f"or {remedy.title}: {flags} ({remedy.detail})")
    if not remedies:
        ctx.fixes.append(
            "or set VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (positions past the limit give garbage unless the model extrapolates); "
            "models with RoPE can be extended with YaRN: pass --model to get the --hf-overrides"
        )


def h_max_len_not_positive(ctx: Answer) -> None:
    ctx.what = f"--max-model-len {ctx.m.fields.get('max_model_len', '')} is not a positive length"
    ctx.why = "vLLM rejects 0 and negative lengths (-1 or 'auto' asks it to fit the memory)"
    ctx.fixes.append("pass the length you need (prompt + completion + buffer), or leave it out for the model's own limit")
    if ctx.given.prompt_tokens and ctx.given.max_tokens:
        ctx.fixes.append(serve_fix(ctx.given.prompt_tokens, ctx.given.max_tokens, ctx.given.buffer))


def h_batched_below_len(ctx: Answer) -> None:
    B, L = ctx.n("max_num_batched_tokens"), ctx.n("max_model_len")
    ctx.what = f"max_num_batched_tokens {B} is smaller than max_model_len {L} with chunked prefill off"
    ctx.why = "without chunked prefill a whole prompt must fit in one batch, so longer prompts would be rejected"
    ctx.set(min_max_num_batched_tokens=L, max_model_len_that_starts=B)
    ctx.flag = ("--max-num-batched-tokens", str(L)) if L else None
    ctx.fixes += [
        f"serve --max-num-batched-tokens {L} or more",
        "or turn chunked prefill on (--enable-chunked-prefill)",
        f"or --max-model-len {B}",
    ]


def h_batched_below_seqs(ctx: Answer) -> None:
    B, S = ctx.n("max_num_batched_tokens"), ctx.n("max_num_seqs")
    ctx.what = f"max_num_batched_tokens {B} is smaller than max_num_seqs {S}"
    ctx.why = "every running sequence needs at least one token of the batch"
    ctx.set(min_max_num_batched_tokens=S, max_num_seqs_that_starts=B)
    ctx.flag = ("--max-num-batched-tokens", str(S)) if S else None
    ctx.fixes += [f"serve --max-num-batched-tokens {S} or more", f"or --max-num-seqs {B} or fewer"]


# ------------------------------------------------------------------------------------------------ start-up: memory --
def _replan(ctx: Answer, **changes: Any) -> Plan | None:
    if ctx.given.replan is None:
        return None
    try:
        return ctx.given.replan(**changes)
    except Exception as exc:  # a plan the engine refuses is an answer too; say so instead of failing the explanation
        ctx.notes.append(f"re-planning with {changes} failed: {exc}")
        return None


def _total_gib(ctx: Answer) -> float | None:
    for kind in ("memory_summary", "free_memory_below_budget", "memory_profile"):
        total = ctx.fact(kind, "total_gib")
        if total:
            return total
    return None


def _plan_memory(ctx: Answer, L: int | None) -> bool:
    """Re-plan at the failing length through the sizing engine (with --model); True when that answered."""
    plan = _replan(ctx, max_model_len=L) if L else _replan(ctx)
    if plan is None:
        return False
    est = plan.estimated_max_model_len
    ctx.set(planned_kv_cache_tokens=plan.kv_cache_tokens, planned_max_model_len_that_fits=est)
    ctx.notes.append(
        f"re-planned with the sizing engine ({plan.model} on {plan.gpus_available} x {plan.gpu_name}, --gpu-memory-utilization "
        f"{plan.gpu_memory_utilization:g}): {plan.kv_cache_tokens:,} KV tokens" + (f", longest context that fits {est:,}" if est else "")
    )
    for remedy in plan.remedies:
        flags = shlex.join(list(remedy.vllm_args)) or " ".join(f"{k}={v}" for k, v in remedy.env)
        ctx.fixes.append(f"{flags}: {remedy.detail}" if flags else f"{remedy.title}: {remedy.detail}")
    return True


def h_kv_too_small(ctx: Answer) -> None:
    L = ctx.n("max_model_len")
    need, have, est = ctx.f("needed_gib"), ctx.f("available_gib"), ctx.n("estimate")
    ctx.set(max_model_len_requested=L, kv_cache_needed_gib=need, kv_cache_available_gib=have)
    ctx.what = f"the KV cache cannot hold one {L}-token request ({gib_text(need or 0)} GiB needed, {gib_text(have or 0)} GiB available)"
    ctx.why = "vLLM needs room for at least one request of max_model_len tokens"
    if est:
        ctx.set(kv_fitting_max_model_len=est)
        ctx.flag = ("--max-model-len", str(est))
        ctx.fixes.append(f"use --max-model-len {est} or less (vLLM's own estimate of what the memory holds)")
    elif L and need and have is not None:
        guess = max(0, int(L * have / need))
        ctx.set(kv_fitting_max_model_len=guess, kv_fitting_max_model_len_is_estimate=True)
        ctx.notes.append(f"{guess} is a proportional estimate ({L} x {gib_text(have)}/{gib_text(need)} GiB): vLLM printed none")
        ctx.fixes.append(f"use --max-model-len {guess} or less (estimate)" if guess else "no length fits: the KV cache is empty")
        ctx.flag = ("--max-model-len", str(guess)) if guess else None
    _memory_more(ctx, (need or 0) - (have or 0))
    _plan_memory(ctx, L)


def h_kv_too_small_v0(ctx: Answer) -> None:
    L, K = ctx.n("max_model_len"), ctx.n("kv_cache_tokens")
    blocks = _blocks(ctx)
    ctx.what = f"the KV cache holds {K} tokens, less than one {L}-token request" + (f" ({blocks} GPU blocks)" if blocks is not None else "")
    ctx.why = "vLLM needs room for at least one request of max_model_len tokens"
    ctx.set(max_model_len_requested=L, kv_fitting_max_model_len=K, gpu_blocks=blocks)
    ctx.fixes.append(f"use --max-model-len {K} or less")
    ctx.flag = ("--max-model-len", str(K)) if K else None
    if L and K:
        ctx.fixes.append(f"or give the KV cache {L / K:.2f}x its memory (raise --gpu-memory-utilization, more GPUs, --kv-cache-dtype fp8)")
    _plan_memory(ctx, L)


def _blocks(ctx: Answer) -> int | None:
    blocks = ctx.fact("gpu_blocks", "gpu_blocks")
    return int(blocks) if blocks is not None else None


def _memory_more(ctx: Answer, more_gib: float) -> None:
    """How much more memory the KV cache needs, and the utilization that gives it when the total is known."""
    if more_gib <= 0:
        return
    total, gmu = _total_gib(ctx), ctx.fact("memory_summary", "gpu_memory_utilization") or ctx.given.gpu_memory_utilization
    ctx.set(kv_cache_more_gib=round(more_gib, 2))
    if total and gmu:
        target = math.ceil((gmu + more_gib / total) * 100) / 100
        if target <= 0.99:
            ctx.set(gpu_memory_utilization_needed=target)
            ctx.flag = ctx.flag or ("--gpu-memory-utilization", f"{target:g}")
            ctx.fixes.append(
                f"or --gpu-memory-utilization {target:g} ({gib_text(more_gib)} GiB more of the {gib_text(total)} GiB GPU), "
                "if that much is free"
            )
            return
    ctx.fixes.append(f"or give the KV cache {gib_text(more_gib)} GiB more (--gpu-memory-utilization, more GPUs, --kv-cache-dtype fp8)")


def h_no_kv_memory(ctx: Answer) -> None:
    have = ctx.fact("kv_memory_available", "available_gib")
    if have is None:
        have = ctx.fact("memory_profile", "available_gib")
    blocks = _blocks(ctx)
    blocks = 0 if blocks is None else blocks  # vLLM raises this exactly when it found room for no block
    weights = ctx.fact("weights_loaded", "weights_gib") or ctx.fact("memory_profile", "weights_gib")
    ctx.set(gpu_blocks=blocks, kv_cache_available_gib=have, weights_gib=weights)
    budget = f"{gib_text(have)} GiB after the weights and activations, " if have is not None else ""
    ctx.what = f"no memory is left for the KV cache ({budget}{blocks} GPU blocks)"
    ctx.why = "the weights and the profiled activations fill the --gpu-memory-utilization budget" + (
        f" (the weights alone take {gib_text(weights)} GiB)" if weights else ""
    )
    if have is not None and have < 0:
        _memory_more(ctx, -have + 0.5)
    ctx.fixes.append("raise --gpu-memory-utilization (if the memory is free), use more GPUs (--tensor-parallel-size), or a quantized model")
    ctx.fixes.append("lower --max-num-batched-tokens / --max-num-seqs (a smaller activation peak) or --enforce-eager (no CUDA graphs)")
    _plan_memory(ctx, ctx.given.max_model_len)


def h_gpu_blocks(ctx: Answer) -> None:
    blocks = ctx.n("gpu_blocks")
    if blocks == 0:
        return h_no_kv_memory(ctx)
    ctx.what = f"vLLM found room for {blocks} KV blocks: {blocks * V0_BLOCK_SIZE} tokens with the V0 block size {V0_BLOCK_SIZE}"
    ctx.why = "a max_model_len above that cannot start (V0 refuses it; V1 estimates the same from memory)"
    ctx.set(gpu_blocks=blocks, kv_fitting_max_model_len=blocks * V0_BLOCK_SIZE)
    L = ctx.given.max_model_len
    if L and blocks is not None and blocks * V0_BLOCK_SIZE < L:
        ctx.what = (
            f"the KV cache holds {blocks * V0_BLOCK_SIZE} tokens ({blocks} GPU blocks x {V0_BLOCK_SIZE}), less than one {L}-token request"
        )
        ctx.set(max_model_len_requested=L)
    ctx.fixes.append(f"use --max-model-len {blocks * V0_BLOCK_SIZE} or less (with --block-size {V0_BLOCK_SIZE})")
    ctx.flag = ("--max-model-len", str(blocks * V0_BLOCK_SIZE))


def h_kv_available(ctx: Answer) -> None:
    have = ctx.f("available_gib")
    if have is not None and have <= 0:
        return h_no_kv_memory(ctx)
    ctx.what = f"vLLM has {gib_text(have or 0)} GiB for the KV cache"
    ctx.set(kv_cache_available_gib=have)
    _plan_memory(ctx, ctx.given.max_model_len)


def _holders(ctx: Answer, held_gib: float) -> str:
    procs = sorted(ctx.given.gpu_processes, key=lambda p: -p.used_bytes)
    if not procs:
        return f"{gib_text(held_gib)} GiB held by other processes (see nvidia-smi)"
    listed = ", ".join(f"pid {p.pid}{' (' + p.name + ')' if p.name else ''} {gib_text(p.used_bytes / 2**30)} GiB" for p in procs[:4])
    return f"{gib_text(held_gib)} GiB held by {listed}"


def h_free_memory(ctx: Answer) -> None:
    """Free memory below --gpu-memory-utilization x total (GPU), or the node's available memory below it (CPU)."""
    F, T, U, R = ctx.f("free_gib"), ctx.f("total_gib"), ctx.f("gpu_memory_utilization"), ctx.f("requested_gib")
    cpu = ctx.m.kind == "cpu_memory_below_budget"
    device = "the node" if cpu else "the GPU"
    if F is None or T is None:
        ctx.what = "free memory is below the --gpu-memory-utilization budget (the message is cut before the numbers)"
        return
    raw = ctx.m.fields
    ctx.what = (
        f"free memory ({raw['free_gib']}/{raw['total_gib']} GiB) is below the budget ({U} x total = {raw.get('requested_gib', '?')} GiB)"
    )
    ctx.why = "vLLM reserves --gpu-memory-utilization of the whole device and refuses when other processes hold part of it" + (
        " (on the CPU backend the flag sets the share of the node's memory)" if cpu else ""
    )
    passing = math.floor(F / T * 100) / 100
    freed = round((R or 0) - F, 2) if R else None
    ctx.set(free_gib=F, total_gib=T, freed_gib_needed=freed if freed and freed > 0 else None)
    held = T - F
    plan = _replan(ctx, gpu_memory_utilization=passing) if passing >= 0.01 else None
    if passing < 0.01:
        ctx.numbers["gpu_memory_utilization_that_passes"] = None
        ctx.what += f"; no utilization works: {_holders(ctx, held)}"
        ctx.fixes.append(f"free {gib_text(freed or held)} GiB on {device} (stop the other processes), then start again")
        return
    if plan is not None and not plan.fits:
        ctx.numbers["gpu_memory_utilization_that_passes"] = None
        ctx.what += f"; no utilization works: {_holders(ctx, held)}, and the model needs more than the {raw['free_gib']} GiB left"
        ctx.notes.append(f"re-planned at --gpu-memory-utilization {passing:g}: " + "; ".join(plan.problems))
        ctx.fixes.append(f"free {gib_text(freed or held)} GiB on {device} (stop the other processes), or use more GPUs")
        return
    ctx.set(gpu_memory_utilization_that_passes=passing)
    ctx.flag = ("--gpu-memory-utilization", f"{passing:.2f}")
    leaves = passing * T
    ctx.fixes.append(
        f"--gpu-memory-utilization {passing:g} passes this check: it leaves vLLM {gib_text(leaves)} GiB for weights, activations and "
        f"the KV cache (instead of {gib_text(R or 0)})"
    )
    if leaves < 0.25 * T:
        ctx.notes.append(
            f"{gib_text(leaves)} GiB is little: unless the weights, activations and one request fit in it, no utilization works here "
            f"and the other processes must free memory"
        )
    ctx.fixes.append(f"or free {gib_text(freed or 0)} GiB on {device}: {_holders(ctx, held)}")
    if plan is not None:
        ctx.notes.append(f"re-planned at {passing:g}: fits, {plan.kv_cache_tokens:,} KV tokens, concurrency {plan.max_concurrency:.2f}x")
        ctx.set(planned_kv_cache_tokens=plan.kv_cache_tokens)
    else:
        ctx.notes.append("pass --model (and --gpu) to check that the weights and one request still fit in that budget")


def h_external_weights(ctx: Answer) -> None:
    W, T, U = ctx.f("external_gib"), ctx.f("total_gib"), ctx.f("gpu_memory_utilization")
    ctx.what = f"weights held outside vLLM ({gib_text(W or 0)} GiB) exceed the utilization budget ({U} x {gib_text(T or 0)} GiB)"
    ctx.why = "externally held weights count against --gpu-memory-utilization"
    if W and T:
        need = math.ceil(W / T * 100) / 100 + 0.05
        ctx.set(gpu_memory_utilization_needed=round(need, 2))
        ctx.flag = ("--gpu-memory-utilization", f"{need:.2f}")
        ctx.fixes.append(f"raise --gpu-memory-utilization above {W / T:.2f}, e.g. {need:.2f} (room for activations and the KV cache)")


def h_cpu_kv_alloc(ctx: Answer) -> None:
    F, R = ctx.f("free_gib"), ctx.f("requested_gib")
    ctx.what = f"the node has {gib_text(F or 0)} GiB available, less than the {gib_text(R or 0)} GiB asked for the KV cache"
    ctx.why = "the CPU backend allocates its KV cache in the NUMA node's memory"
    if F is not None:
        fits = max(0, math.floor(F) - 1)
        ctx.set(kv_cache_gib_that_fits=fits)
        ctx.fixes.append(f"ask for {fits} GiB or less: VLLM_CPU_KVCACHE_SPACE={fits} or --kv-cache-memory-bytes {fits}G")


def h_cpu_no_kv(ctx: Answer) -> None:
    W, R, U = ctx.f("weights_gib"), ctx.f("requested_gib"), ctx.f("min_utilization")
    ctx.what = (
        f"the worker already uses {gib_text(W or 0)} GiB, more than the {gib_text(R or 0)} GiB reserved for it: "
        "nothing is left for the KV cache"
    )
    ctx.why = "on the CPU backend --gpu-memory-utilization sets the share of the node's memory vLLM may use"
    if U is not None:
        target = round(math.floor(U * 100) / 100 + 0.05, 2)
        ctx.set(gpu_memory_utilization_needed=target)
        ctx.flag = ("--gpu-memory-utilization", f"{target:g}")
        ctx.fixes.append(f"--gpu-memory-utilization {target:g} (more than {U:g}), or set the KV size: VLLM_CPU_KVCACHE_SPACE=N (GiB)")


def h_memory_profiling(ctx: Answer) -> None:
    a, b = ctx.f("initial_memory"), ctx.f("current_memory")
    ctx.what = "free GPU memory changed while vLLM profiled it" + (f" ({a} -> {b})" if a is not None and b is not None else "")
    ctx.why = "another process on the same GPU allocated or released memory during start-up, so vLLM's measurement is wrong"
    if a is not None and b is not None:
        ctx.set(memory_change=round(b - a, 2))
    ctx.fixes.append("start vLLM when nothing else starts or stops on that GPU (one server per GPU), or give it its own container")


def h_load_oom(ctx: Answer) -> None:
    ctx.what = "the weights did not fit in GPU memory while loading"
    ctx.why = "the weights (per GPU) are larger than the memory free on the GPU"
    oom = max((m for m in ctx.matches if m.kind == "cuda_oom"), key=lambda m: len(m.fields), default=None)
    if oom is not None:
        _oom_numbers(ctx, oom)
        ctx.what += _oom_text(ctx)
    ctx.fixes.append("use more GPUs (--tensor-parallel-size), a quantized checkpoint (--quantization), or free the GPU")
    _plan_memory(ctx, ctx.given.max_model_len)


def _unit(m: msgs.Match, name: str) -> float | None:
    value = m.value(name)
    if value is None:
        return None
    unit = (m.fields.get(name + "_unit") or "GiB").lower()
    return value / 1024 if unit.startswith("m") else value / 1024**2 if unit.startswith("k") else value


def _oom_numbers(ctx: Answer, oom: msgs.Match) -> None:
    tried = _unit(oom, "tried")
    free = _unit(oom, "free") if oom.fields.get("free") else _unit(oom, "free2")
    total = _unit(oom, "total") if oom.fields.get("total") else _unit(oom, "total2")
    other = _unit(oom, "other")
    ctx.set(
        oom_tried_gib=round(tried, 6) if tried is not None else None,
        oom_free_gib=round(free, 6) if free is not None else None,
        oom_total_gib=total,
        oom_shortfall_gib=round(tried - free, 2) if tried is not None and free is not None else None,
    )
    if other is not None:
        pid = oom.fields.get("pid")
        ctx.set(other_process_gib=round(other, 2))
        ctx.notes.append(f"process {pid} holds {gib_text(other)} GiB of that GPU")


def _oom_text(ctx: Answer) -> str:
    """': 3.5 GiB asked, 3.09 GiB free of 23.69 GiB (0.41 GiB short)', from the numbers _oom_numbers set."""
    n = ctx.numbers
    if "oom_tried_gib" not in n:
        return ""
    parts = [f"{size_text(n['oom_tried_gib'])} asked"]
    if "oom_free_gib" in n:
        parts.append(f"{size_text(n['oom_free_gib'])} free" + (f" of {size_text(n['oom_total_gib'])}" if "oom_total_gib" in n else ""))
    elif "oom_total_gib" in n:
        parts.append(f"of {size_text(n['oom_total_gib'])}")
    short = n.get("oom_shortfall_gib")
    return ": " + ", ".join(parts) + (f" ({size_text(short)} short)" if short else "")


def h_cuda_oom(ctx: Answer) -> None:
    _oom_numbers(ctx, ctx.m)
    ctx.what = "CUDA ran out of memory" + _oom_text(ctx)
    ctx.why = "the weights, activations or the sampler warm-up did not fit beside the KV cache"
    gmu = ctx.given.gpu_memory_utilization
    if gmu:
        lower = max(0.5, round(gmu - 0.05, 2))
        ctx.set(gpu_memory_utilization_lower=lower)
        ctx.flag = ("--gpu-memory-utilization", f"{lower:g}")
        ctx.fixes.append(f"lower --gpu-memory-utilization to {lower:g} (leaves room outside vLLM's budget), or --max-num-seqs")
    else:
        ctx.fixes.append("lower --gpu-memory-utilization by 0.05 (room outside vLLM's budget) or --max-num-seqs / --max-num-batched-tokens")
    ctx.fixes.append("or use more GPUs (--tensor-parallel-size)")


def h_warmup_oom(ctx: Answer) -> None:
    N = ctx.n("num_requests")
    ctx.what = f"CUDA ran out of memory warming up the sampler with {N} requests (max_num_seqs)"
    ctx.why = "the sampler's logits for max_num_seqs requests did not fit beside the KV cache"
    if N:
        ctx.set(max_num_seqs_that_fits=max(1, N // 2))
        ctx.flag = ("--max-num-seqs", str(max(1, N // 2)))
        ctx.fixes.append(f"--max-num-seqs {max(1, N // 2)} (half), or lower --gpu-memory-utilization by 0.05")


def h_mamba(ctx: Answer) -> None:
    S, B = ctx.n("max_num_seqs"), ctx.n("mamba_blocks")
    ctx.what = f"max_num_seqs {S} is more than the {B} Mamba state blocks the memory holds"
    ctx.why = "every decoding sequence of a hybrid (Mamba) model needs its own state block"
    ctx.set(max_num_seqs_that_starts=B)
    ctx.flag = ("--max-num-seqs", str(B)) if B else None
    ctx.fixes.append(f"--max-num-seqs {B} or fewer, or give the KV cache more memory")


# ------------------------------------------------------------------------------------------------ parallelism, ports -
def h_heads(ctx: Answer) -> None:
    H, TP = ctx.n("heads"), ctx.n("tensor_parallel_size")
    if H is None:
        ctx.what = "the attention heads do not split evenly over the tensor-parallel size"
        return
    sizes = [d for d in range(1, H + 1) if H % d == 0]
    ctx.what = f"{H} attention heads cannot be split evenly over --tensor-parallel-size {TP}"
    ctx.why = "vLLM gives every GPU the same number of attention heads"
    ctx.set(valid_tensor_parallel_sizes=sizes)
    below = max((d for d in sizes if TP is None or d <= TP), default=1)
    above = min((d for d in sizes if TP is not None and d > TP), default=None)
    ctx.flag = ("--tensor-parallel-size", str(below))
    ctx.fixes.append(f"use --tensor-parallel-size {below}" + (f" (or {above} with that many GPUs)" if above else ""))
    ctx.fixes.append(
        f"the sizes that divide {H} heads: {', '.join(map(str, sizes))}; combine with --pipeline-parallel-size to use more GPUs"
    )


def h_world_size(ctx: Answer) -> None:
    W, N = ctx.n("world_size"), ctx.n("gpus")
    ctx.what = f"tensor x pipeline parallel size {W} is more than the {N} GPUs on this node"
    ctx.why = "vLLM's default executor runs one worker per GPU on one node"
    ctx.set(max_world_size=N)
    if N:
        tp = 2 ** int(math.log2(N)) if N > 0 else 1
        ctx.flag = ("--tensor-parallel-size", str(tp))
        ctx.fixes.append(f"use --tensor-parallel-size {tp} (x --pipeline-parallel-size at most {N} GPUs in all)")
    ctx.fixes.append("or span nodes: --distributed-executor-backend ray, or --nnodes with multiprocessing")


def h_port(ctx: Answer) -> None:
    facts = msgs.port_facts(ctx.text)
    port = facts.port if facts.port is not None or facts.internal else ctx.given.port
    if facts.internal and port is None:
        ctx.what = "an internal port vLLM or torch.distributed binds is taken (not the API --port)"
        ctx.why = "vLLM binds an ephemeral port for its engine/worker rendezvous (and torch a store port); --port is not involved"
        ctx.fixes.append("check for leftover vLLM processes (`ps aux | grep -i vllm`), and set VLLM_PORT / MASTER_PORT to a free range")
        return
    if port is None:
        ctx.what = "the port vLLM was told to listen on is already in use"
        ctx.why = "another process is listening on it (often a previous vLLM that is still running)"
        ctx.fixes.append("pass --port with a free port (the text does not name the port: `ss -ltnp` shows who listens)")
        return
    ctx.set(port=port)
    ctx.flag = ("--port", str(port + 1))
    ctx.what = f"port {port} is already in use" + (f" by {facts.holder}" if facts.holder else "")
    ctx.why = "another process is listening on it (often a previous vLLM that is still running)"
    ctx.fixes.append(f"stop that process (`ss -ltnp 'sport = :{port}'` shows it), or pick another --port, e.g. {port + 1}")


def h_engine_init(ctx: Answer) -> None:
    ctx.what = "vLLM's engine failed to start"
    ctx.why = "the root cause is printed above this line in vLLM's log"
    ctx.fixes.append("paste the whole log: the first error in it is the cause")


def h_engine_dead(ctx: Answer) -> None:
    ctx.what = "vLLM's engine died"
    ctx.why = "the engine core process exited (crash, OOM kill, or a killed worker)"
    ctx.fixes.append("the first error above this one in the log is the cause; `dmesg` shows an OOM kill")


def h_worker_died(ctx: Answer) -> None:
    code = ctx.m.fields.get("exit_code", "")
    if code == "-4" or "exit code: -4" in ctx.text:
        ctx.what = "a vLLM worker died of an illegal instruction (SIGILL)"
        ctx.why = "its CPU kernels used instructions this CPU or sandbox does not allow (on x86 usually AMX tiles for bfloat16)"
        ctx.fixes.append("on vLLM's CPU backend run in float16 (--dtype float16), which avoids the AMX bfloat16 kernels")
        ctx.flag = ("--dtype", "float16")
        return
    ctx.what = f"a vLLM worker died unexpectedly{f' (exit code {code})' if code else ''}"
    ctx.why = "a worker crashed or was killed (exit code -9: the kernel's OOM killer or a user)"
    ctx.fixes.append("the first error above this one in the log is the cause; `dmesg` shows an OOM kill")


def h_gated(ctx: Answer) -> None:
    ctx.what = "the Hub refused the model (401/403: gated or private)"
    ctx.why = "its files need an accepted licence and a token"
    ctx.fixes.append("accept the licence on huggingface.co and export HF_TOKEN (never pass it as a flag)")


def h_not_found(ctx: Answer) -> None:
    ctx.what = "vLLM could not find the model"
    ctx.why = "the path does not exist, or the repo id is wrong or not cached offline"
    ctx.fixes.append("check --model; with HF_HUB_OFFLINE=1 the model must already be in the HF cache")


def h_weights_fact(ctx: Answer) -> None:
    W = ctx.f("weights_gib")
    ctx.what = f"vLLM loaded {gib_text(W or 0)} GiB of weights per GPU (this log shows no error)"
    ctx.set(weights_gib=W)
    _plan_memory(ctx, ctx.given.max_model_len)


def h_memory_fact(ctx: Answer) -> None:
    have = ctx.f("available_gib")
    if have is not None and have <= 0:
        return h_no_kv_memory(ctx)
    ctx.what = f"vLLM's memory profile: {gib_text(have or 0)} GiB left for the KV cache (this log shows no error)"
    ctx.set(kv_cache_available_gib=have, weights_gib=ctx.f("weights_gib"))

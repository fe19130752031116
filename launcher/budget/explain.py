"""Explain vLLM's messages with the true numbers: what happened, why, and the fix, with the number that makes it work.

Pure: a text and the numbers the user knows in, an Explanation out. The only way out is `replan`, a callback the
command passes when the user names the model (`--model`): memory answers are then re-planned through the sizing engine
instead of estimated from the message alone.

Every kind in the message catalog (`launcher/vllm_messages.py`) has a handler here. Numbers go into
`Explanation.numbers` under stable keys (the ones the error corpus in tests/data states), and into the text.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import vllm_messages as msgs

if TYPE_CHECKING:
    from launcher.hardware import GpuProcess
    from launcher.sizing.plan import Plan

DEFAULT_BUFFER = 1000
V0_BLOCK_SIZE = 16  # vLLM's CUDA block size before V1 (CacheConfig default); "# GPU blocks" x 16 = KV tokens
Replan = Callable[..., "Plan"]  # keyword arguments: max_model_len, gpu_memory_utilization, tensor_parallel_size
# Kinds whose answer names the processes holding the GPU ("no utilization works: N GiB held by pid ...").
HOLDER_KINDS = frozenset({"free_memory_below_budget", "cpu_memory_below_budget", "load_oom", "cuda_oom"})


@dataclass(frozen=True)
class Explanation:
    recognised: bool
    kind: str
    what: str
    why: str = ""
    fixes: tuple[str, ...] = field(default_factory=tuple)
    numbers: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default_factory=tuple)  # assumptions, estimates, numbers that contradict the text
    source: str = ""  # which vLLM releases and source line emit the message
    phase: str = ""
    flag: tuple[str, str] | None = None  # the one vLLM flag change that makes it work (serve re-runs the user's command with it)


@dataclass(frozen=True)
class Given:
    """What the user told us besides the text."""

    max_tokens: int | None = None
    max_model_len: int | None = None
    prompt_tokens: int | None = None
    buffer: int = DEFAULT_BUFFER
    gpu_memory_utilization: float | None = None
    gpu_processes: tuple[GpuProcess, ...] = ()
    replan: Replan | None = None
    port: int | None = None


def explain(
    text: str,
    *,
    max_tokens: int | None = None,
    max_model_len: int | None = None,
    prompt_tokens: int | None = None,
    buffer: int = DEFAULT_BUFFER,
    gpu_memory_utilization: float | None = None,
    gpu_processes: tuple[GpuProcess, ...] = (),
    replan: Replan | None = None,
    port: int | None = None,
    phases: frozenset[str] | None = None,
) -> Explanation:
    """What really happened, from a vLLM error text or log (any release) plus whatever numbers the caller knows.
    `phases` limits the answer to messages of those phases (serve's diagnosis ignores per-request errors)."""
    given = Given(max_tokens, max_model_len, prompt_tokens, buffer, gpu_memory_utilization, gpu_processes, replan, port)
    matches = [m for m in msgs.find_all(text) if phases is None or m.phase in phases or m.phase == "fact"]
    if phases is not None and all(m.phase == "fact" for m in matches):  # sizes alone explain a failure only when they show it
        matches = [m for m in matches if _shows_failure(m)]
    if not matches:
        return Explanation(
            False,
            "unknown",
            "no vLLM context-length or start-up message recognised in this text",
            "vllm-launch knows the messages of every vLLM release from 0.2 to 0.33; paste the whole error body or log",
            ("`vllm-launch check --url URL --prompt-tokens N --max-tokens N` tells what a live server does",),
        )
    ctx = _Ctx(_main(matches), matches, given, text)
    HANDLERS[ctx.m.kind](ctx)
    return ctx.result()


def _shows_failure(m: msgs.Match) -> bool:
    """A log line with sizes that is itself the failure: no KV block, or a KV budget at or below zero."""
    available = m.value("available_gib") if m.kind == "kv_memory_available" else None
    return (m.kind == "gpu_blocks" and m.value("gpu_blocks") == 0) or (available is not None and available <= 0)


def _main(matches: list[msgs.Match]) -> msgs.Match:
    """The message to answer: the first (most telling) one, in its most detailed match; of log lines that only carry
    sizes, one that shows the failure."""
    first = matches[0]
    if first.phase == "fact":
        sizes = [m for m in matches if m.kind in ("gpu_blocks", "kv_memory_available", "memory_profile", "memory_summary")]
        first = ([m for m in matches if _shows_failure(m)] or sizes or [first])[0]
    same = [m for m in matches if m.kind == first.kind]
    return max(same, key=lambda m: (sum(1 for v in m.fields.values() if any(c.isdigit() for c in v)), -m.start))


# ------------------------------------------------------------------------------------------------ context ----------
class _Ctx:
    """The main message, the other messages of the same text (log lines with sizes), and the answer being built."""

    def __init__(self, main: msgs.Match, matches: list[msgs.Match], given: Given, text: str) -> None:
        self.m, self.matches, self.given, self.text = main, matches, given, text
        self.what = self.why = ""
        self.fixes: list[str] = []
        self.notes: list[str] = []
        self.numbers: dict[str, Any] = {}
        self.flag: tuple[str, str] | None = None

    def n(self, name: str) -> int | None:
        return self.m.number(name)

    def f(self, name: str) -> float | None:
        return self.m.value(name)

    def fact(self, kind: str, name: str) -> float | None:
        for other in self.matches:
            if other.kind == kind and other.value(name) is not None:
                return other.value(name)
        return None

    def other(self, kind: str) -> msgs.Match | None:
        return next((o for o in self.matches if o.kind == kind and o is not self.m), None)

    def set(self, **numbers: Any) -> None:
        self.numbers.update({k: v for k, v in numbers.items() if v is not None})

    def contradict(self, name: str, said: int | None, shown: int | None, meaning: str) -> None:
        if said is not None and shown is not None and said != shown:
            self.notes.append(f"you gave {name} {said}, but the message shows {shown} ({meaning}); the numbers here follow the message")

    def result(self) -> Explanation:
        entry = self.m.entry
        fixes = [f[3:] if i == 0 and f.startswith("or ") else f for i, f in enumerate(self.fixes)]  # alternatives after the first
        return Explanation(
            True,
            self.m.kind,
            self.what,
            self.why,
            tuple(fixes),
            self.numbers,
            tuple(self.notes),
            entry.releases if entry else "",
            entry.phase if entry else "",
            self.flag,
        )


def _serve(prompt: int, completion: int, buffer: int) -> str:
    plan = shlex.join(["vllm-launch", "--prompt", str(prompt), "--completion", str(completion)])
    return (
        f"serve --max-model-len {prompt + completion} at least; {prompt + completion + buffer} with the default "
        f"{buffer}-token buffer (`{plan}` plans and starts it)"
    )


def _size(gib: float) -> str:
    """GiB with the unit; crumbs in MiB/KiB with their GiB value too (0.002 GiB = 2 MiB)."""
    text = _gib(gib)
    exact = f"{gib:.3f}" if gib >= 0.001 else f"{gib:.1g}"
    return f"{text} ({exact} GiB)" if text.endswith(("MiB", "KiB")) else f"{text} GiB"


def _gib(value: float) -> str:
    """GiB as a person reads it: 2 decimals, 3 below 1 GiB, and MiB/KiB for crumbs (a 448 KiB free GPU is not "0 GiB")."""
    if value != value:
        return "?"
    if 0 < abs(value) < 0.01:
        mib = value * 1024
        return f"{mib:.2f} MiB".replace(".00 ", " ") if abs(mib) >= 1 else f"{mib * 1024:.0f} KiB"
    text = f"{value:.3f}" if 0 < abs(value) < 1 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".")


# ------------------------------------------------------------------------------------------------ requests ---------
def _budget(ctx: _Ctx, L: int, P: int | None, M: int | None, *, at_least: bool = False, sent_no_max_tokens: bool = False) -> None:
    """The numbers every context-length answer gives: what fits now, what to cut, what to serve."""
    g = ctx.given
    ctx.set(max_model_len=L)
    if P is not None:
        ctx.set(**({"prompt_tokens_at_least": P} if at_least else {"prompt_tokens": P}))
    if P is not None and not at_least and P < L:
        ctx.set(max_tokens_that_fits=L - P)
        ctx.fixes.append(f"send max_tokens={L - P} for this {P}-token prompt: max_model_len {L} minus the prompt")
    room = L - max(M or 0, 1)
    if M is not None and M >= L:
        ctx.set(max_tokens_ceiling=L)
        ctx.fixes.append(f"max_tokens {M} leaves no room for any prompt: it must be below max_model_len {L}")
    elif room > 0:
        ctx.set(prompt_tokens_cut_to=room)
        keep = f" to keep max_tokens={M}" if M else " (one output token needs one free position)"
        ctx.fixes.append(f"or cut the prompt to {room} tokens{keep}")
    if P is not None and M:
        total = P + M
        ctx.set(**({"min_max_model_len_lower_bound": total} if at_least else {"min_max_model_len": total}))
        ctx.set(max_model_len_with_buffer=total + g.buffer)
        ctx.fixes.append(
            ("or " if ctx.fixes else "") + _serve(P, M, g.buffer) + (" (the prompt is at least that long)" if at_least else "")
        )
    elif P is not None and sent_no_max_tokens:  # the request itself needs only one more position
        ctx.set(min_max_model_len=P + 1, max_model_len_with_buffer=P + 1 + g.buffer)
        ctx.fixes.append(f"or serve --max-model-len {P + 1} at least (this prompt plus one output token; add the output you want)")
    elif P is not None:
        ctx.set(min_max_model_len_lower_bound=P + 1)
        ctx.fixes.append(
            f"or serve --max-model-len {P + 1} at least (the prompt plus one output token; add your max_tokens and a buffer, "
            f"e.g. `vllm-launch --prompt {P} --completion N`)"
        )


def h_prompt_plus_output(ctx: _Ctx) -> None:
    """`prompt + max_tokens > max_model_len`: every release up to 0.31 rejects it (0.32+ clamps instead)."""
    L, P, M = ctx.n("max_model_len"), ctx.n("prompt_tokens"), ctx.n("max_tokens")
    g = ctx.given
    at_least = "at_least" in ctx.m.fields
    if ctx.m.kind == "passed_input_tokens" and P is not None and L is not None and M is not None and P == L - M + 1:
        at_least = True  # text prompts are tokenized with max_length = L - M + 1: the count stops there
        ctx.notes.append(f"{P} = {L} - {M} + 1 is where vLLM stops counting a text prompt: the prompt is at least that long")
    M = M if M is not None else g.max_tokens
    P = P if P is not None else g.prompt_tokens
    ctx.contradict("--max-model-len", g.max_model_len, L, "the server's max_model_len")
    ctx.contradict("--max-tokens", g.max_tokens, ctx.n("max_tokens"), "the request's max_tokens")
    ctx.contradict("--prompt-tokens", g.prompt_tokens, ctx.n("prompt_tokens"), "the prompt's length")
    if L is None:
        ctx.what, ctx.why = "the request does not fit the model's context (the message is cut before the numbers)", ""
        return
    left = L - (M or 0)
    prompt = f"at least {P}" if at_least else str(P)
    ctx.what = f"Given max_tokens={M} and max_model_len={L}, only {left} tokens are left for the prompt; your prompt has {prompt}."
    ctx.why = "vLLM (up to 0.31) rejects a request when prompt + max_tokens > max_model_len; 0.32 and later cut max_tokens instead"
    _budget(ctx, L, P, M, at_least=at_least)


def h_prompt_over_len(ctx: _Ctx) -> None:
    """The prompt alone is too long (no room for even one output token)."""
    kind, g = ctx.m.kind, ctx.given
    L, P = ctx.n("max_model_len"), ctx.n("prompt_tokens")
    ctx.contradict("--max-model-len", g.max_model_len, L, "the server's max_model_len")
    L = L if L is not None else g.max_model_len
    at_least = "at_least" in ctx.m.fields
    M = g.max_tokens
    if L is None or P is None:
        ctx.what = "the prompt is longer than the model's context (the message is cut before the numbers)"
        return
    if kind == "decoder_prompt_fills_len" or (kind in ("requested_in_messages",) and P == L):
        ctx.what = f"the prompt ({P} tokens) fills max_model_len {L}: no position is left for an output token"
    else:
        ctx.what = f"the prompt alone ({'at least ' if at_least else ''}{P} tokens) exceeds max_model_len {L}"
    ctx.why = {
        "requested_in_messages": "the request sent no max_tokens, and its prompt already reaches max_model_len",
        "pooling_input_over_len": "embedding and scoring inputs must fit max_model_len",
        "decoder_prompt_too_long": "the engine checks the prompt after multimodal expansion; max_tokens is not counted here",
        "decoder_prompt_fills_len": "vLLM needs room for at least one output token",
    }.get(kind, "the prompt is checked before any output is considered (max_tokens is not subtracted)")
    if kind == "pooling_input_over_len":
        ctx.set(max_model_len=L, prompt_tokens=P, prompt_tokens_cut_to=L, min_max_model_len=P)
        ctx.fixes += [f"cut the input to {L} tokens (or set truncate_prompt_tokens={L})", f"or serve --max-model-len {P} at least"]
        return
    _budget(ctx, L, P, M, at_least=at_least, sent_no_max_tokens=kind == "requested_in_messages" and M is None)
    ctx.fixes.insert(0, "in multi-turn episodes, drop or summarise old turns")


def h_request_has(ctx: _Ctx) -> None:
    """`maximum context length is X ... your request has P input tokens` (0.10 to 0.19): X is max_model_len on the chat
    path, but max_model_len - max_tokens on /v1/completions in 0.11 to 0.15 (serving_completion.py _build_render_config)."""
    X, P = ctx.n("shown_limit"), ctx.n("prompt_tokens")
    g = ctx.given
    L, M = g.max_model_len, g.max_tokens
    if X is None or P is None:
        ctx.what = "the request's prompt does not fit (the message is cut before the numbers)"
        return
    ctx.set(prompt_tokens=P, shown_limit=X)
    misleading = f"the message's 'maximum context length is {X}' is max_model_len - max_tokens, not the model's context"
    if L is not None and M is not None:
        if L - M == X:
            ctx.why = misleading
            return _with_numbers(ctx, L, P, M)
        if L == X:
            ctx.notes.append(f"max_model_len {L} equals the number shown: this came from the chat path, where the prompt alone reached it")
            return _prompt_alone(ctx, L, P)
        ctx.notes.append(
            f"your numbers contradict the message: max_model_len {L} - max_tokens {M} = {L - M}, but it shows {X} "
            f"(and {X} is not max_model_len either); check both values"
        )
        return _with_numbers(ctx, X + M, P, M, inferred=f"taking the message's {X} as max_model_len - max_tokens")
    if L is not None:
        if L == X:
            return _prompt_alone(ctx, L, P)
        if L > X:
            ctx.notes.append(f"inferred max_tokens = max_model_len - {X} = {L - X} (the message shows max_model_len - max_tokens)")
            ctx.why = misleading
            return _with_numbers(ctx, L, P, L - X)
        ctx.notes.append(f"your --max-model-len {L} is smaller than the {X} the message shows: the server's max_model_len is at least {X}")
        return _prompt_alone(ctx, X, P)
    if M is not None:
        ctx.notes.append(
            f"inferred max_model_len = {X} + max_tokens {M} = {X + M}, as /v1/completions reports it; on /v1/chat/completions "
            f"{X} is max_model_len itself"
        )
        ctx.why = misleading
        return _with_numbers(ctx, X + M, P, M)
    ctx.what = f"the request's {P}-token prompt does not fit what the server allowed for it ({X} tokens)"
    ctx.why = (
        f"this message is misleading: on /v1/completions (vLLM 0.11 to 0.15) {X} is max_model_len - max_tokens; on "
        f"/v1/chat/completions it is max_model_len"
    )
    ctx.set(prompt_tokens_cut_to=X - 1)
    ctx.fixes += [
        f"cut the prompt to {X - 1} tokens (fits on both paths), or lower max_tokens",
        "pass --max-tokens (or --max-model-len) to get the true numbers; `vllm-launch check --url URL` reads max_model_len",
    ]


def _with_numbers(ctx: _Ctx, L: int, P: int, M: int, inferred: str = "") -> None:
    ctx.what = f"Given max_tokens={M} and max_model_len={L}, only {L - M} tokens are left for the prompt; your prompt has {P}."
    if inferred:
        ctx.notes.append(inferred)
    if not ctx.why:
        ctx.why = "vLLM rejects a request when prompt + max_tokens > max_model_len"
    _budget(ctx, L, P, M)


def _prompt_alone(ctx: _Ctx, L: int, P: int) -> None:
    ctx.what = f"the prompt alone ({P} tokens) reaches max_model_len {L}"
    ctx.why = "on the chat path vLLM rejects a prompt of max_model_len tokens or more before looking at max_tokens"
    _budget(ctx, L, P, ctx.given.max_tokens)


def h_chars(ctx: _Ctx) -> None:
    """A text prompt with more characters than max_model_len tokens can hold (checked before tokenizing)."""
    L, C, CM, T = ctx.n("max_model_len"), ctx.n("prompt_chars"), ctx.n("max_prompt_chars"), ctx.n("max_input_tokens")
    M = ctx.n("max_tokens") or ctx.given.max_tokens
    if L is None or C is None:
        ctx.what = "the prompt's text is too long for the context (the message is cut before the numbers)"
        return
    limit = T if T is not None else (L - M if M is not None else L)
    ctx.what = f"the prompt's {C:,} characters cannot fit in {limit} input tokens (max_model_len {L})"
    ctx.why = "vLLM rejects texts longer than max_input_tokens x the tokenizer's longest token before tokenizing them"
    ctx.set(max_model_len=L, prompt_chars=C, max_prompt_chars=CM, prompt_tokens_cut_to=limit)
    ctx.fixes.append(f"cut the prompt to {limit} tokens" + (f" (at most {CM:,} characters)" if CM else ""))
    if M:
        ctx.fixes.append(f"or lower max_tokens below {M} to leave the prompt more room")


def h_max_tokens_over_len(ctx: _Ctx) -> None:
    L, M = ctx.n("max_model_len"), ctx.n("max_tokens")
    g = ctx.given
    ctx.contradict("--max-model-len", g.max_model_len, L, "the server's max_model_len")
    param = ctx.m.fields.get("param", "max_tokens")
    P = g.prompt_tokens
    if L is None:
        ctx.what = f"{param}={M} is larger than the whole context (the message is cut before max_model_len)"
        return
    ctx.what = f"{param}={M} is larger than the whole context (max_model_len={L})"
    ctx.why = "vLLM rejects any max_tokens above max_model_len, whatever the prompt"
    ctx.set(max_model_len=L, max_tokens_ceiling=L, max_tokens=M)
    if P is not None and P < L:
        ctx.set(max_tokens_that_fits=L - P)
        ctx.fixes.append(f"send max_tokens={L - P} for this {P}-token prompt (max_model_len {L} minus the prompt)")
        if M:
            ctx.set(min_max_model_len=P + M, max_model_len_with_buffer=P + M + g.buffer)
            ctx.fixes.append("or " + _serve(P, M, g.buffer))
    else:
        ctx.fixes.append(f"send max_tokens below {L}: max_model_len {L} minus the prompt (pass --prompt-tokens for the exact number)")
        if M:
            ctx.set(min_max_model_len_lower_bound=M + 1)
            ctx.fixes.append(f"or serve --max-model-len {M + 1} at least (max_tokens plus a prompt)")


def h_max_tokens_zero(ctx: _Ctx) -> None:
    v = ctx.n("max_tokens")
    g = ctx.given
    if v is None:
        ctx.what = "max_tokens below 1"
        return
    if v < 0:
        excess = -v
        ctx.what = f"max_tokens came out as {v}: the prompt is {excess} tokens longer than max_model_len"
        ctx.why = (
            "vLLM 0.3 to 0.4.2 set max_tokens = max_model_len - prompt when the request had none; later releases reject long "
            "prompts first, so a negative value there came from the client's own max_model_len - prompt"
        )
        ctx.set(prompt_excess_tokens=excess)
        ctx.fixes.append(f"cut the prompt by {excess + 1} tokens or more (one output token needs one position)")
        if g.max_model_len:
            L = g.max_model_len
            ctx.set(max_model_len=L, prompt_tokens=L + excess, prompt_tokens_cut_to=L - 1, min_max_model_len_lower_bound=L + excess + 1)
            ctx.fixes.append(f"or serve --max-model-len {L + excess + 1} at least (plus the output you want)")
        else:
            ctx.fixes.append(f"or serve a --max-model-len {excess + 1} tokens larger, plus the output you want")
        return
    ctx.what = "no room for even one output token (max_tokens 0)"
    if g.max_tokens == 0:
        ctx.why = "the client sent max_tokens 0; vLLM needs at least 1"
        ctx.set(max_tokens_sent=0)
        ctx.fixes.append("send max_tokens >= 1 (for log-likelihoods use echo/prompt_logprobs with max_tokens 1)")
        return
    ctx.why = (
        "the prompt fills the context exactly (prompt == max_model_len: vLLM 0.32+, or a client computing max_model_len - prompt), "
        "or the client sent 0"
    )
    if g.max_model_len:
        L = g.max_model_len
        ctx.set(max_model_len=L, prompt_tokens=L, prompt_tokens_cut_to=L - 1, min_max_model_len_lower_bound=L + 1)
        ctx.fixes.append(f"cut the prompt to {L - 1} tokens or fewer (max_model_len {L} - 1), or serve a longer --max-model-len")
    else:
        ctx.fixes.append("cut the prompt below max_model_len (pass --max-model-len for the number), or check the client's max_tokens")


def h_v0_prompt_too_long(ctx: _Ctx) -> None:
    """V0 scheduler warning: the request is dropped with an empty completion (finish_reason 'length')."""
    P, N = ctx.n("prompt_tokens"), ctx.n("prompt_limit")
    g = ctx.given
    if P is None or N is None:
        ctx.what = "a prompt was longer than the scheduler's limit (the message is cut before the numbers)"
        return
    if P <= N:  # vLLM 0.1 printed max_model_len although it also enforced max_num_batched_tokens (2560 by default)
        ctx.what = f"the {P}-token prompt was refused although the printed limit is {N}: the real limit was max_num_batched_tokens"
        ctx.why = "early vLLM (0.1) printed max_model_len here but limited prompts to min(max_model_len, max_num_batched_tokens)"
        ctx.set(prompt_tokens=P, min_max_num_batched_tokens=P)
        ctx.fixes.append(f"serve --max-num-batched-tokens {P} or more (0.1's default was 2560), or upgrade vLLM")
        return
    ctx.what = f"the {P}-token prompt exceeds the scheduler's limit of {N} tokens; vLLM returned an empty completion"
    ctx.why = "vLLM's V0 scheduler limits prompts to min(max_model_len, max_num_batched_tokens) (without chunked prefill)"
    ctx.set(prompt_limit=N, prompt_tokens=P, prompt_tokens_cut_to=N)
    L = g.max_model_len
    if L is not None and N < L or N == 2560:
        ctx.set(min_max_num_batched_tokens=P)
        why_bt = "0.1 and 0.2's default max_num_batched_tokens is 2560" if N == 2560 else f"{N} < max_model_len {L}"
        ctx.fixes.append(f"serve --max-num-batched-tokens {P} or more: the limit is max_num_batched_tokens ({why_bt})")
    elif L is not None and N == L:
        if g.max_tokens:
            ctx.set(min_max_model_len=P + g.max_tokens, max_model_len_with_buffer=P + g.max_tokens + g.buffer)
            ctx.fixes.append(_serve(P, g.max_tokens, g.buffer))
        else:
            ctx.set(min_max_model_len_lower_bound=P + 1)
            ctx.fixes.append(f"serve --max-model-len {P + 1} at least (plus your max_tokens): the limit is max_model_len")
    else:
        ctx.set(min_max_num_batched_tokens=P)
        ctx.fixes.append(
            f"serve --max-num-batched-tokens {P} or more if {N} is max_num_batched_tokens, and --max-model-len above {P} plus your "
            "max_tokens if it is max_model_len (pass --max-model-len to tell)"
        )
    ctx.fixes.append(f"or cut the prompt to {N} tokens")


def h_v0_over_capacity(ctx: _Ctx) -> None:
    P, extra = ctx.n("prompt_tokens"), ctx.n("lookahead_slots") or 0
    ctx.what = f"the {P}-token prompt needs more KV cache blocks than the whole cache has"
    ctx.why = "vLLM V0 drops a prompt that cannot fit the KV cache even alone"
    if P is not None:
        ctx.set(prompt_tokens=P, min_kv_cache_tokens=P + extra)
        ctx.fixes.append(
            f"give the KV cache room for {P + extra} tokens or more (raise --gpu-memory-utilization, more GPUs), or cut the prompt"
        )


def h_truncation(ctx: _Ctx) -> None:
    T, L = ctx.n("truncate_prompt_tokens"), ctx.n("max_model_len")
    ctx.what = f"truncate_prompt_tokens={T} is larger than max_model_len {L}"
    ctx.why = "a prompt truncated to that length still could not fit"
    ctx.set(max_model_len=L, truncate_prompt_tokens_max=L)
    ctx.fixes.append(f"send truncate_prompt_tokens={L} or less" if L else "send a smaller truncate_prompt_tokens")


def h_empty_prompt(ctx: _Ctx) -> None:
    g = ctx.given
    ctx.what = "the prompt reached vLLM empty"
    ctx.why = "a harness that truncates prompts to max_model_len - max_tokens sends nothing when max_tokens >= max_model_len"
    if g.max_model_len and g.max_tokens and g.max_tokens >= g.max_model_len:
        ctx.set(max_model_len=g.max_model_len, max_tokens_ceiling=g.max_model_len)
        ctx.fixes.append(f"max_tokens {g.max_tokens} must be well below max_model_len {g.max_model_len} (max_model_len minus the prompt)")
    else:
        ctx.fixes.append(
            "check the client's truncation: max_tokens must be below max_model_len minus the prompt (pass both to get the numbers)"
        )


# ------------------------------------------------------------------------------------------------ start-up: context -
def h_max_len_over_derived(ctx: _Ctx) -> None:
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


def h_max_len_not_positive(ctx: _Ctx) -> None:
    ctx.what = f"--max-model-len {ctx.m.fields.get('max_model_len', '')} is not a positive length"
    ctx.why = "vLLM rejects 0 and negative lengths (-1 or 'auto' asks it to fit the memory)"
    ctx.fixes.append("pass the length you need (prompt + completion + buffer), or leave it out for the model's own limit")
    if ctx.given.prompt_tokens and ctx.given.max_tokens:
        ctx.fixes.append(_serve(ctx.given.prompt_tokens, ctx.given.max_tokens, ctx.given.buffer))


def h_batched_below_len(ctx: _Ctx) -> None:
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


def h_batched_below_seqs(ctx: _Ctx) -> None:
    B, S = ctx.n("max_num_batched_tokens"), ctx.n("max_num_seqs")
    ctx.what = f"max_num_batched_tokens {B} is smaller than max_num_seqs {S}"
    ctx.why = "every running sequence needs at least one token of the batch"
    ctx.set(min_max_num_batched_tokens=S, max_num_seqs_that_starts=B)
    ctx.flag = ("--max-num-batched-tokens", str(S)) if S else None
    ctx.fixes += [f"serve --max-num-batched-tokens {S} or more", f"or --max-num-seqs {B} or fewer"]


# ------------------------------------------------------------------------------------------------ start-up: memory --
def _replan(ctx: _Ctx, **changes: Any) -> Plan | None:
    if ctx.given.replan is None:
        return None
    try:
        return ctx.given.replan(**changes)
    except Exception as exc:  # a plan the engine refuses is an answer too; say so instead of failing the explanation
        ctx.notes.append(f"re-planning with {changes} failed: {exc}")
        return None


def _total_gib(ctx: _Ctx) -> float | None:
    for kind in ("memory_summary", "free_memory_below_budget", "memory_profile"):
        total = ctx.fact(kind, "total_gib")
        if total:
            return total
    return None


def _plan_memory(ctx: _Ctx, L: int | None) -> bool:
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


def h_kv_too_small(ctx: _Ctx) -> None:
    L = ctx.n("max_model_len")
    need, have, est = ctx.f("needed_gib"), ctx.f("available_gib"), ctx.n("estimate")
    ctx.set(max_model_len_requested=L, kv_cache_needed_gib=need, kv_cache_available_gib=have)
    ctx.what = f"the KV cache cannot hold one {L}-token request ({_gib(need or 0)} GiB needed, {_gib(have or 0)} GiB available)"
    ctx.why = "vLLM needs room for at least one request of max_model_len tokens"
    if est:
        ctx.set(kv_fitting_max_model_len=est)
        ctx.flag = ("--max-model-len", str(est))
        ctx.fixes.append(f"use --max-model-len {est} or less (vLLM's own estimate of what the memory holds)")
    elif L and need and have is not None:
        guess = max(0, int(L * have / need))
        ctx.set(kv_fitting_max_model_len=guess, kv_fitting_max_model_len_is_estimate=True)
        ctx.notes.append(f"{guess} is a proportional estimate ({L} x {_gib(have)}/{_gib(need)} GiB): vLLM printed none")
        ctx.fixes.append(f"use --max-model-len {guess} or less (estimate)" if guess else "no length fits: the KV cache is empty")
        ctx.flag = ("--max-model-len", str(guess)) if guess else None
    _memory_more(ctx, (need or 0) - (have or 0))
    _plan_memory(ctx, L)


def h_kv_too_small_v0(ctx: _Ctx) -> None:
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


def _blocks(ctx: _Ctx) -> int | None:
    blocks = ctx.fact("gpu_blocks", "gpu_blocks")
    return int(blocks) if blocks is not None else None


def _memory_more(ctx: _Ctx, more_gib: float) -> None:
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
                f"or --gpu-memory-utilization {target:g} ({_gib(more_gib)} GiB more of the {_gib(total)} GiB GPU), if that much is free"
            )
            return
    ctx.fixes.append(f"or give the KV cache {_gib(more_gib)} GiB more (--gpu-memory-utilization, more GPUs, --kv-cache-dtype fp8)")


def h_no_kv_memory(ctx: _Ctx) -> None:
    have = ctx.fact("kv_memory_available", "available_gib")
    if have is None:
        have = ctx.fact("memory_profile", "available_gib")
    blocks = _blocks(ctx)
    blocks = 0 if blocks is None else blocks  # vLLM raises this exactly when it found room for no block
    weights = ctx.fact("weights_loaded", "weights_gib") or ctx.fact("memory_profile", "weights_gib")
    ctx.set(gpu_blocks=blocks, kv_cache_available_gib=have, weights_gib=weights)
    budget = f"{_gib(have)} GiB after the weights and activations, " if have is not None else ""
    ctx.what = f"no memory is left for the KV cache ({budget}{blocks} GPU blocks)"
    ctx.why = "the weights and the profiled activations fill the --gpu-memory-utilization budget" + (
        f" (the weights alone take {_gib(weights)} GiB)" if weights else ""
    )
    if have is not None and have < 0:
        _memory_more(ctx, -have + 0.5)
    ctx.fixes.append("raise --gpu-memory-utilization (if the memory is free), use more GPUs (--tensor-parallel-size), or a quantized model")
    ctx.fixes.append("lower --max-num-batched-tokens / --max-num-seqs (a smaller activation peak) or --enforce-eager (no CUDA graphs)")
    _plan_memory(ctx, ctx.given.max_model_len)


def h_gpu_blocks(ctx: _Ctx) -> None:
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


def h_kv_available(ctx: _Ctx) -> None:
    have = ctx.f("available_gib")
    if have is not None and have <= 0:
        return h_no_kv_memory(ctx)
    ctx.what = f"vLLM has {_gib(have or 0)} GiB for the KV cache"
    ctx.set(kv_cache_available_gib=have)
    _plan_memory(ctx, ctx.given.max_model_len)


def _holders(ctx: _Ctx, held_gib: float) -> str:
    procs = sorted(ctx.given.gpu_processes, key=lambda p: -p.used_bytes)
    if not procs:
        return f"{_gib(held_gib)} GiB held by other processes (see nvidia-smi)"
    listed = ", ".join(f"pid {p.pid}{' (' + p.name + ')' if p.name else ''} {_gib(p.used_bytes / 2**30)} GiB" for p in procs[:4])
    return f"{_gib(held_gib)} GiB held by {listed}"


def h_free_memory(ctx: _Ctx) -> None:
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
        ctx.fixes.append(f"free {_gib(freed or held)} GiB on {device} (stop the other processes), then start again")
        return
    if plan is not None and not plan.fits:
        ctx.numbers["gpu_memory_utilization_that_passes"] = None
        ctx.what += f"; no utilization works: {_holders(ctx, held)}, and the model needs more than the {raw['free_gib']} GiB left"
        ctx.notes.append(f"re-planned at --gpu-memory-utilization {passing:g}: " + "; ".join(plan.problems))
        ctx.fixes.append(f"free {_gib(freed or held)} GiB on {device} (stop the other processes), or use more GPUs")
        return
    ctx.set(gpu_memory_utilization_that_passes=passing)
    ctx.flag = ("--gpu-memory-utilization", f"{passing:.2f}")
    leaves = passing * T
    ctx.fixes.append(
        f"--gpu-memory-utilization {passing:g} passes this check: it leaves vLLM {_gib(leaves)} GiB for weights, activations and "
        f"the KV cache (instead of {_gib(R or 0)})"
    )
    if leaves < 0.25 * T:
        ctx.notes.append(
            f"{_gib(leaves)} GiB is little: unless the weights, activations and one request fit in it, no utilization works here "
            f"and the other processes must free memory"
        )
    ctx.fixes.append(f"or free {_gib(freed or 0)} GiB on {device}: {_holders(ctx, held)}")
    if plan is not None:
        ctx.notes.append(f"re-planned at {passing:g}: fits, {plan.kv_cache_tokens:,} KV tokens, concurrency {plan.max_concurrency:.2f}x")
        ctx.set(planned_kv_cache_tokens=plan.kv_cache_tokens)
    else:
        ctx.notes.append("pass --model (and --gpu) to check that the weights and one request still fit in that budget")


def h_external_weights(ctx: _Ctx) -> None:
    W, T, U = ctx.f("external_gib"), ctx.f("total_gib"), ctx.f("gpu_memory_utilization")
    ctx.what = f"weights held outside vLLM ({_gib(W or 0)} GiB) exceed the utilization budget ({U} x {_gib(T or 0)} GiB)"
    ctx.why = "externally held weights count against --gpu-memory-utilization"
    if W and T:
        need = math.ceil(W / T * 100) / 100 + 0.05
        ctx.set(gpu_memory_utilization_needed=round(need, 2))
        ctx.flag = ("--gpu-memory-utilization", f"{need:.2f}")
        ctx.fixes.append(f"raise --gpu-memory-utilization above {W / T:.2f}, e.g. {need:.2f} (room for activations and the KV cache)")


def h_cpu_kv_alloc(ctx: _Ctx) -> None:
    F, R = ctx.f("free_gib"), ctx.f("requested_gib")
    ctx.what = f"the node has {_gib(F or 0)} GiB available, less than the {_gib(R or 0)} GiB asked for the KV cache"
    ctx.why = "the CPU backend allocates its KV cache in the NUMA node's memory"
    if F is not None:
        fits = max(0, math.floor(F) - 1)
        ctx.set(kv_cache_gib_that_fits=fits)
        ctx.fixes.append(f"ask for {fits} GiB or less: VLLM_CPU_KVCACHE_SPACE={fits} or --kv-cache-memory-bytes {fits}G")


def h_cpu_no_kv(ctx: _Ctx) -> None:
    W, R, U = ctx.f("weights_gib"), ctx.f("requested_gib"), ctx.f("min_utilization")
    ctx.what = (
        f"the worker already uses {_gib(W or 0)} GiB, more than the {_gib(R or 0)} GiB reserved for it: nothing is left for the KV cache"
    )
    ctx.why = "on the CPU backend --gpu-memory-utilization sets the share of the node's memory vLLM may use"
    if U is not None:
        target = round(math.floor(U * 100) / 100 + 0.05, 2)
        ctx.set(gpu_memory_utilization_needed=target)
        ctx.flag = ("--gpu-memory-utilization", f"{target:g}")
        ctx.fixes.append(f"--gpu-memory-utilization {target:g} (more than {U:g}), or set the KV size: VLLM_CPU_KVCACHE_SPACE=N (GiB)")


def h_memory_profiling(ctx: _Ctx) -> None:
    a, b = ctx.f("initial_memory"), ctx.f("current_memory")
    ctx.what = "free GPU memory changed while vLLM profiled it" + (f" ({a} -> {b})" if a is not None and b is not None else "")
    ctx.why = "another process on the same GPU allocated or released memory during start-up, so vLLM's measurement is wrong"
    if a is not None and b is not None:
        ctx.set(memory_change=round(b - a, 2))
    ctx.fixes.append("start vLLM when nothing else starts or stops on that GPU (one server per GPU), or give it its own container")


def h_load_oom(ctx: _Ctx) -> None:
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


def _oom_numbers(ctx: _Ctx, oom: msgs.Match) -> None:
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
        ctx.notes.append(f"process {pid} holds {_gib(other)} GiB of that GPU")


def _oom_text(ctx: _Ctx) -> str:
    """': 3.5 GiB asked, 3.09 GiB free of 23.69 GiB (0.41 GiB short)', from the numbers _oom_numbers set."""
    n = ctx.numbers
    if "oom_tried_gib" not in n:
        return ""
    parts = [f"{_size(n['oom_tried_gib'])} asked"]
    if "oom_free_gib" in n:
        parts.append(f"{_size(n['oom_free_gib'])} free" + (f" of {_size(n['oom_total_gib'])}" if "oom_total_gib" in n else ""))
    elif "oom_total_gib" in n:
        parts.append(f"of {_size(n['oom_total_gib'])}")
    short = n.get("oom_shortfall_gib")
    return ": " + ", ".join(parts) + (f" ({_size(short)} short)" if short else "")


def h_cuda_oom(ctx: _Ctx) -> None:
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


def h_warmup_oom(ctx: _Ctx) -> None:
    N = ctx.n("num_requests")
    ctx.what = f"CUDA ran out of memory warming up the sampler with {N} requests (max_num_seqs)"
    ctx.why = "the sampler's logits for max_num_seqs requests did not fit beside the KV cache"
    if N:
        ctx.set(max_num_seqs_that_fits=max(1, N // 2))
        ctx.flag = ("--max-num-seqs", str(max(1, N // 2)))
        ctx.fixes.append(f"--max-num-seqs {max(1, N // 2)} (half), or lower --gpu-memory-utilization by 0.05")


def h_mamba(ctx: _Ctx) -> None:
    S, B = ctx.n("max_num_seqs"), ctx.n("mamba_blocks")
    ctx.what = f"max_num_seqs {S} is more than the {B} Mamba state blocks the memory holds"
    ctx.why = "every decoding sequence of a hybrid (Mamba) model needs its own state block"
    ctx.set(max_num_seqs_that_starts=B)
    ctx.flag = ("--max-num-seqs", str(B)) if B else None
    ctx.fixes.append(f"--max-num-seqs {B} or fewer, or give the KV cache more memory")


# ------------------------------------------------------------------------------------------------ parallelism, ports -
def h_heads(ctx: _Ctx) -> None:
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


def h_world_size(ctx: _Ctx) -> None:
    W, N = ctx.n("world_size"), ctx.n("gpus")
    ctx.what = f"tensor x pipeline parallel size {W} is more than the {N} GPUs on this node"
    ctx.why = "vLLM's default executor runs one worker per GPU on one node"
    ctx.set(max_world_size=N)
    if N:
        tp = 2 ** int(math.log2(N)) if N > 0 else 1
        ctx.flag = ("--tensor-parallel-size", str(tp))
        ctx.fixes.append(f"use --tensor-parallel-size {tp} (x --pipeline-parallel-size at most {N} GPUs in all)")
    ctx.fixes.append("or span nodes: --distributed-executor-backend ray, or --nnodes with multiprocessing")


def h_port(ctx: _Ctx) -> None:
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


def h_engine_init(ctx: _Ctx) -> None:
    ctx.what = "vLLM's engine failed to start"
    ctx.why = "the root cause is printed above this line in vLLM's log"
    ctx.fixes.append("paste the whole log: the first error in it is the cause")


def h_engine_dead(ctx: _Ctx) -> None:
    ctx.what = "vLLM's engine died"
    ctx.why = "the engine core process exited (crash, OOM kill, or a killed worker)"
    ctx.fixes.append("the first error above this one in the log is the cause; `dmesg` shows an OOM kill")


def h_worker_died(ctx: _Ctx) -> None:
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


def h_gated(ctx: _Ctx) -> None:
    ctx.what = "the Hub refused the model (401/403: gated or private)"
    ctx.why = "its files need an accepted licence and a token"
    ctx.fixes.append("accept the licence on huggingface.co and export HF_TOKEN (never pass it as a flag)")


def h_not_found(ctx: _Ctx) -> None:
    ctx.what = "vLLM could not find the model"
    ctx.why = "the path does not exist, or the repo id is wrong or not cached offline"
    ctx.fixes.append("check --model; with HF_HUB_OFFLINE=1 the model must already be in the HF cache")


def h_weights_fact(ctx: _Ctx) -> None:
    W = ctx.f("weights_gib")
    ctx.what = f"vLLM loaded {_gib(W or 0)} GiB of weights per GPU (this log shows no error)"
    ctx.set(weights_gib=W)
    _plan_memory(ctx, ctx.given.max_model_len)


def h_memory_fact(ctx: _Ctx) -> None:
    have = ctx.f("available_gib")
    if have is not None and have <= 0:
        return h_no_kv_memory(ctx)
    ctx.what = f"vLLM's memory profile: {_gib(have or 0)} GiB left for the KV cache (this log shows no error)"
    ctx.set(kv_cache_available_gib=have, weights_gib=ctx.f("weights_gib"))


HANDLERS: dict[str, Callable[[_Ctx], None]] = {
    "requested_total": h_prompt_plus_output,
    "max_tokens_too_large": h_prompt_plus_output,
    "passed_input_tokens": h_prompt_plus_output,
    "requested_output_and_prompt": h_prompt_plus_output,
    "requested_in_messages": h_prompt_over_len,
    "pooling_input_over_len": h_prompt_over_len,
    "prompt_over_len": h_prompt_over_len,
    "decoder_prompt_too_long": h_prompt_over_len,
    "decoder_prompt_fills_len": h_prompt_over_len,
    "request_has": h_request_has,
    "passed_input_chars": h_chars,
    "requested_output_and_chars": h_chars,
    "prompt_chars_over_len": h_chars,
    "max_tokens_over_len": h_max_tokens_over_len,
    "max_tokens_zero": h_max_tokens_zero,
    "v0_prompt_too_long": h_v0_prompt_too_long,
    "v0_prompt_over_capacity": h_v0_over_capacity,
    "truncation_over_len": h_truncation,
    "empty_prompt": h_empty_prompt,
    "max_len_over_derived": h_max_len_over_derived,
    "max_len_not_positive": h_max_len_not_positive,
    "batched_tokens_below_max_len": h_batched_below_len,
    "batched_tokens_below_max_num_seqs": h_batched_below_seqs,
    "kv_cache_too_small": h_kv_too_small,
    "kv_cache_too_small_v0": h_kv_too_small_v0,
    "no_kv_memory": h_no_kv_memory,
    "auto_fit_failed": h_no_kv_memory,
    "free_memory_below_budget": h_free_memory,
    "cpu_memory_below_budget": h_free_memory,
    "external_weights_over_budget": h_external_weights,
    "cpu_kv_allocation_failed": h_cpu_kv_alloc,
    "cpu_no_kv_memory": h_cpu_no_kv,
    "memory_profiling_error": h_memory_profiling,
    "load_oom": h_load_oom,
    "warmup_oom": h_warmup_oom,
    "mamba_seqs_over_blocks": h_mamba,
    "heads_not_divisible_by_tp": h_heads,
    "world_size_over_gpus": h_world_size,
    "port_in_use_by": h_port,
    "address_in_use": h_port,
    "engine_init_failed": h_engine_init,
    "engine_dead": h_engine_dead,
    "worker_died": h_worker_died,
    "cuda_oom": h_cuda_oom,
    "gated_repo": h_gated,
    "model_not_found": h_not_found,
    "gpu_blocks": h_gpu_blocks,
    "kv_memory_available": h_kv_available,
    "weights_loaded": h_weights_fact,
    "memory_profile": h_memory_fact,
    "memory_summary": h_memory_fact,
}

"""Answers to vLLM's per-request length errors (HTTP 400s and the V0 engine's warnings): the max_tokens that fits, the
prompt length to cut to, the --max-model-len that holds the request."""

from __future__ import annotations

from launcher.budget.answer import Answer, serve_fix


def _budget(ctx: Answer, L: int, P: int | None, M: int | None, *, at_least: bool = False, sent_no_max_tokens: bool = False) -> None:
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
            ("or " if ctx.fixes else "") + serve_fix(P, M, g.buffer) + (" (the prompt is at least that long)" if at_least else "")
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


def h_prompt_plus_output(ctx: Answer) -> None:
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


def h_prompt_over_len(ctx: Answer) -> None:
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


def h_request_has(ctx: Answer) -> None:
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


def _with_numbers(ctx: Answer, L: int, P: int, M: int, inferred: str = "") -> None:
    ctx.what = f"Given max_tokens={M} and max_model_len={L}, only {L - M} tokens are left for the prompt; your prompt has {P}."
    if inferred:
        ctx.notes.append(inferred)
    if not ctx.why:
        ctx.why = "vLLM rejects a request when prompt + max_tokens > max_model_len"
    _budget(ctx, L, P, M)


def _prompt_alone(ctx: Answer, L: int, P: int) -> None:
    ctx.what = f"the prompt alone ({P} tokens) reaches max_model_len {L}"
    ctx.why = "on the chat path vLLM rejects a prompt of max_model_len tokens or more before looking at max_tokens"
    _budget(ctx, L, P, ctx.given.max_tokens)


def h_chars(ctx: Answer) -> None:
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


def h_max_tokens_over_len(ctx: Answer) -> None:
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
            ctx.fixes.append("or " + serve_fix(P, M, g.buffer))
    else:
        ctx.fixes.append(f"send max_tokens below {L}: max_model_len {L} minus the prompt (pass --prompt-tokens for the exact number)")
        if M:
            ctx.set(min_max_model_len_lower_bound=M + 1)
            ctx.fixes.append(f"or serve --max-model-len {M + 1} at least (max_tokens plus a prompt)")


def h_max_tokens_zero(ctx: Answer) -> None:
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


def h_v0_prompt_too_long(ctx: Answer) -> None:
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
            ctx.fixes.append(serve_fix(P, g.max_tokens, g.buffer))
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


def h_v0_over_capacity(ctx: Answer) -> None:
    P, extra = ctx.n("prompt_tokens"), ctx.n("lookahead_slots") or 0
    ctx.what = f"the {P}-token prompt needs more KV cache blocks than the whole cache has"
    ctx.why = "vLLM V0 drops a prompt that cannot fit the KV cache even alone"
    if P is not None:
        ctx.set(prompt_tokens=P, min_kv_cache_tokens=P + extra)
        ctx.fixes.append(
            f"give the KV cache room for {P + extra} tokens or more (raise --gpu-memory-utilization, more GPUs), or cut the prompt"
        )


def h_truncation(ctx: Answer) -> None:
    T, L = ctx.n("truncate_prompt_tokens"), ctx.n("max_model_len")
    ctx.what = f"truncate_prompt_tokens={T} is larger than max_model_len {L}"
    ctx.why = "a prompt truncated to that length still could not fit"
    ctx.set(max_model_len=L, truncate_prompt_tokens_max=L)
    ctx.fixes.append(f"send truncate_prompt_tokens={L} or less" if L else "send a smaller truncate_prompt_tokens")


def h_empty_prompt(ctx: Answer) -> None:
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

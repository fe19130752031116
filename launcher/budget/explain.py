"""Explain vLLM's context-length messages with the true numbers. Pure: text and numbers in, explanation out."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from launcher import vllm_messages as msgs
from launcher.serve.diagnose import diagnose

DEFAULT_BUFFER = 1000


@dataclass(frozen=True)
class Explanation:
    recognised: bool
    kind: str
    what: str
    why: str = ""
    fixes: tuple[str, ...] = field(default_factory=tuple)
    numbers: dict[str, int] = field(default_factory=dict)


def _serve_fix(prompt: int, completion: int) -> str:
    return (
        f"start the server with --max-model-len {prompt + completion + DEFAULT_BUFFER} "
        f"(`{shlex.join(['vllm-launch', '--prompt', str(prompt), '--completion', str(completion)])}` plans and starts it)"
    )


def explain(text: str, *, max_tokens: int | None = None, max_model_len: int | None = None, prompt_tokens: int | None = None) -> Explanation:
    """What really happened, from a vLLM error text (any version) plus whatever numbers the caller knows."""
    m = msgs.find(text)
    if m is None:
        return Explanation(
            False,
            "unknown",
            "no vLLM context-length or start-up message recognised in this text",
            "vllm-launch knows the messages of vLLM 0.4 to 0.32; paste the full error body or log",
            ("`vllm-launch check --url URL --prompt-tokens N --max-tokens N` tells what a live server does",),
        )
    kind = m.kind
    L = m.number("max_model_len") or max_model_len
    P = m.number("prompt") or prompt_tokens
    M = m.number("max_tokens") or max_tokens

    if kind == "max_tokens_over_len":
        fixes = [
            f"send max_tokens <= {L - P} for this {P}-token prompt (max_model_len {L} minus the prompt)"
            if P
            else f"send max_tokens well below {L}: max_model_len {L} minus the prompt"
        ]
        if P:
            fixes.append(_serve_fix(P, M))
        return Explanation(
            True,
            kind,
            f"max_tokens={M} is larger than the whole context (max_model_len={L})",
            "vLLM rejects any max_tokens above max_model_len, whatever the prompt",
            tuple(fixes),
            {"max_tokens": M, "max_model_len": L},
        )
    if kind == "max_tokens_zero":
        return Explanation(
            True,
            kind,
            "no room for even one output token",
            "the prompt fills the context exactly (prompt == max_model_len), or the client sent max_tokens 0",
            (
                "shorten the prompt or end the episode; the per-turn max_tokens must be >= 1",
                "check the client's max_tokens; with a full context serve a larger --max-model-len",
            ),
            {},
        )
    if kind in ("prompt_over_len", "decoder_prompt_too_long"):
        at_least = "at_least" in m.fields
        what = f"the prompt alone ({'at least ' if at_least else ''}{P} tokens) exceeds max_model_len {L}"
        fixes = ["shorten the prompt (or, in multi-turn episodes, drop old turns)"]
        fixes.append(_serve_fix(P, M) if M else f"start the server with --max-model-len >= {P} + your max_tokens + a buffer")
        return Explanation(
            True,
            kind,
            what,
            "the prompt is checked before any output is considered (max_tokens is not subtracted)",
            tuple(fixes),
            {"prompt_tokens": P, "max_model_len": L},
        )
    if kind == "prompt_chars_over_len":
        return Explanation(
            True,
            kind,
            f"the prompt's {m.number('chars')} characters cannot fit in {L} tokens",
            "vLLM rejects very long texts before tokenizing them",
            ("shorten the prompt",),
            {"max_model_len": L},
        )
    if kind in ("requested_total", "requested_output_and_prompt", "passed_input_tokens"):
        return _prompt_plus_output(kind, L, P, M, rejected=True)
    if kind == "request_has":
        shown = m.number("shown")
        if max_tokens is not None and max_model_len is not None and shown == max_model_len - max_tokens:
            return _prompt_plus_output(kind, max_model_len, P, max_tokens, rejected=True, misleading_shown=shown)
        if max_tokens is not None and max_model_len is None:
            return _prompt_plus_output(kind, shown + max_tokens, P, max_tokens, rejected=True, misleading_shown=shown)
        return Explanation(
            True,
            kind,
            f"the request's {P}-token prompt does not fit what the server allowed ({shown} tokens)",
            f"this message is misleading: {shown} may be max_model_len minus max_tokens, not the model's context",
            (
                "pass --max-tokens (and --max-model-len) to get the true numbers",
                "`vllm-launch check --url URL` reads the server's real max_model_len",
            ),
            {"prompt_tokens": P, "shown": shown},
        )
    if kind == "v0_prompt_too_long":
        return Explanation(
            True,
            kind,
            f"the {P}-token prompt exceeds the limit {m.number('limit')}",
            "old vLLM (V0) only warned and returned an empty completion; the limit may be max_num_batched_tokens",
            ("raise --max-model-len and --max-num-batched-tokens, or upgrade vLLM",),
            {"prompt_tokens": P},
        )
    d = diagnose(text, None, port=0, max_model_len=L or 0, gpu_memory_utilization=0.9)
    fixes = [d.fix] + ([f"re-run with {d.flag[0]} {d.flag[1]}"] if d.flag else [])
    return Explanation(True, kind, d.what, d.why, tuple(fixes), {k: v for k, v in {"max_model_len": L}.items() if v})


def _prompt_plus_output(kind: str, L: int, P: int, M: int, *, rejected: bool, misleading_shown: int | None = None) -> Explanation:
    left = L - M
    what = f"Given max_tokens={M} and max_model_len={L}, only {left} tokens are left for the prompt; your prompt has {P}."
    why = "older vLLM rejects prompt + max_tokens > max_model_len" if rejected else ""
    if misleading_shown is not None:
        why = f"the message's 'maximum context length is {misleading_shown}' is max_model_len - max_tokens, not the model's context"
    fixes = []
    if P < L:
        fixes.append(
            f"send max_tokens={L - P} for this prompt: the per-turn limit cut to what is left (launcher.budget.safe_max_tokens does this)"
        )
    fixes.append(_serve_fix(P, M))
    return Explanation(True, kind, what, why, tuple(fixes), {"max_model_len": L, "max_tokens": M, "prompt_tokens": P, "left": left})

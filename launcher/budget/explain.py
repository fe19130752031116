"""Explain vLLM's messages with the true numbers: what happened, why, and the fix, with the number that makes it work.

Pure: a text and the numbers the user knows in, an Explanation out. The only way out is `replan`, a callback the
command passes when the user names the model (`--model`): memory answers are then re-planned through the sizing engine
instead of estimated from the message alone.

Every kind in the message catalog (`launcher/vllm_messages.py`) has a handler in `request_answers.py` or
`startup_answers.py` (HANDLERS below maps them). Numbers go into `Explanation.numbers` under stable keys (the ones the
error corpus in tests/data states), and into the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from launcher import vllm_messages as msgs
from launcher.budget import request_answers as req
from launcher.budget import startup_answers as startup
from launcher.budget.answer import DEFAULT_BUFFER, Answer, Explanation, Given, Replan

if TYPE_CHECKING:
    from launcher.hardware import GpuProcess

__all__ = ["DEFAULT_BUFFER", "HANDLERS", "HOLDER_KINDS", "Explanation", "Given", "Replan", "explain"]

# Kinds whose answer names the processes holding the GPU ("no utilization works: N GiB held by pid ...").
HOLDER_KINDS = frozenset({"free_memory_below_budget", "cpu_memory_below_budget", "load_oom", "cuda_oom"})


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
    ctx = Answer(_main(matches), matches, given, text)
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


HANDLERS: dict[str, Callable[[Answer], None]] = {
    "requested_total": req.h_prompt_plus_output,
    "max_tokens_too_large": req.h_prompt_plus_output,
    "passed_input_tokens": req.h_prompt_plus_output,
    "requested_output_and_prompt": req.h_prompt_plus_output,
    "requested_in_messages": req.h_prompt_over_len,
    "pooling_input_over_len": req.h_prompt_over_len,
    "prompt_over_len": req.h_prompt_over_len,
    "decoder_prompt_too_long": req.h_prompt_over_len,
    "decoder_prompt_fills_len": req.h_prompt_over_len,
    "request_has": req.h_request_has,
    "passed_input_chars": req.h_chars,
    "requested_output_and_chars": req.h_chars,
    "prompt_chars_over_len": req.h_chars,
    "max_tokens_over_len": req.h_max_tokens_over_len,
    "max_tokens_zero": req.h_max_tokens_zero,
    "v0_prompt_too_long": req.h_v0_prompt_too_long,
    "v0_prompt_over_capacity": req.h_v0_over_capacity,
    "truncation_over_len": req.h_truncation,
    "empty_prompt": req.h_empty_prompt,
    "max_len_over_derived": startup.h_max_len_over_derived,
    "max_len_not_positive": startup.h_max_len_not_positive,
    "batched_tokens_below_max_len": startup.h_batched_below_len,
    "batched_tokens_below_max_num_seqs": startup.h_batched_below_seqs,
    "kv_cache_too_small": startup.h_kv_too_small,
    "kv_cache_too_small_v0": startup.h_kv_too_small_v0,
    "no_kv_memory": startup.h_no_kv_memory,
    "auto_fit_failed": startup.h_no_kv_memory,
    "free_memory_below_budget": startup.h_free_memory,
    "cpu_memory_below_budget": startup.h_free_memory,
    "external_weights_over_budget": startup.h_external_weights,
    "cpu_kv_allocation_failed": startup.h_cpu_kv_alloc,
    "cpu_no_kv_memory": startup.h_cpu_no_kv,
    "memory_profiling_error": startup.h_memory_profiling,
    "load_oom": startup.h_load_oom,
    "warmup_oom": startup.h_warmup_oom,
    "mamba_seqs_over_blocks": startup.h_mamba,
    "heads_not_divisible_by_tp": startup.h_heads,
    "world_size_over_gpus": startup.h_world_size,
    "port_in_use_by": startup.h_port,
    "address_in_use": startup.h_port,
    "engine_init_failed": startup.h_engine_init,
    "engine_dead": startup.h_engine_dead,
    "worker_died": startup.h_worker_died,
    "cuda_oom": startup.h_cuda_oom,
    "gated_repo": startup.h_gated,
    "model_not_found": startup.h_not_found,
    "gpu_blocks": startup.h_gpu_blocks,
    "kv_memory_available": startup.h_kv_available,
    "weights_loaded": startup.h_weights_fact,
    "memory_profile": startup.h_memory_fact,
    "memory_summary": startup.h_memory_fact,
}

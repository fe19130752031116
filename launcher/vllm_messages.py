"""Every vLLM message vllm-launch recognises, across versions, in one place.

Request-time context-length errors (budget doctor) and start-up failures (launcher diagnosis, `explain`)
share these patterns. Texts follow the project's memory-model notes (sections A.4, B, D.2, E, I), which quote
vLLM 0.32 verbatim and older releases as reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Match:
    kind: str
    fields: dict[str, str]  # the named groups that matched
    text: str

    def number(self, name: str) -> int | None:
        value = self.fields.get(name)
        return int(float(value.replace(",", ""))) if value else None

    def gib(self, name: str) -> float | None:
        value = self.fields.get(name)
        return float(value) if value else None


# (kind, regex). Named groups become numbers. Order matters: the first match wins.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # --- request time -------------------------------------------------------------------------------------------
    (
        "max_tokens_over_len",
        re.compile(
            r"(?P<param>max_tokens|max_completion_tokens)=(?P<max_tokens>\d+) cannot be greater than max_model_len=(?P<max_model_len>\d+)"
        ),
    ),
    ("max_tokens_zero", re.compile(r"max_tokens must be at least 1, got (?P<max_tokens>-?\d+)")),
    # <=0.10: "you requested P+M tokens (P in the messages, M in the completion)" -- L is the true limit
    (
        "requested_total",
        re.compile(
            r"maximum context length is (?P<max_model_len>\d+) tokens\. However, you requested (?P<total>\d+) tokens "
            r"\((?P<prompt>\d+) in the messages, (?P<max_tokens>\d+) in the completion\)"
        ),
    ),
    # client reports: "you requested M output tokens and your prompt contains at least P input tokens"
    (
        "requested_output_and_prompt",
        re.compile(
            r"maximum context length is (?P<max_model_len>\d+) tokens\. However, you requested (?P<max_tokens>\d+) output tokens "
            r"and your prompt contains at least (?P<prompt>\d+) input tokens"
        ),
    ),
    # ~0.17: "You passed P input tokens and requested M output tokens. However, the model's context length is only L"
    (
        "passed_input_tokens",
        re.compile(
            r"You passed (?P<prompt>\d+) input tokens and requested (?P<max_tokens>\d+) output tokens\. However, the model's "
            r"context length is only (?P<max_model_len>\d+) tokens"
        ),
    ),
    # 0.32: prompt alone over the limit ("at least" for text prompts truncated at L+1)
    (
        "prompt_over_len",
        re.compile(
            r"maximum context length is (?P<max_model_len>\d+) tokens\. However, your prompt contains (?P<at_least>at least )?"
            r"(?P<prompt>\d+) input tokens"
        ),
    ),
    (
        "prompt_chars_over_len",
        re.compile(r"maximum context length is (?P<max_model_len>\d+) tokens\. However, your prompt contains (?P<chars>\d+) characters"),
    ),
    # renderer era (~0.11+): X may be max_model_len - max_tokens, not the model's limit
    (
        "request_has",
        re.compile(r"maximum context length is (?P<shown>\d+) tokens\. However, your request has (?P<prompt>\d+) input tokens"),
    ),
    (
        "decoder_prompt_too_long",
        re.compile(r"The decoder prompt \(length (?P<prompt>\d+)\) is longer than the maximum model length of (?P<max_model_len>\d+)"),
    ),
    ("v0_prompt_too_long", re.compile(r"Input prompt \((?P<prompt>\d+) tokens\) is too long and exceeds limit of (?P<limit>\d+)")),
    # --- start-up -----------------------------------------------------------------------------------------------
    (
        "max_len_over_derived",
        re.compile(
            r"User-specified max_model_len \((?P<max_model_len>\d+)\) is greater than the derived max_model_len "
            r"\((?P<key>\w+)=(?P<derived>[\d.]+) or model_max_length=(?P<model_max_length>\S+) in model's config\.json\)"
        ),
    ),
    (
        "kv_cache_too_small",
        re.compile(
            r"max seq len \((?P<max_model_len>\d+)\).*?\((?P<needed_gib>[\d.]+) GiB KV cache is needed.*?available KV cache memory "
            r"\((?P<available_gib>[\d.]+) GiB\)(?:\. Based on the available memory, the estimated maximum model length is "
            r"(?P<estimate>\d+))?",
            re.S,
        ),
    ),
    ("no_kv_memory", re.compile(r"No available memory for the cache blocks")),
    ("auto_fit_failed", re.compile(r"Cannot auto-fit max_model_len: not enough GPU memory")),
    (
        "free_memory_below_budget",
        re.compile(
            r"Free memory on device \S* ?\((?P<free_gib>[\d.]+)/(?P<total_gib>[\d.]+) GiB\) on startup is less than desired GPU memory "
            r"utilization \((?P<gmu>[\d.]+), (?P<requested_gib>[\d.]+) GiB\)"
        ),
    ),
    (
        "cpu_memory_below_budget",
        re.compile(
            r"Available memory on node \d+ \((?P<free_gib>[\d.]+)/(?P<total_gib>[\d.]+) GiB\) on startup is less than desired CPU memory "
            r"utilization \((?P<gmu>[\d.]+), (?P<requested_gib>[\d.]+) GiB\)"
        ),
    ),
    ("max_len_not_positive", re.compile(r"max_model_len must be a positive integer, got \w+: (?P<max_model_len>-?\d+)")),
    ("address_in_use", re.compile(r"\[Errno 98\] Address already in use|address already in use", re.I)),
    ("cuda_oom", re.compile(r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError|not enough GPU memory")),
    ("gated_repo", re.compile(r"GatedRepoError|401 Client Error|403 Client Error|Access to model .* is restricted|gated repo", re.I)),
    (
        "model_not_found",
        re.compile(
            r"RepositoryNotFoundError|Repo id must be in the form|LocalEntryNotFoundError|does not appear to have a file named config\.json"
            r"|Cannot find an appropriate cached snapshot"
        ),
    ),
    ("worker_illegal_instruction", re.compile(r"died unexpectedly \(exit code: -4\)")),
    ("engine_dead", re.compile(r"EngineDeadError|engine core exited unexpectedly")),
    ("engine_init_failed", re.compile(r"Engine core initialization failed")),
]


def find_all(text: str) -> list[Match]:
    """Every known message in `text` (an error body, a log line or a whole log), in pattern order."""
    found = []
    for kind, pattern in PATTERNS:
        m = pattern.search(text)
        if m:
            found.append(Match(kind, {k: v for k, v in m.groupdict().items() if v}, m.group(0)))
    return found


def find(text: str) -> Match | None:
    """The first known message in `text`."""
    matches = find_all(text)
    return matches[0] if matches else None


# Start-up progress, in order (0.32 log texts; older texts where they differ).
PHASES: list[tuple[str, re.Pattern[str]]] = [
    ("checking config", re.compile(r"Using max model len|non-default args")),
    ("starting engine", re.compile(r"Initializing a V1 LLM engine")),
    ("loading weights", re.compile(r"Loading weights|Starting to load model|Loading safetensors|Model loading took")),
    (
        "profiling memory",
        re.compile(r"Memory profiling|Available KV cache memory|Auto set \(|Explicitly set \(|determine_available_memory"),
    ),
    ("KV cache allocated", re.compile(r"KV cache size: [\d,]+ tokens|# GPU blocks")),
    ("compiling / capturing graphs", re.compile(r"torch\.compile takes|Compiling a graph|Capturing CUDA graph|Capturing cudagraph")),
    ("engine ready", re.compile(r"init engine \(profile, create kv cache, warmup model\) took")),
    ("API server up", re.compile(r"Starting vLLM server on|Application startup complete|Uvicorn running on")),
]
KV_SIZE = re.compile(r"KV cache size: ([\d,]+) tokens")
CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")


def phase_of(line: str) -> int | None:
    """Index into PHASES of the start-up step this line announces."""
    for index, (_, pattern) in enumerate(PHASES):
        if pattern.search(line):
            return index
    return None

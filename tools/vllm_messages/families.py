"""The message families vllm-launch explains: which vLLM message sites belong to which kind, and what each placeholder means.

A family's `shape` is matched against a site's one-line form (`sites.display`): `{}` stands for any placeholder, `...` for
anything (a choice, a sentence that changed between releases), everything else is literal. `fields` maps placeholder source
expressions (full-match regexes, tried in order, then COMMON_FIELDS) to the canonical names `launcher/budget/explain.py`
understands. A placeholder no mapping covers fails the extraction, so every catalogued field has a meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Canonical field -> value syntax as vLLM prints it.
INT = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?"
FLOAT = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|-?inf|nan"
WORD = r"[\w.:/\-]+"
TEXT = r"[^\s].*?"

FIELD_TYPES: dict[str, str] = {
    # request
    "max_model_len": "int",
    "prompt_tokens": "int",
    "max_tokens": "int",
    "total_tokens": "int",
    "shown_limit": "int",  # "maximum context length is X" where X may be max_model_len - max_tokens
    "max_input_tokens": "int",
    "prompt_chars": "int",
    "max_prompt_chars": "int",
    "prompt_limit": "int",
    "lookahead_slots": "int",
    "truncate_prompt_tokens": "int",
    "param": "word",
    "limit_param": "word",
    "prompt_type": "word",
    "operation": "text",
    # start-up
    "derived_max_model_len": "float",
    "derived_key": "word",
    "model_max_length": "word",
    "kv_cache_tokens": "int",
    "needed_gib": "float",
    "available_gib": "float",
    "estimate": "int",
    "free_gib": "float",
    "total_gib": "float",
    "gpu_memory_utilization": "float",
    "requested_gib": "float",
    "external_gib": "float",
    "min_utilization": "float",
    "requested_total_gib": "float",
    "device": "word",
    "numa_node": "int",
    "heads": "int",
    "tensor_parallel_size": "int",
    "world_size": "int",
    "gpus": "int",
    "max_num_batched_tokens": "int",
    "max_num_seqs": "int",
    "num_requests": "int",
    "mamba_blocks": "int",
    "initial_memory": "float",
    "current_memory": "float",
    "port": "int",
    "process": "text",
    "worker": "word",
    "exit_code": "word",
    "value_type": "word",
    "gpu_blocks": "int",
    "cpu_blocks": "int",
    "weights_gib": "float",
    "load_seconds": "float",
    "profile_seconds": "float",
    "non_torch_gib": "float",
    "activation_gib": "float",
    "cudagraph_gib": "float",
    "kv_fit_gib": "float",
    "kv_max_gib": "float",
    "kv_fit_bytes": "int",
    "kv_max_bytes": "int",
    "failed_procs": "text",
    "failed_frontend_procs": "text",
    "original_error": "text",
    "task": "word",
}
TYPE_REGEX = {"int": INT, "float": FLOAT, "word": WORD, "text": TEXT}

# Placeholder expressions that mean the same thing in every family.
COMMON_FIELDS: list[tuple[str, str]] = [
    (r"(self\.)?(model_config\.)?max_model_len|max_length", "max_model_len"),
    (r"(self\.)?max_total_tokens", "max_model_len"),
    (
        r"token_num|len\(token_ids\)|len\(tokens\)|token_count|prompt_len|len\(prompt_ids\)|num_prompt_tokens|num_new_tokens",
        "prompt_tokens",
    ),
    (r"(request\.)?max_tokens|(self\.)?max_output_tokens|max_output_tokens", "max_tokens"),
    (r"len\(text\)", "prompt_chars"),
    (r"max_input_chars", "max_prompt_chars"),
    (r"max_input_tokens", "max_input_tokens"),
    (r"(self\.)?(cache_config\.|vllm_config\.cache_config\.)?gpu_memory_utilization", "gpu_memory_utilization"),
]


@dataclass(frozen=True)
class Family:
    kind: str
    phase: str  # "request" (per-request error), "startup" (vLLM does not start), "runtime" (dies later), "fact" (a log line)
    shape: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)  # literal option text -> group name (e.g. "at least" -> "at_least")
    field_regex: dict[str, str] = field(default_factory=dict)  # canonical name -> value regex overriding its type's
    files: str = ""  # only sites in files matching this regex (some phrases are reused by unrelated modules)

    def matcher(self) -> re.Pattern[str]:
        out = []
        for piece in re.split(r"(\{\}|\.\.\.)", self.shape):
            if piece == "{}":
                out.append(r"\{[^{}]*\}")
            elif piece == "...":
                out.append(r".*?")
            else:
                out.append(re.escape(piece))
        return re.compile("".join(out), re.S)


MAX_LEN_LABEL = r"(self\.)?max_total_tokens_param"
FAMILIES: list[Family] = [
    # ---------------------------------------------------------------- per request ------------------------------------
    Family(
        "requested_total",
        "request",
        "maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion)",
        [(r"(request\.)?max_tokens \+ token_num|token_num \+ max_tokens", "total_tokens")],
    ),
    Family("requested_in_messages", "request", "maximum context length is {} tokens. However, you requested {} tokens in the messages"),
    Family(
        "pooling_input_over_len",
        "request",
        "This model's ... is {} tokens. However, you requested {} tokens in the input for ...",
        [(r"max_length_value|max_pos_embeddings", "max_model_len"), (r"operation", "operation")],
    ),
    Family(
        "request_has",
        "request",
        "is {} tokens. However, your request has {} input tokens",
        [(r"(self\.)?max_model_len|max_length", "shown_limit")],
    ),
    Family(
        "max_tokens_too_large",
        "request",
        "'max_tokens' or 'max_completion_tokens' is too large: {}. This model's maximum context length is {} tokens and your request",
    ),
    Family(
        "passed_input_tokens",
        "request",
        "You passed {} input tokens and requested {} output tokens. However, the model's context length is only {} tokens",
    ),
    Family(
        "passed_input_chars",
        "request",
        "You passed {} input characters and requested {} output tokens. However, the model's context length is only {} tokens",
    ),
    Family(
        "requested_output_and_prompt",
        "request",
        "maximum context length is {} tokens. However, you requested {} output tokens and your prompt contains ...{} input tokens, for a",
        [(r"total|token_num \+ max_tokens", "total_tokens")],
        choices={"at least": "at_least"},
    ),
    Family(
        "requested_output_and_chars",
        "request",
        "maximum context length is {} tokens. However, you requested {} output tokens and your prompt contains {} characters",
    ),
    Family(
        "prompt_over_len",
        "request",
        "maximum context length is {} tokens. However, your prompt contains ...{} input tokens, which exceeds this limit even without",
        choices={"at least": "at_least"},
    ),
    Family("prompt_chars_over_len", "request", "maximum context length is {} tokens. However, your prompt contains {} characters"),
    Family(
        "max_tokens_over_len",
        "request",
        "{}={}...cannot be greater than {}=...",
        [(r"(self\.)?max_output_tokens_param", "param"), (MAX_LEN_LABEL, "limit_param"), (r"max_total_tokens", "max_model_len")],
        field_regex={"param": r"max_tokens|max_completion_tokens", "limit_param": r"max_model_len"},
    ),
    Family("max_tokens_over_len", "request", "'max_tokens' ({}) cannot be greater than the model's maximum context length ({})"),
    Family("max_tokens_zero", "request", "max_tokens must be at least 1, got {}", [(r"(self\.)?max_tokens", "max_tokens")]),
    Family(
        "max_tokens_zero",
        "request",
        "{} must be at least 1, got {}",
        [(r"parameter_name", "param"), (r"value", "max_tokens")],
        field_regex={"param": r"max_tokens|max_completion_tokens"},
        files=r"sampling_params\.py$",
    ),
    Family(
        "decoder_prompt_too_long",
        "request",
        "prompt (length {}) is longer than the maximum model length of {}",
        [(r"prompt_type", "prompt_type"), (r"max_prompt_len", "max_model_len")],
    ),
    Family("decoder_prompt_too_long", "request", "Prompt length of {} is longer than the maximum model length of {}"),
    Family(
        "decoder_prompt_too_long",
        "request",
        "The prompt (total length {}) is too long to fit into the model (context length {})",
        [(r"max_prompt_len", "max_model_len")],
    ),
    Family(
        "decoder_prompt_fills_len",
        "request",
        "prompt (length {}) plus the number of requested output tokens (at least 1) is longer than the maximum model length of {}",
        [(r"prompt_type", "prompt_type"), (r"max_prompt_len", "max_model_len")],
    ),
    Family(
        "v0_prompt_too_long",
        "request",
        "Input prompt ({} tokens) is too long and exceeds limit of {}",
        [(r"(self\.)?prompt_limit", "prompt_limit")],
    ),
    Family(
        "v0_prompt_over_capacity",
        "request",
        "Input prompt ({} tokens)...is too long and exceeds the capacity of block_manager",
        [(r"num_lookahead_slots", "lookahead_slots")],
    ),
    Family(
        "truncation_over_len",
        "request",
        "truncate_prompt_tokens value ({}) is greater than max_model_len ({})",
        [(r"truncate_prompt_tokens", "truncate_prompt_tokens")],
    ),
    # ---------------------------------------------------------------- start-up: context ------------------------------
    Family(
        "max_len_over_derived",
        "startup",
        "User-specified max_model_len ({}) is greater than the derived max_model_len (",
        [(r"max_len_key", "derived_key"), (r"derived_max_model_len", "derived_max_model_len"), (r"model_max_length", "model_max_length")],
    ),
    Family(
        "max_len_not_positive",
        "startup",
        "max_model_len must be a positive integer, got {}: {}",
        [(r"type\(self\.max_model_len\)\.__name__", "value_type")],
    ),
    Family(
        "batched_tokens_below_max_len",
        "startup",
        "max_num_batched_tokens ({}) is smaller than max_model_len ({})",
        [(r"(self\.)?max_num_batched_tokens", "max_num_batched_tokens")],
    ),
    Family(
        "batched_tokens_below_max_num_seqs",
        "startup",
        "max_num_batched_tokens ({}) must be greater than or equal to max_num_seqs ({})",
        [(r"(self\.)?max_num_batched_tokens", "max_num_batched_tokens"), (r"(self\.)?max_num_seqs", "max_num_seqs")],
    ),
    # ---------------------------------------------------------------- start-up: memory -------------------------------
    Family(
        "kv_cache_too_small_v0",
        "startup",
        "The model's max seq len ({}) is larger than the maximum number of tokens that can be stored in KV cache ({})",
        [(r"max_seq_len", "kv_cache_tokens")],
    ),
    Family(
        "kv_cache_too_small",
        "startup",
        "To serve at least one request with the model...s max seq len ({}), ({} G... KV cache is needed, which is larger than the",
        [(r".*needed_memory.*", "needed_gib"), (r".*available_memory.*", "available_gib"), (r"estimated_max_len", "estimate")],
    ),
    Family("no_kv_memory", "startup", "No available memory for the cache blocks"),
    Family("auto_fit_failed", "startup", "Cannot auto-fit max_model_len: not enough GPU memory"),
    Family(
        "free_memory_below_budget",
        "startup",
        "Free memory on device ...({}/{} GiB) on startup is less than ...({}, {} GiB)",
        [
            (r"(self\.)?init_snapshot\.device_", "device"),
            (r"(format_gib|GiB)\((self\.)?init_snapshot\.free_memory\)", "free_gib"),
            (r"(format_gib|GiB)\((self\.)?init_snapshot\.total_memory\)", "total_gib"),
            (r"(format_gib|GiB)\((self\.)?(requested_memory|engine_memory)\)", "requested_gib"),
        ],
    ),
    Family(
        "external_weights_over_budget",
        "startup",
        "Externally held weights on device {} ({}/{} GiB) exceed the desired GPU memory utilization ({}, {} GiB)",
        [
            (r"init_snapshot\.device_", "device"),
            (r"format_gib\(external_weight_memory\)", "external_gib"),
            (r"format_gib\(init_snapshot\.total_memory\)", "total_gib"),
            (r"format_gib\(requested_memory\)", "requested_gib"),
        ],
    ),
    Family(
        "cpu_memory_below_budget",
        "startup",
        "Available memory on node {} ({}/{} GiB) on startup is less than desired CPU memory utilization ({}, {} GiB)",
        [
            (r"cpu_core\.numa_node", "numa_node"),
            (r"format_gib\(available_memory\)", "free_gib"),
            (r"format_gib\(memory_status\.total_memory\)", "total_gib"),
            (r"format_gib\((self\.)?requested(_cpu)?_memory\)", "requested_gib"),
        ],
    ),
    Family(
        "cpu_kv_allocation_failed",
        "startup",
        "Available memory on node {} ({}/{} GiB) on kv cache allocation is less than requested memory for kv ({}",
        [
            (r"cpu_core\.numa_node", "numa_node"),
            (r"format_gib\(available_memory\)", "free_gib"),
            (r"format_gib\(memory_status\.total_memory\)", "total_gib"),
            (r"format_gib\((explicit_kv_cache_size|requested_memory_for_kv)\)", "requested_gib"),
            (r"format_gib\(.*\)", "requested_total_gib"),
        ],
    ),
    Family(
        "cpu_no_kv_memory",
        "startup",
        "The worker already uses {} GiB (model weights and runtime), more than the {} GiB of CPU memory reserved for it on node {}",
        [
            (r"format_gib\(consumed_memory\)", "weights_gib"),
            (r"format_gib\(.*requested_cpu_memory\)", "requested_gib"),
            (r"cpu_core\.numa_node", "numa_node"),
            (r"in_use / 100", "min_utilization"),
        ],
    ),
    Family(
        "memory_profiling_error",
        "startup",
        "Error in memory profiling. Initial ... memory {}, current... memory {}",
        [(r".*(init|baseline).*", "initial_memory"), (r".*", "current_memory")],
    ),
    Family("empty_prompt", "request", "please provide at least one prompt"),
    Family("empty_prompt", "request", "Please provide at least one prompt"),
    Family("empty_prompt", "request", "You must pass at least one prompt"),
    Family("load_oom", "startup", "Failed to load model - not enough GPU memory", [(r"e", "original_error")]),
    Family(
        "warmup_oom",
        "startup",
        "CUDA out of memory occurred when warming up ... with {} dummy requests",
        [(r"num_reqs", "num_requests"), (r"task", "task")],
    ),
    Family(
        "mamba_seqs_over_blocks",
        "startup",
        "max_num_seqs ({}) exceeds available Mamba cache blocks ({})",
        [(r"max_num_reqs", "max_num_seqs"), (r"kv_cache_config\.num_blocks", "mamba_blocks")],
    ),
    # ---------------------------------------------------------------- start-up: parallelism, process -----------------
    Family(
        "heads_not_divisible_by_tp",
        "startup",
        "Total number of attention heads ({}) must be divisible by tensor parallel size ({})",
        [(r"total_num_attention_heads", "heads"), (r"tensor_parallel_size", "tensor_parallel_size")],
    ),
    Family(
        "world_size_over_gpus",
        "startup",
        "World size ({}) is larger than the number of available GPUs ({}) in this node",
        [(r"(self\.)?world_size", "world_size"), (r"gpu_count", "gpus")],
    ),
    Family(
        "port_in_use_by",
        "startup",
        "port {} is used by process {} launched with command",
        [(r"port", "port"), (r"process", "process"), (r".*cmdline.*", "process")],
    ),
    Family(
        "engine_init_failed",
        "startup",
        "Engine core initialization failed. See root cause above.",
        [(r"finished|failed_proc_name", "failed_procs"), (r"failed_frontend_procs", "failed_frontend_procs")],
    ),
    Family("engine_dead", "runtime", "EngineCore encountered an issue"),
    Family("worker_died", "runtime", "Worker proc {} died unexpectedly", [(r".*exit.*", "exit_code"), (r".*", "worker")]),
    # ---------------------------------------------------------------- facts (log lines that carry sizes) ------------
    Family("gpu_blocks", "fact", "# GPU blocks: {}", [(r"num_gpu_blocks|num_blocks", "gpu_blocks"), (r"num_cpu_blocks", "cpu_blocks")]),
    Family(
        "weights_loaded",
        "fact",
        "Model loading took {} GiB",
        [(r".*(memory|consumed|GiB).*", "weights_gib"), (r".*", "load_seconds")],
    ),
    Family("weights_loaded", "fact", "Loading model weights took {} GB", [(r".*model_memory_usage.*", "weights_gib")]),
    Family("kv_memory_available", "fact", "Available KV cache memory: {} GiB", [(r".*", "available_gib")]),
    Family(
        "memory_profile",
        "fact",
        "the current vLLM instance can use total_gpu_memory ({}GiB) x gpu_memory_utilization ({}) = {}GiB",
        [
            (r".*total_gpu_memory.*", "total_gib"),
            (r".*(memory_for_current_instance|requested_memory).*", "requested_gib"),
            (r".*weights_memory.*", "weights_gib"),
            (r".*non_torch.*", "non_torch_gib"),
            (r".*torch_peak.*", "activation_gib"),
            (r".*available_kv_cache_memory.*", "available_gib"),
            (r".*profile_time.*", "profile_seconds"),
        ],
    ),
    Family(
        "memory_summary",
        "fact",
        "Free memory on device ...({}/{} GiB) on startup. Desired GPU memory utilization is ({}, {} GiB). Actual usage is {}",
        [
            (r".*init_snapshot\.device_", "device"),
            (r".*free_memory\)", "free_gib"),
            (r".*total_memory\)", "total_gib"),
            (r".*requested_memory\)", "requested_gib"),
            (r".*(model_memory_usage|total_consumed).*", "weights_gib"),
            (r".*peak_activation.*", "activation_gib"),
            (r".*non_torch.*", "non_torch_gib"),
            (r".*cuda_graph.*", "cudagraph_gib"),
            (r"(format_gib|GiB)\(kv_cache_memory_bytes_to_requested_limit\)", "kv_fit_gib"),
            (r"kv_cache_memory_bytes_to_requested_limit", "kv_fit_bytes"),
            (r"(format_gib|GiB)\(kv_cache_memory_bytes_to_gpu_limit\)", "kv_max_gib"),
            (r"kv_cache_memory_bytes_to_gpu_limit", "kv_max_bytes"),
            (r".*(available_kv|kv_cache_memory).*", "available_gib"),
        ],
    ),
]

# Messages vLLM does not write itself (the OS, PyTorch, huggingface_hub) but that end its start. Regexes by hand, each with
# a verbatim sample and where it comes from.
EXTERNAL: list[dict] = [
    {
        "kind": "address_in_use",
        "phase": "startup",
        "anchor": "already",
        "pattern": r"(?:\[Errno\s+98\]\s*)?error\s+while\s+attempting\s+to\s+bind\s+on\s+address\s+\('(?P<host>[^']*)',\s*(?P<port>\d+)\):"
        r"\s*address\s+already\s+in\s+use",
        "flags": "i",
        "fields": {"host": "word", "port": "int"},
        "sample": "ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use",
        "origin": "Linux EADDRINUSE through uvicorn/asyncio (uvicorn/server.py, Server.startup)",
    },
    {
        "kind": "address_in_use",
        "phase": "startup",
        "anchor": "already",
        "pattern": r"\[Errno\s+98\]\s+Address\s+already\s+in\s+use|EADDRINUSE|address\s+already\s+in\s+use",
        "flags": "i",
        "fields": {},
        "sample": "OSError: [Errno 98] Address already in use",
        "origin": "Linux EADDRINUSE from socket.bind (vLLM's create_server_socket, get_open_port; torch.distributed's TCPStore)",
    },
    {
        "kind": "cuda_oom",
        "phase": "startup",
        "anchor": "memory",
        "pattern": r"CUDA\s+out\s+of\s+memory\.\s+Tried\s+to\s+allocate\s+(?P<tried>[\d.]+)\s+(?P<tried_unit>[KMG]iB)"
        r"(?:\s+\(GPU\s+\d+;\s+(?P<total>[\d.]+)\s+(?P<total_unit>[KMG]iB)\s+total\s+capa\w*ty;"
        r"[^)]*?(?P<free>[\d.]+)\s+(?P<free_unit>[KMG]iB)\s+free)?"
        r"(?:\.\s+GPU\s+\d+\s+has\s+a\s+total\s+capa\w*ty\s+of\s+(?P<total2>[\d.]+)\s+(?P<total2_unit>[KMG]iB)\s+of\s+which\s+"
        r"(?P<free2>[\d.]+)\s+(?P<free2_unit>[KMG]iB)\s+is\s+free\."
        r"(?:\s+Process\s+(?P<pid>\d+)\s+has\s+(?P<other>[\d.]+)\s+(?P<other_unit>[KMG]iB)\s+memory\s+in\s+use\.)?)?",
        "fields": {
            "tried": "float",
            "total": "float",
            "free": "float",
            "total2": "float",
            "free2": "float",
            "pid": "int",
            "other": "float",
            "tried_unit": "word",
            "total_unit": "word",
            "free_unit": "word",
            "total2_unit": "word",
            "free2_unit": "word",
            "other_unit": "word",
        },
        "sample": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of 79.19 GiB of which 1.50 GiB is free. "
        "Process 1234 has 77.60 GiB memory in use.",
        "origin": "PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp); '(GPU 0; T total capacity; ...)' is PyTorch < 2.1",
    },
    {
        "kind": "cuda_oom",
        "phase": "startup",
        "anchor": "memory",
        "pattern": r"CUDA\s+out\s+of\s+memory|torch\.OutOfMemoryError|torch\.cuda\.OutOfMemoryError",
        "fields": {},
        "sample": "torch.OutOfMemoryError: CUDA out of memory.",
        "origin": "PyTorch's CUDA caching allocator",
    },
    {
        "kind": "gated_repo",
        "phase": "startup",
        "anchor": "",
        "pattern": r"GatedRepoError|Access\s+to\s+model\s+\S+\s+is\s+restricted|gated\s+repo|401\s+Client\s+Error|403\s+Client\s+Error",
        "flags": "i",
        "fields": {},
        "sample": "huggingface_hub.errors.GatedRepoError: 401 Client Error.",
        "origin": "huggingface_hub (errors.GatedRepoError, utils/_http.py hf_raise_for_status)",
    },
    {
        "kind": "model_not_found",
        "phase": "startup",
        "anchor": "",
        "pattern": r"RepositoryNotFoundError|Repo\s+id\s+must\s+be\s+in\s+the\s+form|LocalEntryNotFoundError"
        r"|does\s+not\s+appear\s+to\s+have\s+a\s+file\s+named\s+config\.json"
        r"|Cannot\s+find\s+an\s+appropriate\s+cached\s+snapshot",
        "fields": {},
        "sample": "OSError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/models/does-not-exist'.",
        "origin": "huggingface_hub / transformers (utils/_validators.py validate_repo_id, file_download.py)",
    },
]

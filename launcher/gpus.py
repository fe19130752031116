"""Adapter: the GPUs this machine really has, through NVML (`nvidia-ml-py`, imported as `pynvml`).

The only module that imports pynvml, so tests fake exactly this seam. Totals are reported as CUDA sees
them: NVML's v2 memory info splits off the driver's reserved memory, and `total - reserved` is what
`cudaMemGetInfo` (and so vLLM) calls total. NVML's free memory is read before vLLM exists; vLLM checks free memory
after creating its own CUDA context, so that context is subtracted here, as the presets do.
"""

from __future__ import annotations

import os
from typing import Any

from launcher.errors import UserError
from launcher.hardware import CUDA_CONTEXT_BYTES, Gpu, GpuInventory, GpuProcess


class NvmlUnavailable(Exception):
    """No NVIDIA driver or library here."""


def _visible(all_gpus: list[Gpu], spec: str | None) -> list[Gpu]:
    """Apply CUDA_VISIBLE_DEVICES: comma-separated indices or (prefixes of) UUIDs; stops at the first bad entry."""
    if spec is None:
        return all_gpus
    chosen: list[Gpu] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            index = int(item)
            if index < 0 or index >= len(all_gpus):
                break
            chosen.append(all_gpus[index])
            continue
        matches = [g for g in all_gpus if g.uuid.startswith(item) or g.uuid.removeprefix("GPU-").startswith(item)]
        if len(matches) != 1:
            break
        chosen.append(matches[0])
    return chosen


def _process_name(pid: int) -> str:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # the process may be gone or in another container
        return ""


def _memory(nvml: Any, handle: Any) -> tuple[int, int, int, int]:
    """(cuda_total, free, used, reserved) in bytes."""
    try:
        info = nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
        reserved = int(getattr(info, "reserved", 0))
    except (TypeError, AttributeError, nvml.NVMLError):
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        reserved = 0
    return int(info.total) - reserved, int(info.free), int(info.used), reserved


def read_inventory() -> GpuInventory:
    """All visible GPUs with their memory and the processes holding it. Raises NvmlUnavailable."""
    try:
        import pynvml as nvml
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is not installed") from exc
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise NvmlUnavailable(f"NVML could not start: {exc}") from exc
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            total, free, used, reserved = _memory(nvml, handle)
            try:
                procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except nvml.NVMLError:
                procs = []
            holders = tuple(GpuProcess(int(p.pid), int(p.usedGpuMemory or 0), _process_name(int(p.pid))) for p in procs)
            gpus.append(
                Gpu(
                    index,
                    name if isinstance(name, str) else name.decode(),
                    total,
                    max(0, free - CUDA_CONTEXT_BYTES),
                    used,
                    reserved,
                    uuid if isinstance(uuid, str) else uuid.decode(),
                    holders,
                    nvml_free_bytes=free,
                )
            )
    finally:
        nvml.nvmlShutdown()
    visible = _visible(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return GpuInventory(tuple(visible), "nvml")


def require_inventory() -> GpuInventory:
    try:
        inventory = read_inventory()
    except NvmlUnavailable as exc:
        raise UserError(
            f"no GPU information: {exc}",
            "sizing needs each GPU's total and free memory",
            "run on the GPU machine, or plan offline with --gpu NAME (e.g. --gpu H100-80GB) or --gpu-memory SIZE --gpus N",
        ) from exc
    if not inventory.gpus:
        raise UserError(
            "NVML sees no usable GPU (check CUDA_VISIBLE_DEVICES)",
            "sizing needs at least one GPU",
            "fix CUDA_VISIBLE_DEVICES, or plan offline with --gpu NAME or --gpu-memory SIZE --gpus N",
        )
    return inventory

"""Adapter: the GPUs this machine really has, through NVML (`nvidia-ml-py`, imported as `pynvml`).

The only module that imports pynvml, so tests fake exactly this seam. Totals are reported as CUDA sees
them: NVML's v2 memory info splits off the driver's reserved memory, and `total - reserved` is what
`cudaMemGetInfo` (and so vLLM) calls total. NVML's free memory is read before vLLM exists; vLLM checks free memory
after creating its own CUDA context, so that context is subtracted here, as the presets do.

Which devices vLLM gets follows CUDA: CUDA_VISIBLE_DEVICES as PyTorch parses it, and a MIG-enabled GPU is not a
device itself: its MIG devices are, each with its own memory, one per process.
"""

from __future__ import annotations

import os
import re
from typing import Any

from launcher.errors import UserError
from launcher.hardware import CUDA_CONTEXT_BYTES, Gpu, GpuInventory, GpuProcess

OFFLINE = "plan offline with --gpu NAME (e.g. --gpu H100-80GB) or --gpu-memory SIZE --gpus N"
MIG_FIX = (
    "set CUDA_VISIBLE_DEVICES=MIG-<uuid> to the one MIG device vLLM should use (`nvidia-smi -L` lists them), "
    "or plan for a slice with --gpu-memory SIZE"
)
# A CUDA process sees one MIG device at most, and vLLM runs on one per process (NVIDIA MIG user guide, "CUDA Device
# Enumeration": https://docs.nvidia.com/datacenter/tesla/mig-user-guide/mig-device-names.html#cuda-device-enumeration).
MIG_WHY = "a CUDA process can use only one MIG device, and CUDA never runs on a MIG-enabled GPU as a whole"


class NvmlUnavailable(Exception):
    """NVML cannot say which GPUs vLLM would get or how much memory they have; `why` and `fix` are for the user."""

    def __init__(
        self, what: str, why: str = "sizing needs each GPU's total and free memory", fix: str = f"run on the GPU machine, or {OFFLINE}"
    ) -> None:
        super().__init__(what)
        self.why = why
        self.fix = fix


def _strtoul(text: str) -> int:
    digits = re.match(r"[+-]?\d+", text)
    return int(digits.group()) if digits else -1


def _parse_visible(spec: str) -> tuple[list[int] | list[str], str]:
    """CUDA_VISIBLE_DEVICES as vLLM counts it, and why it names no device ("" when it names some).

    vLLM counts devices with torch.cuda._device_count_nvml (vllm 0.33.0 vllm/platforms/cuda.py,
    _cuda_device_count_stateless), which reads the variable as CUDA does (PyTorch torch/cuda/__init__.py,
    _parse_visible_devices: https://github.com/pytorch/pytorch/blob/main/torch/cuda/__init__.py): GPU- or MIG- UUID
    prefixes when it starts with one, else strtoul()-style ordinals; the first entry of another kind (or a negative one)
    ends the list, and a repeated entry leaves no device at all ("Repeated ordinal results in empty set").
    """
    for prefix in ("GPU-", "MIG-"):
        if spec.startswith(prefix):
            ids: list[str] = []
            for item in spec.split(","):
                if item in ids:
                    return [], f"CUDA_VISIBLE_DEVICES names {item} twice, and CUDA then sees no device"
                if not item.startswith(prefix):
                    break
                ids.append(item)
            return ids, ""
    ordinals: list[int] = []
    for item in spec.split(","):
        ordinal = _strtoul(item.strip())
        if ordinal in ordinals:
            return [], f"CUDA_VISIBLE_DEVICES names GPU {ordinal} twice, and CUDA then sees no device"
        if ordinal < 0:
            break
        ordinals.append(ordinal)
    return ordinals, "" if ordinals else f"CUDA_VISIBLE_DEVICES={spec!r} names no device (CUDA stops at the first invalid entry)"


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def _handle(nvml: Any, index: int) -> Any:
    try:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as exc:
        raise _lost(f"GPU {index}", exc) from exc


def _lost(label: str, exc: Exception) -> NvmlUnavailable:
    return NvmlUnavailable(
        f"NVML failed to read {label}: {exc}",
        f"CUDA_VISIBLE_DEVICES does not leave out {label}, so vLLM may use it, and sizing needs its memory",
        f"check it with nvidia-smi (a lost GPU needs a reset or a reboot), leave it out with CUDA_VISIBLE_DEVICES, or {OFFLINE}",
    )


def _mig_devices(nvml: Any, handle: Any) -> list[Any] | None:
    """The MIG device handles of a GPU in MIG mode (CUDA's devices there, not the GPU), or None when MIG is off."""
    try:
        if nvml.nvmlDeviceGetMigMode(handle)[0] != nvml.NVML_DEVICE_MIG_ENABLE:
            return None
        slots = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except nvml.NVMLError:  # NOT_SUPPORTED before Ampere
        return None
    found = []
    for slot in range(slots):
        try:
            found.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot))
        except nvml.NVMLError:  # an empty slot
            continue
    return found


def _mig_refused(what: str) -> NvmlUnavailable:
    return NvmlUnavailable(what, MIG_WHY, MIG_FIX)


def _uuids(nvml: Any, handles: list[Any]) -> str:
    return ", ".join(_text(nvml.nvmlDeviceGetUUID(h)) for h in handles) or "none created"


def _all(nvml: Any, count: int) -> list[tuple[int, Any, str]]:
    """The devices CUDA sees with CUDA_VISIBLE_DEVICES unset: the GPUs, or the one MIG device."""
    whole, slices = [], []
    for index in range(count):
        handle = _handle(nvml, index)
        migs = _mig_devices(nvml, handle)
        if migs is None:
            whole.append((index, handle, f"GPU {index}"))
        else:
            slices += [(index, m, f"a MIG device of GPU {index}") for m in migs]
    if slices and (whole or len(slices) > 1):
        raise _mig_refused(
            f"CUDA_VISIBLE_DEVICES is not set and GPU {slices[0][0]} has MIG enabled, so which device CUDA gives vLLM is "
            f"not known; its MIG devices: {_uuids(nvml, [h for _, h, _ in slices])}"
        )
    return whole + slices


def _by_ordinal(nvml: Any, count: int, ordinals: list[int]) -> list[tuple[int, Any, str]]:
    chosen = []
    for index in ordinals:
        if index >= count:  # the list ends at the first GPU that does not exist (torch.cuda._device_count_nvml)
            break
        handle = _handle(nvml, index)
        migs = _mig_devices(nvml, handle)
        if migs is not None:
            raise _mig_refused(f"CUDA_VISIBLE_DEVICES names GPU {index}, which has MIG enabled; its MIG devices: {_uuids(nvml, migs)}")
        chosen.append((index, handle, f"GPU {index}"))
    return chosen


def _by_gpu_uuid(nvml: Any, count: int, prefixes: list[str]) -> tuple[list[tuple[int, Any, str]], str]:
    known: dict[int, tuple[Any, str]] = {}
    failed: dict[int, Exception] = {}
    for index in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            known[index] = (handle, _text(nvml.nvmlDeviceGetUUID(handle)))
        except nvml.NVMLError as exc:  # fatal only if this GPU may be one CUDA_VISIBLE_DEVICES names
            failed[index] = exc
    chosen: list[int] = []
    for prefix in prefixes:
        matches = [i for i, (_, uuid) in known.items() if uuid.startswith(prefix)]
        if not matches and failed:
            index, exc = next(iter(failed.items()))
            raise _lost(f"GPU {index}", exc)
        if len(matches) != 1:  # unknown or ambiguous: CUDA stops here (torch.cuda._transform_uuid_to_ordinals)
            break
        if matches[0] in chosen:
            return [], f"CUDA_VISIBLE_DEVICES names GPU {matches[0]} twice, and CUDA then sees no device"
        chosen.append(matches[0])
    return _by_ordinal(nvml, count, chosen), ""


def _by_mig_uuid(nvml: Any, count: int, names: list[str]) -> tuple[list[tuple[int, Any, str]], str]:
    if len(names) > 1:
        raise _mig_refused(f"CUDA_VISIBLE_DEVICES names {len(names)} MIG devices, and vLLM runs on one MIG device per process")
    (name,) = names
    # MIG-<uuid> since driver R470, MIG-<GPU uuid>/<GPU instance>/<compute instance> before (CUDA C++ Programming
    # Guide, "CUDA Environment Variables": https://docs.nvidia.com/cuda/cuda-c-programming-guide/#cuda-environment-variables).
    legacy = re.fullmatch(r"MIG-(GPU-[^/]+)/(\d+)/(\d+)", name)
    failed: dict[int, Exception] = {}
    for index in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for mig in _mig_devices(nvml, handle) or []:
                uuid = _text(nvml.nvmlDeviceGetUUID(mig))
                if legacy:
                    parent = _text(nvml.nvmlDeviceGetUUID(handle))
                    ids = (nvml.nvmlDeviceGetGpuInstanceId(mig), nvml.nvmlDeviceGetComputeInstanceId(mig))
                    hit = parent.startswith(legacy[1]) and ids == (int(legacy[2]), int(legacy[3]))
                else:
                    hit = uuid.startswith(name)
                if hit:
                    return [(index, mig, f"MIG device {uuid} of GPU {index}")], ""
        except nvml.NVMLError as exc:
            failed[index] = exc
    if failed:
        index, exc = next(iter(failed.items()))
        raise _lost(f"GPU {index}", exc)
    return [], f"no MIG device is {name} (`nvidia-smi -L` lists them)"


def _select(nvml: Any) -> tuple[list[tuple[int, Any, str]], str]:
    """(NVML index, handle, label) of each device vLLM would see, in CUDA's order, and why there are none."""
    count = nvml.nvmlDeviceGetCount()
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return _all(nvml, count), ""
    entries, why_none = _parse_visible(spec)
    if not entries:
        return [], why_none
    if isinstance(entries[0], int):
        return _by_ordinal(nvml, count, entries), ""
    if entries[0].startswith("MIG-"):
        return _by_mig_uuid(nvml, count, entries)
    return _by_gpu_uuid(nvml, count, entries)


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


def _gpu(nvml: Any, index: int, handle: Any, label: str) -> Gpu:
    try:
        name = _text(nvml.nvmlDeviceGetName(handle))
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        total, free, used, reserved = _memory(nvml, handle)
    except nvml.NVMLError as exc:
        raise _lost(label, exc) from exc
    try:
        procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except nvml.NVMLError:
        procs = []
    holders = tuple(GpuProcess(int(p.pid), int(p.usedGpuMemory or 0), _process_name(int(p.pid))) for p in procs)
    return Gpu(index, name, total, max(0, free - CUDA_CONTEXT_BYTES), used, reserved, uuid, holders, nvml_free_bytes=free)


def _read() -> tuple[list[Gpu], str]:
    """The GPUs (or the MIG device) vLLM would see, and why there are none. Raises NvmlUnavailable."""
    try:
        import pynvml as nvml
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is not installed") from exc
    try:
        nvml.nvmlInit()
    except Exception as exc:
        raise NvmlUnavailable(f"NVML could not start: {exc}") from exc
    try:
        try:
            devices, why_none = _select(nvml)
        except nvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML failed to list the GPUs: {exc}") from exc
        return [_gpu(nvml, *device) for device in devices], why_none
    finally:
        nvml.nvmlShutdown()


def read_inventory() -> GpuInventory:
    """All visible GPUs with their memory and the processes holding it. Raises NvmlUnavailable."""
    return GpuInventory(tuple(_read()[0]), "nvml")


def require_inventory() -> GpuInventory:
    try:
        gpus, why_none = _read()
    except NvmlUnavailable as exc:
        raise UserError(f"no GPU information: {exc}", exc.why, exc.fix) from exc
    if not gpus:
        raise UserError(
            f"NVML sees no usable GPU ({why_none or 'check CUDA_VISIBLE_DEVICES'})",
            "sizing needs at least one GPU",
            f"fix CUDA_VISIBLE_DEVICES, or {OFFLINE}",
        )
    return GpuInventory(tuple(gpus), "nvml")

"""A stand-in `pynvml` for running examples without a GPU: put this folder first on PYTHONPATH and vllm-launch sees
FAKE_NVML_GPUS (default 2) idle NVIDIA H100 80GB HBM3 GPUs. It replaces NVML only, the one hardware seam
(launcher/gpus.py); numbers as NVML reports an H100 80GB (81559 MiB total, CUDA total 79.19 GiB)."""

import os
from types import SimpleNamespace

NVMLError = RuntimeError
nvmlMemory_v2 = 2
NVML_DEVICE_MIG_ENABLE = 1
_TOTAL = 81559 << 20
_CUDA_TOTAL = int(79.19 * (1 << 30))
_COUNT = int(os.environ.get("FAKE_NVML_GPUS", "2"))


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return _COUNT


def nvmlDeviceGetHandleByIndex(index):
    return index


def nvmlDeviceGetName(handle):
    return "NVIDIA H100 80GB HBM3"


def nvmlDeviceGetUUID(handle):
    return f"GPU-{handle:08d}-fake-nvml"


def nvmlDeviceGetMemoryInfo(handle, version=None):
    free = _CUDA_TOTAL - (int(0.51 * (1 << 30)))  # an idle GPU after CUDA's context
    return SimpleNamespace(total=_TOTAL, free=free, used=_TOTAL - (_TOTAL - _CUDA_TOTAL) - free, reserved=_TOTAL - _CUDA_TOTAL)


def nvmlDeviceGetMigMode(handle):
    return 0, 0  # MIG off, as on a whole H100


def nvmlDeviceGetComputeRunningProcesses(handle):
    return []

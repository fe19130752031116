"""GPU inventory as plain data, and presets for planning without a GPU. No I/O here.

Preset totals are what CUDA reports as total device memory (`cudaMemGetInfo`, `torch.cuda.mem_get_info`),
which is what vLLM multiplies by --gpu-memory-utilization and logs as "Free memory on device (free/total)".
"""

from __future__ import annotations

from dataclasses import dataclass, field

GiB = 1 << 30
MiB = 1 << 20

# CUDA context created before vLLM snapshots free memory: H100 80GB HBM3 logs free 78.68 of 79.19 GiB
# on an otherwise idle GPU (vLLM 0.19, dev-observations obs065-obs119); on an H200 (driver 580) a fresh torch
# context took 0.51 GiB too (free 149,557,477,376 of CUDA total 150,109,880,320 bytes; issue 10, measured).
CUDA_CONTEXT_BYTES = int(0.51 * GiB)


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int
    name: str = ""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_bytes: int  # as CUDA reports it (NVML total minus the driver's reserved memory)
    free_bytes: int  # as vLLM's start-up check sees it: after vLLM's own CUDA context is created
    used_bytes: int = 0
    reserved_bytes: int = 0
    uuid: str = ""
    processes: tuple[GpuProcess, ...] = field(default_factory=tuple)
    nvml_free_bytes: int | None = None  # NVML's free memory (what nvidia-smi shows), when read from NVML


@dataclass(frozen=True)
class GpuInventory:
    gpus: tuple[Gpu, ...]
    source: str  # "nvml", "preset H100-80GB", "--gpu-memory", "host memory"
    device: str = "cuda"  # "cuda" or "cpu"
    # The most GPUs of this kind the user could use: the real count, or 8 when planning from a preset
    # without --gpus (remedies may then suggest a larger tensor-parallel size).
    max_gpus: int = 0

    def __post_init__(self) -> None:
        if self.max_gpus < len(self.gpus):
            object.__setattr__(self, "max_gpus", len(self.gpus))

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def name(self) -> str:
        return self.gpus[0].name if self.gpus else ""


@dataclass(frozen=True)
class GpuPreset:
    total_gib: float
    source: str


# Totals as CUDA reports them (NVML's total less the driver's reservation, which differs by GPU and driver: 0.46 GiB on
# H100 80GB, 0.6 GiB on H200). Each entry cites where its number was read; NVML totals for comparison (nvidia-smi,
# https://github.com/modal-labs/modal-client/pull/2797): H100 81559 MiB, A100 80GB 81920 MiB, A100 40GB 40960 MiB,
# A10 23028 MiB, L40S 46068 MiB, L4 23034 MiB, T4 15360 MiB.
GPU_PRESETS: dict[str, GpuPreset] = {
    "H100-80GB": GpuPreset(79.19, "vLLM 0.19 log 'Free memory on device (78.68/79.19 GiB)', tests/data/observations.json obs065-obs245"),
    "H200": GpuPreset(
        150_109_880_320 / GiB,
        "measured on an H200 with driver 580: CUDA total 150,109,880,320 bytes (NVML 150,754,820,096 less 644,939,776 reserved), issue 10",
    ),
    "B200": GpuPreset(178.35, "torch total_memory on B200 180GB as logged by vLLM (178.35 GiB)"),
    "A100-80GB": GpuPreset(
        79.26,
        "derived from vLLM 0.10.1.1 logs of the same runs at --gpu-memory-utilization 0.25 and 0.5 on A100 80GB "
        "(tests/data/observations.json obs001-obs004): (24.83 - 5.01) / 0.25 = 79.28 GiB at TP=1, (31.83 - 12.02) / 0.25 = 79.24 at TP=2",
    ),
    "A100-40GB": GpuPreset(39.39, "torch total_memory on A100-SXM4-40GB (39.39 GiB); NVML 40960 MiB"),
    "L40S": GpuPreset(44.39, "torch total_memory on L40S (44.39 GiB); NVML 46068 MiB"),
    "L4": GpuPreset(22.05, "torch total_memory on L4 (22.05 GiB); NVML 23034 MiB"),
    "A10G": GpuPreset(21.99, "torch total_memory on A10G (21.99 GiB); NVML 23028 MiB"),
    "RTX-4090": GpuPreset(23.53, "torch total_memory on GeForce RTX 4090 (23.53 GiB)"),
    "RTX-3090": GpuPreset(23.58, "vLLM log 'total_gpu_memory=23.58GiB' on RTX 3090, tests/data/observations.json obs011"),
    "T4": GpuPreset(14.58, "torch total_memory on Tesla T4 (14.58 GiB); NVML 15360 MiB"),
    "V100": GpuPreset(15.77, "torch total_memory on V100-SXM2-16GB (15.77 GiB)"),
    "V100-32GB": GpuPreset(31.74, "torch total_memory on V100-SXM2-32GB (31.74 GiB)"),
}


def preset_names() -> list[str]:
    return sorted(GPU_PRESETS)


def find_preset(name: str) -> tuple[str, GpuPreset] | None:
    wanted = name.replace("_", "-").replace(" ", "-").upper()
    for key, preset in GPU_PRESETS.items():
        if key.upper() == wanted or key.upper().replace("-", "") == wanted.replace("-", ""):
            return key, preset
    return None


def inventory_from_preset(name: str, count: int, max_gpus: int = 0) -> GpuInventory:
    found = find_preset(name)
    if found is None:
        raise KeyError(name)
    key, preset = found
    total = int(preset.total_gib * GiB)
    gpu = Gpu(0, key, total, total - CUDA_CONTEXT_BYTES)
    gpus = tuple(Gpu(i, gpu.name, gpu.total_bytes, gpu.free_bytes) for i in range(count))
    return GpuInventory(gpus, f"preset {key}", max_gpus=max_gpus)


def inventory_from_size(total_bytes: int, count: int, max_gpus: int = 0) -> GpuInventory:
    return GpuInventory(
        tuple(Gpu(i, "GPU", total_bytes, total_bytes - CUDA_CONTEXT_BYTES) for i in range(count)),
        "--gpu-memory",
        max_gpus=max_gpus,
    )

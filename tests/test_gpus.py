"""The NVML adapter, against a fake `pynvml` module at that one seam."""

import sys
from types import SimpleNamespace as NS

import pytest

from launcher import gpus
from launcher.errors import UserError
from launcher.hardware import CUDA_CONTEXT_BYTES

GiB = 1 << 30


class FakeNvml:
    NVMLError = RuntimeError
    nvmlMemory_v2 = 2

    def __init__(self, devices):
        self.devices = devices

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.devices[i]

    def nvmlDeviceGetName(self, h):
        return h["name"]

    def nvmlDeviceGetUUID(self, h):
        return h["uuid"]

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        return NS(total=h["total"], free=h["free"], used=h["total"] - h["reserved"] - h["free"], reserved=h["reserved"])

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [NS(pid=p, usedGpuMemory=m) for p, m in h["procs"]]


def device(i, free):
    # H100 80GB HBM3: NVML total 81559 MiB; the driver reserves what CUDA does not report (CUDA total 79.19 GiB).
    return {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": f"GPU-{i}aaa-bbbb",
        "total": 81559 << 20,
        "reserved": (81559 << 20) - int(79.19 * GiB),
        "free": free,
        "procs": [(1234, 10 * GiB)] if i else [],
    }


@pytest.fixture
def fake(monkeypatch):
    nvml = FakeNvml([device(0, 78 * GiB), device(1, 60 * GiB)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return nvml


def test_total_is_what_cuda_reports(fake):
    inv = gpus.read_inventory()
    assert inv.count == 2
    assert inv.gpus[0].total_bytes == int(79.19 * GiB)
    assert inv.gpus[1].processes[0].pid == 1234 and inv.gpus[1].nvml_free_bytes == 60 * GiB


def test_free_memory_is_what_vllm_sees_after_its_cuda_context(fake):
    # vLLM checks free memory after creating its own context (0.51 GiB on H100 and H200): NVML's reading predates it.
    inv = gpus.read_inventory()
    assert inv.gpus[1].free_bytes == 60 * GiB - CUDA_CONTEXT_BYTES


@pytest.mark.parametrize(("visible", "expected"), [("1", [1]), ("1,0", [1, 0]), ("GPU-1aaa", [1]), ("0,7,1", [0]), ("", [])])
def test_cuda_visible_devices(fake, monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert [g.index for g in gpus.read_inventory().gpus] == expected


def test_no_nvml_is_a_clear_error(monkeypatch):
    class Broken(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", Broken([]))
    with pytest.raises(UserError, match="--gpu NAME"):
        gpus.require_inventory()

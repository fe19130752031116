"""The NVML adapter, against a fake `pynvml` module at that one seam."""

import sys
from types import SimpleNamespace as NS

import pytest
from inprocess import run_main

from launcher import gpus
from launcher.errors import UserError
from launcher.hardware import CUDA_CONTEXT_BYTES

GiB = 1 << 30


class FakeNvml:
    """A device is a dict; "lost" names the calls that fail for it as on a fallen-off GPU, "mig" lists its MIG
    devices (None for an empty slot) and turns MIG mode on."""

    NVMLError = RuntimeError
    nvmlMemory_v2 = 2
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, devices):
        self.devices = devices

    def _read(self, h, call):
        if call in h.get("lost", ()):
            raise self.NVMLError("GPU is lost")
        return h

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self._read(self.devices[i], "handle")

    def nvmlDeviceGetName(self, h):
        return self._read(h, "name")["name"]

    def nvmlDeviceGetUUID(self, h):
        return self._read(h, "uuid")["uuid"]

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        self._read(h, "memory")
        return NS(total=h["total"], free=h["free"], used=h["total"] - h["reserved"] - h["free"], reserved=h["reserved"])

    def nvmlDeviceGetMigMode(self, h):
        mode = int("mig" in self._read(h, "mig"))
        return mode, mode

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7 if "mig" in h else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, i):
        if "mig" not in h or i >= len(h["mig"]) or h["mig"][i] is None:
            raise self.NVMLError("Not Found")
        return h["mig"][i]

    def nvmlDeviceGetGpuInstanceId(self, m):
        return m["gi"]

    def nvmlDeviceGetComputeInstanceId(self, m):
        return m["ci"]

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


def mig(uuid, gib, gi, ci):
    # A MIG device of an A100 80GB: NVML reports its own memory, not the parent GPU's.
    return {
        "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
        "uuid": uuid,
        "total": gib * GiB,
        "reserved": 0,
        "free": gib * GiB - GiB,
        "procs": [],
        "gi": gi,
        "ci": ci,
    }


def a100_with_mig(i, *slices):
    return {**device(i, 80 * GiB), "name": "NVIDIA A100-SXM4-80GB", "uuid": f"GPU-{i}a100", "mig": list(slices)}


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


def use(monkeypatch, devices, visible=None):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(devices))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


SLICE_A, SLICE_B = mig("MIG-aaaa-1111", 40, 1, 0), mig("MIG-bbbb-2222", 20, 2, 0)


@pytest.mark.parametrize("visible", ["MIG-bbbb-2222", "MIG-bbbb", "MIG-GPU-0a100/2/0"])
def test_a_mig_device_named_in_cuda_visible_devices_is_sized_as_its_slice(monkeypatch, visible):
    # MIG-<uuid> (driver R470+) and MIG-<GPU uuid>/<GI>/<CI> (older drivers, still written by some device plugins).
    use(monkeypatch, [a100_with_mig(0, SLICE_A, None, SLICE_B), device(1, 78 * GiB)], visible)
    (gpu,) = gpus.require_inventory().gpus
    assert (gpu.uuid, gpu.total_bytes, gpu.index) == ("MIG-bbbb-2222", 20 * GiB, 0)
    assert gpu.free_bytes == 19 * GiB - CUDA_CONTEXT_BYTES and "MIG" in gpu.name


def test_the_only_mig_device_is_what_cuda_sees_without_cuda_visible_devices(monkeypatch):
    # A Kubernetes pod given one MIG slice: NVML lists the parent A100 (80 GB) and that one slice; CUDA runs on the slice.
    use(monkeypatch, [a100_with_mig(0, None, SLICE_A)])
    assert [(g.uuid, g.total_bytes) for g in gpus.require_inventory().gpus] == [("MIG-aaaa-1111", 40 * GiB)]


@pytest.mark.parametrize(
    ("devices", "visible", "needle"),
    [
        ([a100_with_mig(0, SLICE_A, SLICE_B)], None, "MIG-aaaa-1111, MIG-bbbb-2222"),  # CUDA would pick one of them
        ([device(0, 78 * GiB), a100_with_mig(1, SLICE_A)], None, "GPU 1"),
        ([device(0, 78 * GiB), a100_with_mig(1, SLICE_A)], "1", "MIG-aaaa-1111"),  # the whole GPU is not a CUDA device
        ([a100_with_mig(0, SLICE_A, SLICE_B)], "MIG-aaaa-1111,MIG-bbbb-2222", "one MIG device"),
    ],
)
def test_mig_without_one_chosen_slice_is_refused_with_what_to_set(monkeypatch, devices, visible, needle):
    use(monkeypatch, devices, visible)
    with pytest.raises(UserError, match="MIG") as caught:
        gpus.require_inventory()
    assert needle in str(caught.value) and "CUDA_VISIBLE_DEVICES=MIG-" in caught.value.fix and "--gpu-memory" in caught.value.fix


def test_an_unknown_mig_device_is_named(monkeypatch):
    use(monkeypatch, [a100_with_mig(0, SLICE_A)], "MIG-cccc")
    with pytest.raises(UserError, match="no MIG device is MIG-cccc"):
        gpus.require_inventory()


def test_a_mig_gpu_without_mig_devices_is_no_cuda_device(monkeypatch):
    use(monkeypatch, [a100_with_mig(0), device(1, 78 * GiB)])
    assert [g.index for g in gpus.read_inventory().gpus] == [1]


def lost(i, *calls):
    return {**device(i, 78 * GiB), "lost": set(calls)}


@pytest.mark.parametrize(
    ("devices", "visible"), [([device(0, 78 * GiB), lost(1, "handle")], "0"), ([device(0, 78 * GiB), lost(1, "uuid")], "GPU-0aaa")]
)
def test_an_nvml_error_on_a_gpu_cuda_visible_devices_leaves_out_is_ignored(monkeypatch, devices, visible):
    use(monkeypatch, devices, visible)
    assert [g.index for g in gpus.read_inventory().gpus] == [0]


@pytest.mark.parametrize("call", ["handle", "name", "uuid", "memory"])
def test_an_nvml_error_on_a_visible_gpu_is_a_clear_error_naming_it(monkeypatch, call):
    use(monkeypatch, [device(0, 78 * GiB), lost(1, call)])
    with pytest.raises(UserError, match="GPU 1.*GPU is lost"):
        gpus.require_inventory()
    result = run_main("gpus")
    assert result.rc == 2 and "GPU 1" in result.err and "GPU is lost" in result.err


def test_a_uuid_nvml_cannot_match_while_a_gpu_fails_is_a_clear_error(monkeypatch):
    use(monkeypatch, [device(0, 78 * GiB), lost(1, "uuid")], "GPU-1aaa")
    with pytest.raises(UserError, match="GPU 1.*GPU is lost"):
        gpus.require_inventory()


@pytest.mark.parametrize("visible", ["0,0", "1,0,1", "0,7,0", "GPU-1aaa,GPU-1aaa", "GPU-1,GPU-1aaa", "MIG-aaaa-1111,MIG-aaaa-1111"])
def test_a_repeated_device_means_no_gpu_as_in_pytorch(monkeypatch, visible):
    # torch.cuda._parse_visible_devices / _transform_uuid_to_ordinals: "Repeated ordinal results in empty set".
    use(monkeypatch, [device(0, 78 * GiB), device(1, 60 * GiB), a100_with_mig(2, SLICE_A)], visible)
    assert gpus.read_inventory().gpus == ()
    with pytest.raises(UserError, match="twice"):
        gpus.require_inventory()


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("-1", []),
        ("0,-1,1", [0]),
        ("0,,1", [0]),
        (" 1 , 0", [1, 0]),
        ("1gpu,0", [1, 0]),
        ("GPU-1aaa,0", [1]),
        ("0,GPU-1aaa", [0]),
        ("2,1", []),
    ],
)
def test_cuda_visible_devices_parsing_stops_where_cuda_does(fake, monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert [g.index for g in gpus.read_inventory().gpus] == expected

"""`vllm-launch gpus`: the GPUs vLLM would see, or the presets for planning without one."""

from __future__ import annotations

import json

from launcher.gpus import require_inventory
from launcher.hardware import GPU_PRESETS, GiB
from launcher.settings import GpusSettings


def run(s: GpusSettings) -> int:
    if s.presets:
        if s.json_output:
            print(json.dumps({k: {"total_bytes": int(p.total_gib * GiB), "source": p.source} for k, p in GPU_PRESETS.items()}, indent=2))
        else:
            for name, preset in GPU_PRESETS.items():
                print(f"{name:<12} {preset.total_gib:7.2f} GiB   {preset.source}")
        return 0
    inv = require_inventory()
    if s.json_output:
        print(
            json.dumps(
                {
                    "source": inv.source,
                    "gpus": [
                        {
                            "index": g.index,
                            "name": g.name,
                            "uuid": g.uuid,
                            "total_bytes": g.total_bytes,
                            "reserved_bytes": g.reserved_bytes,
                            "used_bytes": g.used_bytes,
                            "free_bytes": g.nvml_free_bytes if g.nvml_free_bytes is not None else g.free_bytes,
                            "free_for_vllm_bytes": g.free_bytes,
                            "processes": [{"pid": p.pid, "name": p.name, "used_bytes": p.used_bytes} for p in g.processes],
                        }
                        for g in inv.gpus
                    ],
                },
                indent=2,
            )
        )
        return 0
    for g in inv.gpus:
        print(
            f"GPU {g.index}: {g.name} ({g.uuid})  total {g.total_bytes / GiB:.2f} GiB (as CUDA reports it; "
            f"{g.reserved_bytes / GiB:.2f} GiB reserved by the driver), "
            f"used {g.used_bytes / GiB:.2f} GiB, free {(g.nvml_free_bytes or g.free_bytes) / GiB:.2f} GiB "
            f"({g.free_bytes / GiB:.2f} GiB once vLLM's CUDA context exists)"
        )
        for p in g.processes:
            print(f"    pid {p.pid} {p.name or '?'}: {p.used_bytes / GiB:.2f} GiB")
    return 0

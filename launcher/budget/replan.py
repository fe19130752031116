"""Adapter for `explain --model`: memory answers re-planned through the sizing engine, and who holds the local GPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from launcher.hardware import GpuProcess

if TYPE_CHECKING:
    from launcher.budget.explain import Replan
    from launcher.settings import ExplainSettings
    from launcher.sizing.plan import Plan


def replanner(s: ExplainSettings) -> Replan | None:
    """A callback that plans the user's model at the failing length / utilization / parallelism (None without --model)."""
    if not s.model:
        return None

    def replan(
        max_model_len: int | None = None, gpu_memory_utilization: float | None = None, tensor_parallel_size: int | None = None
    ) -> Plan:
        from launcher.commands.plan import build_plan
        from launcher.settings import PlanSettings

        length = max_model_len or s.max_model_len
        if length is None:
            raise ValueError("the text shows no max_model_len: pass --max-model-len to re-plan")
        settings = PlanSettings(
            model=s.model,
            max_model_len=length,
            gpu=s.gpu,
            gpus=s.gpus,
            tensor_parallel_size=tensor_parallel_size or s.tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization or s.gpu_memory_utilization,
        )
        return build_plan(settings)

    return replan


def local_gpu_processes() -> tuple[GpuProcess, ...]:
    """The processes holding memory on this machine's GPUs (NVML), largest first; none without NVML."""
    from launcher import gpus

    try:
        inventory = gpus.read_inventory()
    except gpus.NvmlUnavailable:
        return ()
    return tuple(sorted((p for g in inventory.gpus for p in g.processes), key=lambda p: -p.used_bytes))

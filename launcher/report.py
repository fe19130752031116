"""A plan as the stable JSON object tools depend on, and as a readable report."""

from __future__ import annotations

import shlex
from typing import Any

from launcher import __version__
from launcher.hardware import GiB
from launcher.sizing.layouts import Layout, best_per_gpu_count
from launcher.sizing.plan import Plan


def plan_json(plan: Plan) -> dict[str, Any]:
    """Keys up to `vllm_args` are the documented contract; keep their names and meanings stable."""
    m = plan.memory
    return {
        "max_model_len": plan.max_model_len,
        "fits": plan.fits,
        "kv_cache_memory_bytes": m.kv_available,
        "kv_cache_tokens": plan.kv_cache_tokens,
        "max_concurrency": round(plan.max_concurrency, 4),
        "num_gpu_blocks": plan.num_gpu_blocks,
        "block_size": plan.block_size,
        "weights_bytes": m.weights,
        "estimated_max_model_len": plan.estimated_max_model_len,
        "tensor_parallel_size": plan.tensor_parallel_size,
        "pipeline_parallel_size": plan.pipeline_parallel_size,
        "data_parallel_size": plan.data_parallel_size,
        "vllm_args": list(plan.vllm_args),
        "env": dict(plan.env),
        "working_command": list(plan.working_command) if plan.working_command else None,
        "working_changes": list(plan.working_changes),
        "max_model_len_source": plan.length_source,
        "model": plan.model,
        "vllm_version": plan.vllm_version,
        "device": plan.device,
        "gpu": {
            "name": plan.gpu_name,
            "count": plan.gpus_available,
            "total_bytes": plan.total_memory_bytes,
            "free_bytes": plan.free_memory_bytes,
            "indices": list(plan.gpu_indices),
            "holders": [{"pid": p.pid, "name": p.name, "used_bytes": p.used_bytes} for p in plan.holders],
        },
        "context_limit": {
            "derived_max_model_len": plan.context.derived,
            "key": plan.context.key,
            "default_max_model_len": plan.context.default,
        },
        "memory": {
            "gpu_memory_utilization": plan.gpu_memory_utilization,
            "requested_bytes": m.requested,
            "weights_bytes": m.weights,
            "non_torch_bytes": m.non_torch,
            "activation_peak_bytes": m.activation,
            "cudagraph_bytes": m.cudagraph,
            "kv_cache_memory_bytes": m.kv_available,
            "explicit_kv_cache_memory": m.explicit_kv,
            "tightest_pipeline_stage": m.stage,
        },
        "kv": {
            "kv_cache_dtype": plan.kv_cache_dtype,
            "bytes_per_token": plan.kv_bytes_per_token,
            "bytes_per_block": plan.bytes_per_block,
            "groups": plan.num_kv_groups,
            "blocks_per_request": plan.blocks_per_request,
            "inflight_tokens": plan.inflight_tokens,
        },
        "max_num_batched_tokens": plan.max_num_batched_tokens,
        "max_num_seqs": plan.max_num_seqs,
        "problems": list(plan.problems),
        "kv_spec_verified": not plan.unverified,
        "kv_spec_unverified": list(plan.unverified),
        "remedies": [{"title": r.title, "detail": r.detail, "vllm_args": list(r.vllm_args), "env": dict(r.env)} for r in plan.remedies],
        "notes": list(plan.notes),
        "weights_source": plan.weights_source,
        "facts_source": plan.facts_source,
        "enable_expert_parallel": plan.enable_expert_parallel,
        "total_concurrency": round(plan.total_concurrency, 4),
        "layout_reason": plan.layout_reason,
        "layouts": [layout_json(row) for row in plan.layouts],
    }


def layout_json(row: Layout) -> dict[str, Any]:
    """One ranked layout; documented in the README next to the plan contract (keep names and meanings stable).
    KV tokens and max_concurrency are per replica, memory per GPU; total_concurrency counts every replica."""
    p = row.plan
    return {
        "gpu": p.gpu_name,
        "gpus": row.gpus,
        "tensor_parallel_size": p.tensor_parallel_size,
        "pipeline_parallel_size": p.pipeline_parallel_size,
        "data_parallel_size": p.data_parallel_size,
        "enable_expert_parallel": p.enable_expert_parallel,
        "max_model_len": p.max_model_len,
        "kv_cache_tokens": p.kv_cache_tokens,
        "max_concurrency": round(p.max_concurrency, 4),
        "total_concurrency": round(p.total_concurrency, 4),
        "fits": p.fits,
        "recommended": row.recommended,
        "gpu_memory_bytes": p.total_memory_bytes,
        "weights_bytes": p.memory.weights,
        "kv_cache_memory_bytes": p.memory.kv_available,
        "headroom_bytes": row.headroom_bytes,
        "problems": list(p.problems),
    }


def layout_tables(plan: Plan) -> dict[str, Any]:
    """What the text report shows of the ranking: per GPU type, its recommended (or closest) layout; for one type, the
    best layout for each number of GPUs."""
    by_type: dict[str, list[Layout]] = {}
    for row in plan.layouts:
        by_type.setdefault(row.plan.gpu_name, []).append(row)
    rent = []
    for name, rows in by_type.items():
        chosen = next((r for r in rows if r.recommended), None)
        closest = max(rows, key=lambda r: (r.plan.total_concurrency, r.plan.memory.kv_available)) if rows else None
        rent.append({"gpu": name, "row": chosen, "closest": closest, "up_to": max((r.gpus for r in rows), default=0)})
    per_count = best_per_gpu_count(next(iter(by_type.values()))) if len(by_type) == 1 else []
    return {"rent": rent if len(by_type) > 1 else [], "per_count": per_count, "count": len(plan.layouts)}


def shell_command(plan: Plan, argv: list[str] | None = None) -> str:
    """The command as a shell line, with the plan's environment in front (argv defaults to `vllm serve ARGS`)."""
    assignments = [f"{k}={shlex.quote(v)}" for k, v in plan.env]  # quoted value, bare name: still an assignment
    return " ".join([*assignments, shlex.join(argv or ["vllm", "serve", *plan.vllm_args])])


def plan_text(plan: Plan, argv: list[str] | None = None) -> str:
    """The readable report; its last section is the command (`argv` when given: the exact one serve runs)."""
    from launcher.render import render  # jinja2: only when text is wanted (--json stays lighter)

    return render("plan.txt.j2", plan=plan, m=plan.memory, GiB=GiB, command=shell_command(plan, argv), layouts=layout_tables(plan))


def vllm_config_yaml(plan: Plan) -> str:
    from launcher.render import args_to_options, render

    return render("vllm-config.yaml.j2", plan=plan, options=args_to_options(plan.vllm_args), env=list(plan.env), version=__version__)

"""Layouts: every tensor x pipeline x data parallel split of some GPUs, each planned by the engine, ranked.

A layout is TP x PP x DP: DP replicas of a TP x PP engine, each replica with its own KV cache (vLLM runs one engine core
per DP rank; non-MoE ranks are completely independent, vllm 0.32 v1/engine/core.py `run_engine_core`). Each candidate
is one `assess()` (or, with `--max-model-len auto`, the length `fit.resolve_auto` finds for it): the layout
search adds no sizing arithmetic of its own. Pure functions, no I/O.

The recommendation is the layout that holds `min_concurrency` full-length requests at once (over all replicas) with
the fewest GPUs, then without pipeline stages where that fits, then the most requests at once; with
`--max-model-len auto`, the longest length first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from launcher.hardware import GpuInventory
from launcher.model.spec import ModelSpec
from launcher.sizing import fit
from launcher.sizing.plan import AUTO, Plan, PlanError, Requirements, assess, check_parallelism, make_plan


@dataclass(frozen=True)
class Fixed:
    """The layout sizes the user set explicitly (None: the search chooses). They are kept, never replaced."""

    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    data_parallel_size: int | None = None
    enable_expert_parallel: bool | None = None

    @property
    def everything(self) -> bool:
        return None not in (self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size)

    def admits(self, tp: int, pp: int, dp: int) -> bool:
        return all(want in (None, got) for want, got in zip(self.sizes(), (tp, pp, dp), strict=True))

    def sizes(self) -> tuple[int | None, int | None, int | None]:
        return self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size


@dataclass(frozen=True)
class Layout:
    """One layout's plan (per-rank and per-replica numbers) with what it gives in total."""

    plan: Plan
    headroom_bytes: int  # KV memory per GPU beyond what `min_concurrency` requests need (negative: short of it)
    recommended: bool = False

    @property
    def gpus(self) -> int:
        return self.plan.tensor_parallel_size * self.plan.pipeline_parallel_size * self.plan.data_parallel_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.plan.tensor_parallel_size, self.plan.pipeline_parallel_size, self.plan.data_parallel_size

    @property
    def fits(self) -> bool:
        return self.plan.fits

    @property
    def name(self) -> str:
        tp, pp, dp = self.shape
        return f"TP {tp} x PP {pp} x DP {dp}" + (" + EP" if self.plan.enable_expert_parallel else "")


def shapes(spec: ModelSpec, inv: GpuInventory) -> list[tuple[int, int, int]]:
    """Every TP x PP x DP on at most `inv.count` GPUs that vLLM accepts for this model (heads split evenly over TP or
    KV heads replicated, at least one layer per pipeline stage)."""
    out = []
    n = inv.count
    for tp in range(1, n + 1):
        for pp in range(1, n // tp + 1):
            if check_parallelism(spec, tp, pp, inv):
                continue
            out += [(tp, pp, dp) for dp in range(1, n // (tp * pp) + 1)]
    return out


def expert_parallel_for(spec: ModelSpec, dp: int, fixed: Fixed) -> bool:
    """Expert parallelism for MoE models with data parallelism, as vLLM's docs advise ("EP is typically coupled with DP",
    docs.vllm.ai/en/latest/serving/expert_parallel_deployment/); the user's own choice wins."""
    if fixed.enable_expert_parallel is not None:
        return fixed.enable_expert_parallel
    return spec.is_moe and dp > 1


def evaluate(spec: ModelSpec, inv: GpuInventory, req: Requirements, shape: tuple[int, int, int], ep: bool, exact: bool) -> Layout:
    """The engine's plan for one layout. `exact`: plan on exactly the layout's GPUs (what to rent), not all of `inv`."""
    tp, pp, dp = shape
    trial = replace(req, tensor_parallel_size=tp, pipeline_parallel_size=pp, data_parallel_size=dp, enable_expert_parallel=ep)
    gpus = replace(inv, gpus=inv.gpus[: tp * pp * dp]) if exact else inv
    if req.max_model_len == AUTO:
        trial = replace(trial, max_model_len=fit.resolve_auto(spec, gpus, trial).length)
    plan = assess(spec, gpus, trial)
    per_replica = req.min_concurrency / dp
    headroom = int((plan.max_concurrency - per_replica) * plan.blocks_per_request * plan.bytes_per_block)
    return Layout(plan, headroom)


def rank_key(layout: Layout, auto: bool) -> tuple:
    """Fitting first; the fewest GPUs (with auto: the longest length first); then no pipeline stages when a layout
    without them fits on as many GPUs, since pipeline stages on one node only add per-token latency (vLLM's advice: TP
    within a node, PP across nodes, docs.vllm.ai/en/v0.8.3/serving/distributed_serving.html); then the most requests at
    once; then fewer ranks per replica."""
    tp, pp, _ = layout.shape
    plan = layout.plan
    if not layout.fits:
        return (1, -plan.total_concurrency, layout.gpus, tp * pp)
    length = -plan.max_model_len if auto else 0
    return (0, length, layout.gpus, pp > 1, -plan.total_concurrency, tp * pp)


def search(spec: ModelSpec, inv: GpuInventory, req: Requirements, fixed: Fixed, exact: bool = False) -> list[Layout]:
    """Every valid layout on up to `inv.count` GPUs, best first; `recommended` marks the best fitting one that keeps
    what the user set (none when nothing fits). Layouts other than the user's sizes are listed too: what they would give."""
    auto = req.max_model_len == AUTO
    rows = []
    for shape in shapes(spec, inv):
        try:
            rows.append(evaluate(spec, inv, req, shape, expert_parallel_for(spec, shape[2], fixed), exact))
        except PlanError:
            continue
    rows.sort(key=lambda row: rank_key(row, auto))
    best = next((row for row in rows if row.fits and fixed.admits(*row.shape)), None)
    return [replace(row, recommended=True) if row is best else row for row in rows]


def recommended(rows: list[Layout]) -> Layout | None:
    return next((row for row in rows if row.recommended), None)


def best_per_gpu_count(rows: list[Layout]) -> list[Layout]:
    """The best layout for each number of GPUs (rows are ranked, fitting ones first): what each extra GPU buys."""
    seen: dict[int, Layout] = {}
    for row in rows:
        seen.setdefault(row.gpus, row)
    return [seen[n] for n in sorted(seen)]


def reason(chosen: Layout, rows: list[Layout], req: Requirements, fixed: Fixed, total_gpus: int, renting: bool = False) -> str:
    """Why this layout, in one sentence, with what the whole GPU set would give instead (not when renting: fewer is the point)."""
    plan = chosen.plan
    where = f"{chosen.gpus} of {total_gpus} x {plan.gpu_name}" if total_gpus != chosen.gpus else f"{chosen.gpus} x {plan.gpu_name}"
    at_once = f"{plan.total_concurrency:.2f} full-length requests at once"
    if req.max_model_len == AUTO:
        why = f"the longest context ({plan.max_model_len:,} tokens) holding {req.min_concurrency:g} request(s) at once, on the fewest GPUs"
    else:
        why = f"the fewest GPUs holding --min-concurrency {req.min_concurrency:g} ({at_once})"
        peers = [r for r in rows if r.fits and r.gpus == chosen.gpus and r is not chosen]
        if chosen.shape[1] == 1 and any(r.shape[1] > 1 and r.plan.total_concurrency > plan.total_concurrency for r in peers):
            why += ", without pipeline stages (TP within a node, as vLLM advises; PP would add per-token latency)"
        elif peers:
            why += f", then the most at once of the {chosen.gpus}-GPU layouts"
    kept = [f"{flag} {value}" for flag, value in zip(("TP", "PP", "DP"), fixed.sizes(), strict=True) if value is not None]
    text = f"layout {chosen.name} on {where}: {why}" + (f" (keeping your {', '.join(kept)})" if kept else "")
    most = max((r for r in rows if r.fits), key=lambda r: (r.plan.total_concurrency, -r.gpus), default=None)
    if not renting and most is not None and most.shape != chosen.shape and most.plan.total_concurrency > plan.total_concurrency:
        text += f"; the most at once: {most.name} on {most.gpus} GPUs, {most.plan.total_concurrency:.2f}"
        if req.max_model_len != AUTO:
            text += f" (ask for it with --min-concurrency {int(most.plan.total_concurrency)})"
    return text


def alternative_note(chosen: Plan, rows: list[Layout]) -> str | None:
    """The user set the layout: what other layouts on the same GPUs would give (fewer GPUs, or more at once)."""
    shape = (chosen.tensor_parallel_size, chosen.pipeline_parallel_size, chosen.data_parallel_size)
    used = shape[0] * shape[1] * shape[2]
    fitting = [row for row in rows if row.fits and row.shape != shape]
    parts = []
    fewest = fitting[0] if fitting and fitting[0].gpus < used else None  # rows are ranked: fewest GPUs first
    if fewest is not None:
        parts.append(f"{fewest.name} needs only {fewest.gpus} GPU(s) ({fewest.plan.total_concurrency:.2f} at once)")
    most = max(fitting, key=lambda r: (r.plan.total_concurrency, -r.gpus), default=None)
    if most is not None and most.plan.total_concurrency > chosen.total_concurrency and most is not fewest:
        parts.append(f"{most.name} holds {most.plan.total_concurrency:.2f} at once on {most.gpus} GPUs")
    if not parts:
        return None
    return (
        f"other layouts on these GPUs: {'; '.join(parts)} (yours: {chosen.total_concurrency:.2f} full-length requests at once "
        f"on {used} GPUs); leave the parallel sizes out to let vllm-launch choose"
    )


def plan_with_layouts(spec: ModelSpec, inventories: list[GpuInventory], req: Requirements, fixed: Fixed, exact: bool) -> Plan:
    """Rank every layout on each GPU type, plan the chosen one (with remedies when it does not fit), attach the ranking.

    `req` carries the user's sizes (1 where not set). The choice: each type's recommended layout; of those, the fewest
    GPUs (with --max-model-len auto: the longest length first), then the order the types were given in. `exact` plans
    on exactly the chosen layout's GPUs (what to rent) instead of all of them. When nothing fits, the plan is the
    request as given, on the first type, with its remedies and a note on the closest layout."""
    auto = req.max_model_len == AUTO
    ranked = [(inv, search(spec, inv, req, fixed, exact)) for inv in inventories]
    every = tuple(row for _, rows in ranked for row in rows)
    picks = [(inv, rows, best) for inv, rows in ranked if (best := recommended(rows)) is not None]
    if not picks:
        inv = inventories[0]
        used = req.tensor_parallel_size * req.pipeline_parallel_size * req.data_parallel_size
        plan = make_plan(spec, replace(inv, gpus=inv.gpus[:used]) if exact else inv, req)
        kinds = " or ".join(dict.fromkeys(i.name for i in inventories))
        note = f"no layout of up to {max(i.count for i in inventories)} x {kinds} fits this request"
        closest = max(every, key=lambda r: (r.plan.total_concurrency, r.plan.memory.kv_available), default=None)
        if closest is not None:
            where = f"{closest.gpus} x {closest.plan.gpu_name}"
            note += f"; the closest, {closest.name} on {where}, holds {closest.plan.total_concurrency:.2f} at once"
        return replace(plan, layouts=every, notes=(*plan.notes, note))
    inv, rows, best = min(picks, key=lambda pick: (-pick[2].plan.max_model_len if auto else 0, pick[2].gpus))
    tp, pp, dp = best.shape
    chosen = replace(
        req,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        data_parallel_size=dp,
        enable_expert_parallel=best.plan.enable_expert_parallel,
    )
    plan = make_plan(spec, replace(inv, gpus=inv.gpus[: best.gpus]) if exact else inv, chosen)
    if fixed.everything:
        note = alternative_note(plan, rows)
        return replace(plan, layouts=every, notes=(*plan.notes, note) if note else plan.notes)
    total = best.gpus if exact else inv.count
    return replace(plan, layouts=every, layout_reason=reason(best, rows, req, fixed, total, renting=exact))

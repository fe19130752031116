"""Accuracy of the sizing engine against real vLLM start-up logs (tests/data/observations.json).

Per log with a model config:
  1. KV tokens from the *logged* KV memory (the KV arithmetic alone): bar +-1%.
  2. KV tokens from the *whole* memory model (total GPU memory, utilization, the checkpoint's weights; every profiled
     term predicted): bars +-5% in all and +-1% in >= 90% of logs with a known vLLM release. Logs that state only
     the KV memory (no token count) are judged on the KV memory.
  3. Each profiled term the log states (peak activation, non-torch, CUDA-graph estimate) against its prediction.
The fitted constants of launcher/sizing/memory.py are then re-fitted leaving one source (LOSO) or one model (LOMO)
out at a time, and its logs are predicted from the others only: a constant no remaining log measures falls back to
what its mechanism gives without data, so a source that alone shows a behaviour is not predicted from itself.

Run: python benchmarks/accuracy.py   (add --csv for one machine-readable line per log)
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import startup_log  # noqa: E402

import launcher.sizing.plan as plan_module  # noqa: E402
from launcher.hardware import GiB, Gpu, GpuInventory, inventory_from_preset  # noqa: E402
from launcher.model.config import spec_from_config  # noqa: E402
from launcher.model.spec import ModelSpec  # noqa: E402
from launcher.sizing import memory, versions  # noqa: E402
from launcher.sizing.plan import Plan, PlanError, Requirements, make_plan, model_dtype, rope_cache_bytes  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "observations.json"
GPU_NAMES = [
    ("a100 40", "A100-40GB"),
    ("a100-sxm4-40", "A100-40GB"),
    ("a100 80", "A100-80GB"),
    ("a100", "A100-80GB"),
    ("h200", "H200"),
    ("h100", "H100-80GB"),
    ("l40s", "L40S"),
    ("4090", "RTX-4090"),
    ("3090", "RTX-3090"),
    ("a10g", "A10G"),
    (" l4", "L4"),
    ("v100", "V100"),
]


def version_of(text: str | None) -> str | None:
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", text or "")
    return match[1] if match else None


def family(spec: ModelSpec) -> str:
    kinds = {layer.kind for layer in spec.layers}
    if spec.moe:
        return "MoE"
    if "mamba" in kinds:
        return "Mamba hybrid"
    if kinds & {"sliding", "chunked"}:
        return "sliding-window hybrid"
    if spec.quantization:
        return "quantized"
    if spec.multimodal:
        return "multimodal"
    return "dense"


def inventory_for(obs: dict) -> GpuInventory | None:
    count = max(obs["gpu_count"] or 1, (obs["tensor_parallel_size"] or 1) * (obs["pipeline_parallel_size"] or 1))
    name = (obs["gpu_type"] or "").lower()
    preset = next((p for k, p in GPU_NAMES if k in name), None)
    if obs["total_gpu_memory_gib"]:
        total = int(obs["total_gpu_memory_gib"] * GiB)
        return GpuInventory(tuple(Gpu(i, preset or name, total, total) for i in range(count)), "log")
    return inventory_from_preset(preset, count) if preset else None


@dataclass
class Row:
    obs: dict
    spec: ModelSpec
    release: str | None
    family: str
    weights_basis: str
    facts: startup_log.LogFacts
    from_avail: float | None = None  # relative error, KV tokens from the logged KV memory
    whole: float | None = None  # relative error, whole memory model
    whole_kind: str = ""  # "tokens" or "KV GiB"
    memory: float | None = None  # relative error of the predicted KV memory (GiB) against the logged one
    terms: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (logged GiB, predicted GiB)
    plan: Plan | None = None


def requirements(obs: dict, facts: startup_log.LogFacts, **extra) -> Requirements:
    args = facts.args
    kv = obs["kv_cache_dtype"] if obs["kv_cache_dtype"] and obs["kv_cache_dtype"].startswith("fp8") else "auto"
    dtype = obs["dtype"] if obs["dtype"] in ("float16", "float32") else "auto"
    return Requirements(
        max_model_len=obs["max_concurrency_tokens"] or obs["max_model_len"],
        gpu_memory_utilization=obs["gpu_memory_utilization"],
        tensor_parallel_size=obs["tensor_parallel_size"] or 1,
        pipeline_parallel_size=obs["pipeline_parallel_size"] or 1,
        dtype=dtype,
        kv_cache_dtype=kv,
        block_size=args.get("block_size"),
        max_num_batched_tokens=batched_tokens(obs, facts),
        max_num_seqs=args.get("max_num_seqs"),
        enforce_eager=bool(args.get("enforce_eager")),
        vllm_version=version_of(obs["vllm_version"]),
        allow_long_max_model_len=True,
        **extra,
    )


def batched_tokens(obs: dict, facts: startup_log.LogFacts) -> int | None:
    """The profile's token budget as the run set it. Logged where chunked prefill is on; with it off (a V0 choice
    the plan's inputs do not carry) vLLM batches max(max_model_len, 2048) tokens (config.py SchedulerConfig)."""
    if facts.args.get("max_num_batched_tokens") or obs["max_num_batched_tokens"]:
        return facts.args.get("max_num_batched_tokens") or obs["max_num_batched_tokens"]
    if facts.engine.get("chunked_prefill_enabled") == "False" and obs["max_model_len"]:
        return max(obs["max_model_len"], 2048)
    return None


def same_model(a: dict, b: dict) -> bool:
    return a["model"] == b["model"] and a["dtype"] == b["dtype"] and a["quantization"] == b["quantization"]


def checkpoint(obs: dict, spec: ModelSpec, observations: list[dict]) -> tuple[int | None, str]:
    """The checkpoint's bytes as vLLM loads them: the TP=1 log's "Model loading took" less the rotary cache it
    includes, else this run's per-rank load times TP (PP runs only occur for models with a TP=1 log)."""
    rope = rope_cache_bytes(spec, model_dtype(spec, obs["dtype"] if obs["dtype"] in ("float16", "float32") else "auto"))
    single = [
        o
        for o in observations
        if same_model(o, obs) and o["weights_gib"] and (o["tensor_parallel_size"] or 1) * (o["pipeline_parallel_size"] or 1) == 1
    ]
    if single:
        return int(single[0]["weights_gib"] * GiB) - rope, "TP=1 log"
    if obs["weights_gib"] and (obs["pipeline_parallel_size"] or 1) == 1:
        return (int(obs["weights_gib"] * GiB) - rope) * (obs["tensor_parallel_size"] or 1), "rank log x TP"
    return None, "none"


def stage_kv_logged(obs: dict, facts: startup_log.LogFacts) -> float | None:
    """The logged KV memory of the tightest worker (PP stages differ; the INFO line shows one of them)."""
    per_worker = [w.kv for w in facts.workers if w.kv is not None]
    if (obs["pipeline_parallel_size"] or 1) > 1 and per_worker:
        return min(per_worker)
    return obs["available_kv_cache_gib"]


def evaluate(obs: dict, observations: list[dict]) -> Row | None:
    if not obs["config"] or not (obs["kv_cache_tokens"] or obs["available_kv_cache_gib"]):
        return None
    facts = startup_log.parse(obs["raw_log_excerpt"] or "")
    probe = spec_from_config(obs["config"], obs["model"])
    weights, basis = checkpoint(obs, probe, observations)
    spec = spec_from_config(obs["config"], obs["model"], weights_bytes=weights, weights_source="log")
    inv = inventory_for(obs)
    row = Row(obs, spec, version_of(obs["vllm_version"]), family(spec), basis, facts)
    logged_tokens = obs["kv_cache_tokens"]
    kv_logged = stage_kv_logged(obs, facts)
    if inv is None:
        inv = inventory_from_preset("H100-80GB", max(1, (obs["tensor_parallel_size"] or 1) * (obs["pipeline_parallel_size"] or 1)))
    if kv_logged and logged_tokens:
        plan = make_plan(spec, inv, requirements(obs, facts, kv_cache_memory_bytes=int(kv_logged * GiB)))
        row.from_avail = (plan.kv_cache_tokens - logged_tokens) / logged_tokens
    if row.release and weights and obs["gpu_memory_utilization"] and inventory_for(obs):
        try:
            plan = make_plan(spec, inv, requirements(obs, facts))
        except PlanError:
            return row
        if logged_tokens:
            row.whole, row.whole_kind = (plan.kv_cache_tokens - logged_tokens) / logged_tokens, "tokens"
        else:
            row.whole, row.whole_kind = (plan.memory.kv_available / GiB - kv_logged) / kv_logged, "KV GiB"
        if kv_logged:
            row.memory = (plan.memory.kv_available / GiB - kv_logged) / kv_logged
        row.plan = plan
        record_terms(row, plan)
    return row


def record_terms(row: Row, plan: Plan) -> None:
    obs, m = row.obs, plan.memory
    first = plan_first_stage(row, plan)
    if obs["activation_peak_gib"] is not None:
        row.terms["activation"] = (obs["activation_peak_gib"], first.activation / GiB)
    if obs["non_torch_gib"] is not None:
        row.terms["non-torch"] = (obs["non_torch_gib"], m.non_torch / GiB)
    if obs["weights_gib"] is not None:
        row.terms["weights"] = (obs["weights_gib"], first.weights / GiB)
    if obs["cudagraph_estimated_gib"] is not None:
        layers = len(row.spec.layers) // plan.pipeline_parallel_size
        estimate = memory.cudagraph_bytes(row.spec.is_moe, layers, plan.max_num_seqs, True) / GiB
        row.terms["cudagraph estimate"] = (obs["cudagraph_estimated_gib"], estimate)


def plan_first_stage(row: Row, plan: Plan) -> memory.StageMemory:
    """The logged profile terms are the first printed worker's: stage 0 under PP."""
    if plan.pipeline_parallel_size == 1:
        return plan.memory
    from launcher.sizing.plan import stage_budgets

    req = requirements(row.obs, row.facts)
    rules = versions.rules_for(req.vllm_version)
    dtype = model_dtype(row.spec, req.dtype)
    stages = stage_budgets(
        row.spec, inventory_for(row.obs), req, rules, plan.memory.requested, dtype, plan.max_num_batched_tokens, plan.max_num_seqs
    )
    return stages[0]


# --- held-out: re-fit memory.py's constants without one source -------------------------------------------------


@contextmanager
def calibrated(values: dict) -> Iterator[None]:
    """memory.py's fitted constants (and the per-release non-torch sizes of versions.py) replaced by `values`."""
    original = versions.rules_for

    def refit_rules(version: str | None) -> versions.VersionRules:
        rules = original(version)
        return replace(rules, non_torch_gib=values["NON_TORCH"].get(rules.non_torch_gib, values["NON_TORCH_ANY"]))

    with ExitStack() as stack:
        stack.enter_context(patch.object(memory, "PROFILE_RESIDUAL", values["PROFILE_RESIDUAL"]))
        stack.enter_context(patch.object(memory, "MULTIMODAL_EXTRA", values["MULTIMODAL_EXTRA"]))
        stack.enter_context(patch.dict(memory.SAMPLER_EXTRA_BYTES, {"sort": values["SORT_BYTES"]}))
        stack.enter_context(patch.object(memory, "NCCL_PROFILED", values["NCCL_PROFILED"]))
        stack.enter_context(patch.object(memory, "NCCL_PER_HIDDEN_4096", values["NCCL_PER_HIDDEN_4096"]))
        stack.enter_context(patch.object(plan_module, "rules_for", refit_rules))
        yield


def fit(rows: list[Row]) -> dict:
    """Each constant is the median of what the training logs imply for it (their logged term less the modelled
    rest). A constant no training log measures falls back to what its mechanism gives without data."""
    residual, mm, sort, nccl, non_torch = [], [], [], defaultdict(list), defaultdict(list)
    for row in rows:
        obs, rules = row.obs, versions.rules_for(version_of(row.obs["vllm_version"]))
        if "activation" not in row.terms or (obs["pipeline_parallel_size"] or 1) > 1:
            continue
        logged, predicted = row.terms["activation"]
        implied = logged - (predicted - memory.PROFILE_RESIDUAL / GiB)  # the residual this log implies
        if row.spec.multimodal:
            mm.append(implied - memory.PROFILE_RESIDUAL / GiB + memory.MULTIMODAL_EXTRA / GiB)
        elif rules.sampler == "sort":
            sampled = min(row.plan.max_num_seqs, row.plan.max_num_batched_tokens)
            extra = (logged - predicted) * GiB / (sampled * row.spec.vocab_size)
            sort.append(memory.SAMPLER_EXTRA_BYTES["sort"] + extra)
        else:
            residual.append(implied)
    for row in rows:
        obs = row.obs
        if "non-torch" not in row.terms:
            continue
        logged = row.terms["non-torch"][0]
        rules = versions.rules_for(version_of(obs["vllm_version"]))
        tp, pp = obs["tensor_parallel_size"] or 1, obs["pipeline_parallel_size"] or 1
        if tp > 1 and rules.profiles_tp_buffers and tp in memory.NCCL_PER_HIDDEN_4096:
            slope = memory.NCCL_PER_HIDDEN_4096[tp] / GiB * (row.spec.hidden_size - 4096) / 4096
            nccl[tp].append(logged - slope)
        elif tp == 1 and pp == 1:
            non_torch[rules.non_torch_gib].append(logged)
    any_non_torch = statistics.median(v for values in non_torch.values() for v in values)
    # Without a profiled TP log, nothing is known of the NCCL buffers: a TP rank is taken as a single GPU.
    no_nccl = {2: int(any_non_torch * GiB), 4: int(any_non_torch * GiB)}
    return {
        "PROFILE_RESIDUAL": int(statistics.median(residual) * GiB) if residual else 0,
        "MULTIMODAL_EXTRA": int(statistics.median(mm) * GiB) if mm else 0,
        # Without a measurement: the float32 copy, sorted values, int64 indices and the sort's double buffers.
        "SORT_BYTES": statistics.median(sort) if sort else 28.0,
        "NCCL_PROFILED": {**no_nccl, **{tp: int(statistics.median(v) * GiB) for tp, v in nccl.items()}},
        "NCCL_PER_HIDDEN_4096": memory.NCCL_PER_HIDDEN_4096 if nccl else {2: 0, 4: 0},
        "NON_TORCH": {era: statistics.median(v) for era, v in non_torch.items()},
        "NON_TORCH_ANY": any_non_torch,  # for a release whose non-torch size no training log shows
    }


# --- report ------------------------------------------------------------------------------------------------------


def share(errors: list[float], bar: float) -> str:
    ok = sum(abs(e) <= bar for e in errors)
    return f"{ok}/{len(errors)} ({100 * ok / len(errors):.0f}%)" if errors else "-"


def fmt(err: float | None) -> str:
    return f"{100 * err:+7.2f}" if err is not None else f"{'-':>7}"


def report(rows: list[Row], by_source: dict[str, float], by_model: dict[str, float]) -> None:
    head = f"{'id':<7} {'model':<36} {'release':<9} {'family':<22} {'gpu':<10} {'tp/pp':<5} {'logged':>10}"
    print(f"{head} {'avail%':>7} {'whole%':>7} {'mem%':>7} {'LOSO%':>7} {'LOMO%':>7}  terms logged/predicted GiB")
    for r in rows:
        o = r.obs
        logged = f"{o['kv_cache_tokens']:,}" if o["kv_cache_tokens"] else f"{o['available_kv_cache_gib']} GiB"
        gpu = (inventory_for(o).gpus[0].name if inventory_for(o) else "?")[:10]
        terms = " ".join(f"{k[:4]} {a:.2f}/{b:.2f}" for k, (a, b) in r.terms.items() if k != "weights")
        print(
            f"{o['id']:<7} {o['model'][:36]:<36} {r.release or '?':<9} {r.family[:22]:<22} {gpu:<10} "
            f"{o['tensor_parallel_size'] or 1}/{o['pipeline_parallel_size'] or 1:<3} {logged:>10} {fmt(r.from_avail)} {fmt(r.whole)} "
            f"{fmt(r.memory)} {fmt(by_source.get(o['id']))} {fmt(by_model.get(o['id']))}  {terms}"
        )
    avail = [r.from_avail for r in rows if r.from_avail is not None]
    whole = [r.whole for r in rows if r.whole is not None]
    print(
        f"\nLogs evaluated: {len(rows)} ({len({r.obs['source_group'] for r in rows})} sources, {len({model_key(r) for r in rows})} models)"
    )
    print(f"KV tokens from the logged KV memory within +-1%: {share(avail, 0.01)}")
    print(f"Whole memory model, logs with a known release: within +-5% {share(whole, 0.05)}, within +-1% {share(whole, 0.01)}")
    if whole:
        print(f"  median |error| {100 * statistics.median(abs(e) for e in whole):.2f}%")
    for name, held in (("one source", by_source), ("one model", by_model)):
        errors = list(held.values())
        print(f"Held out, constants re-fitted leaving {name} out: within +-5% {share(errors, 0.05)}, within +-1% {share(errors, 0.01)}")
    groupings = (("release", lambda r: r.release or "?"), ("family", lambda r: r.family), ("source", lambda r: r.obs["source_group"]))
    for title, key in groupings:
        print(f"\nBy {title}: n, from-avail +-1%, whole +-5%, whole +-1%, held out (source) +-1%, held out (model) +-1%")
        groups: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            groups[key(r)].append(r)
        for name in sorted(groups):
            g = groups[name]
            whole_g = [r.whole for r in g if r.whole is not None]
            cells = (
                share([r.from_avail for r in g if r.from_avail is not None], 0.01),
                share(whole_g, 0.05),
                share(whole_g, 0.01),
                share([by_source[r.obs["id"]] for r in g if r.obs["id"] in by_source], 0.01),
                share([by_model[r.obs["id"]] for r in g if r.obs["id"] in by_model], 0.01),
            )
            print(f"  {name:<40} {len(g):>3}" + "".join(f"  {c:>13}" for c in cells))
    for term in ("activation", "non-torch", "cudagraph estimate"):
        diffs = [b - a for r in rows if term in r.terms for a, b in [r.terms[term]]]
        if diffs:
            print(
                f"\n{term}: {len(diffs)} logs, median |predicted - logged| {statistics.median(abs(d) for d in diffs):.3f} GiB, "
                f"worst {max(diffs, key=abs):+.3f} GiB"
            )


def model_key(row: Row) -> str:
    """One model however its logs name it (local paths, quantized variants keep their own repository)."""
    return re.sub(r" \(.*", "", row.obs["model"]).lower()


def held_out(rows: list[Row], observations: list[dict], key: Callable[[Row], str]) -> dict[str, float]:
    """Whole-memory error of each log with the constants fitted on the logs of the other groups only."""
    out: dict[str, float] = {}
    for group in sorted({key(r) for r in rows}):
        with calibrated(fit([r for r in rows if key(r) != group])):
            for r in rows:
                if key(r) == group and r.whole is not None and (again := evaluate(r.obs, observations)) and again.whole is not None:
                    out[r.obs["id"]] = again.whole
    return out


def main() -> int:
    observations = json.loads(DATA.read_text())["observations"]
    rows = [row for obs in observations if (row := evaluate(obs, observations)) is not None]
    by_source = held_out(rows, observations, lambda r: r.obs["source_group"])
    by_model = held_out(rows, observations, model_key)
    report(rows, by_source, by_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())

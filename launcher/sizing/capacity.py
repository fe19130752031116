"""What a vLLM release makes of a KV layout and a KV budget: block count, the start-up fit check and its estimated
maximum length, the KV-size line and the maximum concurrency. Pure functions; every difference between releases
comes from `VersionRules` (launcher/sizing/versions.py cites the code behind each).

Eras, in short: V0 (0.6/0.7, and V0 fall-backs of 0.8-0.10) counts blocks of all attention layers and checks
`max_model_len <= blocks x block_size`; V1 groups layers (per worker before 0.11, per model after), sizes blocks by
the largest group, checks one full-length request against the budget (per-layer sums before 0.14, group sums
after, minus the null block from 0.29) and reports tokens as blocks per group x block size (before 0.20) or
concurrency x max_model_len.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from launcher.sizing import kv
from launcher.sizing.versions import VersionRules


@dataclass(frozen=True)
class Worker:
    """One pipeline stage's view (all its TP ranks are alike): its KV layers and its KV budget."""

    layers: frozenset[int]  # indices into the model's KV pages
    available: int  # bytes


@dataclass(frozen=True)
class Capacity:
    num_blocks: int  # after unifying over workers (what the block pool gets)
    bytes_per_block: int  # of the worker with the fewest blocks
    groups: tuple[kv.KVGroup, ...]  # as reported (the whole model's, or the first worker's before 0.11)
    blocks_per_request: int  # R(L), summed over groups (tokens / block size for the token-based formula)
    kv_tokens: int  # the "KV cache size: N tokens" figure
    max_concurrency: float
    fits: bool
    starved_worker: int | None  # a worker with no memory at all for the cache ("No available memory")
    needed_bytes: int  # one full-length request, as the release's check counts it (worst worker)
    usable_bytes: int  # what the check compares it with (worst worker)
    estimated_max_len: int | None  # vLLM's estimate when it does not fit


def evaluate(
    pages: list[kv.LayerPage],
    raw_pages: list[kv.LayerPage],
    workers: list[Worker],
    max_model_len: int,
    inflight: int,
    rules: VersionRules,
    engine: str,
) -> Capacity:
    """`pages`: the layout as grouped (after any promotion to full attention); `raw_pages`: each layer's own spec,
    which the pre-0.14 fit check sums."""
    if engine == "v0":
        return _v0(pages, workers, max_model_len, rules)
    if rules.grouping_scope == "model":
        model_groups = kv.kv_groups(pages, rules)
        per_worker = [model_groups] * len(workers)
    else:
        per_worker = [_local_groups(pages, w, rules) for w in workers]
        model_groups = per_worker[0]
    bpbs = [_bytes_per_block(groups, w, rules) for groups, w in zip(per_worker, workers, strict=True)]
    blocks = [w.available // bpb if bpb and w.available > 0 else 0 for w, bpb in zip(workers, bpbs, strict=True)]
    num_blocks = min(blocks)
    worst = blocks.index(num_blocks)

    # The start-up check, per worker (or the whole model against the smallest budget, 0.14-0.16).
    fits, starved, estimate = True, None, None
    needed_worst, usable_worst = 0, 0
    checks = _checks(pages, raw_pages, workers, per_worker, model_groups, bpbs, inflight, rules)
    for index, (usable, need) in enumerate(checks):
        needed = need(max_model_len)
        if index == 0 or usable - needed < usable_worst - needed_worst:
            needed_worst, usable_worst = needed, usable
        if usable <= 0:
            fits, starved, estimate = False, index, 0
            break
        if needed > usable:
            fits = False
            est = _largest_fitting(need, usable, max_model_len)
            estimate = est if estimate is None else min(estimate, est)

    reports = [_report(groups, n, max_model_len, inflight, rules) for groups, n in zip(per_worker, blocks, strict=True)]
    if rules.kv_report_per_worker:
        tokens = min(r[0] for r in reports)
        concurrency = min(r[1] for r in reports)
        request = reports[worst][2]
    else:
        tokens, concurrency, request = _report(per_worker[worst], num_blocks, max_model_len, inflight, rules)
    return Capacity(
        num_blocks=num_blocks,
        bytes_per_block=bpbs[worst],
        groups=tuple(model_groups),
        blocks_per_request=request,
        kv_tokens=tokens,
        max_concurrency=concurrency,
        fits=fits,
        starved_worker=starved,
        needed_bytes=needed_worst,
        usable_bytes=usable_worst,
        estimated_max_len=estimate,
    )


def _local_groups(pages: list[kv.LayerPage], worker: Worker, rules: VersionRules) -> list[kv.KVGroup]:
    """Before 0.11 each worker groups its own layers; indices stay the model's."""
    order = sorted(worker.layers)
    local = kv.kv_groups([pages[i] for i in order], rules)
    return [kv.KVGroup(g.spec, tuple(order[i] for i in g.layers)) for g in local]


def _bytes_per_block(groups: list[kv.KVGroup], worker: Worker, rules: VersionRules) -> int:
    layers = None if rules.grouping_scope == "worker" else worker.layers
    return kv.bytes_per_block(groups, layers)


def _report(groups: list[kv.KVGroup], num_blocks: int, length: int, inflight: int, rules: VersionRules) -> tuple[int, float, int]:
    """(KV tokens as logged, maximum concurrency, blocks per request) for one worker's groups."""
    block_size = min(g.spec.block_size for g in groups)
    if rules.concurrency_formula == "tokens_over_len":
        concurrency = num_blocks * block_size / length
        request = kv.cdiv(length, block_size)
    else:
        request = kv.request_blocks(groups, length, inflight)
        concurrency = num_blocks / request if request else 0.0
    blocks_per_group = rules.kv_tokens_report == "blocks_per_group"
    tokens = num_blocks // len(groups) * block_size if blocks_per_group else int(concurrency * length)
    return tokens, concurrency, request


Need = Callable[[int], int]


def _checks(
    pages: list[kv.LayerPage],
    raw_pages: list[kv.LayerPage],
    workers: list[Worker],
    per_worker: list[list[kv.KVGroup]],
    model_groups: list[kv.KVGroup],
    bpbs: list[int],
    inflight: int,
    rules: VersionRules,
) -> list[tuple[int, Need]]:
    """(usable bytes, bytes one request of length L needs) for every check the release makes."""
    if rules.fit_needed == "layer_sum":
        return [(w.available, _layer_sum(raw_pages, w.layers, inflight)) for w in workers]
    if rules.fit_scope == "model_min_worker":
        everything = frozenset(range(len(pages)))
        return [(min(w.available for w in workers), _group_need(model_groups, everything, inflight, rules))]
    out = []
    for groups, w, bpb in zip(per_worker, workers, bpbs, strict=True):
        usable = w.available - bpb if rules.fit_reserves_null_block else w.available
        out.append((usable, _group_need(groups, w.layers, inflight, rules)))
    return out


def _layer_sum(raw_pages: list[kv.LayerPage], layers: frozenset[int], inflight: int) -> Need:
    """0.8-0.13: every layer's own maximum (window-aware, no grouping or padding), summed."""
    mine = [raw_pages[i] for i in sorted(layers)]

    def need(length: int) -> int:
        return sum(kv.blocks_per_request(kv.KVGroup(p, (0,)), length, inflight) * p.page_bytes for p in mine)

    return need


def _group_need(groups: list[kv.KVGroup], layers: frozenset[int], inflight: int, rules: VersionRules) -> Need:
    """0.14+: group_size x page x blocks, of the first group only (0.14-0.18) or of every group (0.19+).
    A single group of uneven pages (UniformTypeKVCacheSpecs) sums its layers' own needs."""
    on_worker = [kv.KVGroup(g.spec, tuple(i for i in g.layers if i in layers)) for g in groups]
    group_size = max(len(g.layers) for g in on_worker)
    page = on_worker[0].spec.page_bytes
    counted = on_worker[:1] if rules.fit_needed == "first_group" else on_worker

    def need(length: int) -> int:
        return group_size * page * sum(kv.blocks_per_request(g, length, inflight) for g in counted)

    return need


def _largest_fitting(need: Need, usable: int, upper: int) -> int:
    """vLLM's estimate: binary search over [1, max_model_len] for the longest length whose need fits."""
    if need(1) > usable:
        return 0
    lo, hi, best = 1, upper, 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if need(mid) <= usable:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def _v0(pages: list[kv.LayerPage], workers: list[Worker], length: int, rules: VersionRules) -> Capacity:
    """V0 (worker.py determine_num_available_blocks, raise_if_cache_size_invalid; executor initialize_cache):
    blocks = available // (all attention layers' pages); fits iff max_model_len <= blocks x block_size (the blocks
    of one of the pp virtual engines from 0.8)."""
    bpbs = [sum(pages[i].page_bytes for i in w.layers if pages[i].kind != "mamba") for w in workers]  # states live elsewhere
    blocks = [max(w.available // bpb, 0) if bpb else 0 for w, bpb in zip(workers, bpbs, strict=True)]
    num_blocks = min(blocks)
    worst = blocks.index(num_blocks)
    attention = [i for i, p in enumerate(pages) if p.kind != "mamba"]
    block_size = pages[attention[0]].block_size
    capacity = num_blocks * block_size
    per_engine = (num_blocks // len(workers) if rules.v0_fit_divides_by_pp else num_blocks) * block_size
    group = kv.KVGroup(pages[attention[0]], tuple(attention))
    fits = num_blocks > 0 and length <= per_engine
    return Capacity(
        num_blocks=num_blocks,
        bytes_per_block=bpbs[worst],
        groups=(group,),
        blocks_per_request=kv.cdiv(length, block_size),
        kv_tokens=capacity,
        max_concurrency=capacity / length,
        fits=fits,
        starved_worker=worst if num_blocks <= 0 else None,
        needed_bytes=kv.cdiv(length, block_size) * bpbs[worst],
        usable_bytes=workers[worst].available,
        estimated_max_len=None if fits else per_engine,
    )

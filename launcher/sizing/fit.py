"""The longest max_model_len that fits: vLLM's `--max-model-len auto`, but for a target concurrency and a cap.

vLLM's own auto-fit sizes for about one request (vllm-project/vllm issues #19407, #41364); here the length is the
longest that still holds `min_concurrency` full-length requests, found by bisection over the engine's own plans
(KV fit and concurrency only shrink as the length grows)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from launcher.hardware import GpuInventory
from launcher.model.spec import ModelSpec
from launcher.sizing.context import derive_context_limit
from launcher.sizing.plan import Plan, Requirements, assess
from launcher.sizing.versions import VersionRules, rules_for


def length_ceiling(spec: ModelSpec, req: Requirements, rules: VersionRules) -> int:
    """The longest length auto may choose: the model's derived limit (or the cap past it with the long-length override)."""
    derived = derive_context_limit(spec.context, spec.model_type, rules).derived
    cap = req.max_model_len_cap
    if cap is not None and req.allow_long_max_model_len:
        return cap
    return min(derived, cap) if cap is not None else derived


def holds(plan: Plan, min_concurrency: float) -> bool:
    """The KV cache takes one full-length request (vLLM starts) and `min_concurrency` of them at once (over all
    data-parallel replicas)."""
    return plan.kv_fits and plan.total_concurrency >= min_concurrency


@dataclass(frozen=True)
class AutoLength:
    """What `--max-model-len auto` resolves to: the longest length that holds the concurrency asked for, or the ceiling
    (a plan that then says it does not fit) when no length does."""

    length: int
    ceiling: int
    holds: bool


def resolve_auto(spec: ModelSpec, inv: GpuInventory, req: Requirements) -> AutoLength:
    ceiling = length_ceiling(spec, req, rules_for(req.vllm_version))
    found = longest_length(spec, inv, req, ceiling)
    return AutoLength(found or ceiling, ceiling, found is not None)


def longest_length(spec: ModelSpec, inv: GpuInventory, req: Requirements, upper: int | None = None) -> int | None:
    """The largest length up to `upper` (default `length_ceiling`) that holds `req.min_concurrency` requests; None
    when not even 1 token does.

    Each probe is one engine plan. The ceiling is tried first (it often holds); otherwise the search starts where the
    ceiling's own concurrency points (requests at once fall about as the length grows), gallops to bracket the answer
    and bisects the bracket: about a dozen plans instead of log2(ceiling)."""
    upper = upper or length_ceiling(spec, req, rules_for(req.vllm_version))

    def at(length: int) -> Plan:
        return assess(spec, inv, replace(req, max_model_len=length))

    def ok(length: int) -> bool:
        return holds(at(length), req.min_concurrency)

    top = at(upper)
    if holds(top, req.min_concurrency):
        return upper
    if not ok(1):
        return None
    lo, hi = 1, upper  # ok(lo), not ok(hi)
    guess = min(upper - 1, max(2, int(upper * top.total_concurrency / req.min_concurrency)))
    step = max(1, guess // 512)
    if ok(guess):
        lo = guess
        while lo + step < hi:
            if not ok(lo + step):
                hi = lo + step
                break
            lo, step = lo + step, step * 4
    else:
        hi = guess
        while hi - step > lo:
            if ok(hi - step):
                lo = hi - step
                break
            hi, step = hi - step, step * 4
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo

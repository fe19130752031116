"""How well `explain` answers real vLLM errors that users posted (tests/data/error_corpus.json, with source URLs).

For every text: recognised (the right message kind), and "with remedy number": every number a correct answer must state
(the corpus's `expected`) is in the explanation's numbers AND printed in its text. The numbers the user knew (the
corpus's `context`: --max-tokens, --max-model-len, --prompt-tokens, --gpu-memory-utilization) are passed as flags,
as a user would. Prints recognised % and with-remedy-number %, by kind and by release, and the misses.

    .venv/bin/python benchmarks/explain_corpus.py [--verbose]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launcher.budget.explain import Explanation, explain  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "error_corpus.json"

# The corpus's kind names -> the catalog's kinds that are a correct recognition of them.
KINDS = {
    "context_exceeded_requested_total": {"requested_total"},
    "context_exceeded_requested_in_messages": {"requested_in_messages"},
    "context_exceeded_request_has_input_tokens": {"request_has"},
    "context_exceeded_output_plus_prompt_at_least": {"requested_output_and_prompt"},
    "context_exceeded_you_passed": {"passed_input_tokens"},
    "max_tokens_too_large_for_prompt": {"max_tokens_too_large"},
    "max_tokens_exceeds_max_model_len": {"max_tokens_over_len"},
    "max_tokens_must_be_at_least_1": {"max_tokens_zero"},
    "decoder_prompt_longer_than_max_model_len": {"decoder_prompt_too_long", "decoder_prompt_fills_len"},
    "prompt_length_exceeds_max_model_len_v1": {"decoder_prompt_too_long"},
    "prompt_too_long_total_length_multimodal": {"decoder_prompt_too_long"},
    "input_prompt_exceeds_limit_v0": {"v0_prompt_too_long"},
    "empty_prompt_after_truncation": {"empty_prompt"},
    "max_seq_len_exceeds_kv_cache_v0": {"kv_cache_too_small_v0", "gpu_blocks"},  # a log with only "# GPU blocks: N" counts
    "kv_cache_too_small_for_max_seq_len_v1": {"kv_cache_too_small"},
    "no_available_memory_for_cache_blocks": {"no_kv_memory"},
    "negative_available_kv_cache_memory": {"no_kv_memory", "kv_memory_available"},
    "gpu_blocks_zero_v0": {"no_kv_memory", "gpu_blocks"},
    "gpu_blocks_log_v0": {"gpu_blocks"},
    "free_memory_less_than_utilization": {"free_memory_below_budget"},
    "attention_heads_not_divisible_by_tp": {"heads_not_divisible_by_tp"},
    "user_max_model_len_exceeds_derived": {"max_len_over_derived"},
    "address_already_in_use": {"address_in_use", "port_in_use_by"},
    "cuda_out_of_memory": {"cuda_oom"},
    "failed_to_load_model_oom": {"load_oom"},
}
FLAGS = {"max_tokens": int, "max_model_len": int, "prompt_tokens": int, "gpu_memory_utilization": float}


def flags_for(entry: dict) -> dict:
    context = entry.get("context") or {}
    return {
        k: cast(context[k])
        for k, cast in FLAGS.items()
        if isinstance(context.get(k), (int, float)) and not isinstance(context.get(k), bool)
    }


def rendered(e: Explanation) -> str:
    """The text the CLI prints."""
    return "\n".join([e.what, e.why, *e.fixes, *e.notes])


def stated(value: object, text: str) -> bool:
    """Is this number printed (as an int with or without separators, or a float to 2 decimals)?"""
    if isinstance(value, list):
        return ", ".join(map(str, value)) in text
    if isinstance(value, str):
        return value in text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    forms = {f"{value:g}", f"{value:.2f}", f"{value:,}", f"{value:.2f}".rstrip("0").rstrip(".")}
    if float(value).is_integer():
        forms |= {str(int(value)), f"{int(value):,}"}
    return any(_token_in(form, text) for form in forms)


def _token_in(form: str, text: str) -> bool:
    start = text.find(form)
    while start != -1:
        before = text[start - 1] if start else " "
        after = text[start + len(form)] if start + len(form) < len(text) else " "
        if not (before.isdigit() or before == ".") and not (
            after.isdigit() or (after == "." and text[start + len(form) + 1 : start + len(form) + 2].isdigit())
        ):
            return True
        start = text.find(form, start + 1)
    return False


def same(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, abs_tol=0.011)
    return a == b


def judge(entry: dict) -> tuple[bool, bool, list[str], Explanation]:
    e = explain(entry["text"], **flags_for(entry))
    recognised = e.recognised and e.kind in KINDS.get(entry["kind"], {e.kind})
    text = rendered(e)
    misses = []
    for key, value in entry["expected"].items():
        if value is None:  # "no utilization works"
            if key not in e.numbers or e.numbers[key] is not None or "no utilization works" not in text:
                misses.append(f"{key}: expected 'no utilization works', got {e.numbers.get(key, '-')}")
            continue
        got = e.numbers.get(key)
        if got is None or not same(got, value):
            misses.append(f"{key}: expected {value}, got {got}")
        elif not stated(value, text):
            misses.append(f"{key}: {value} is right but not printed")
    return recognised, recognised and not misses, misses, e


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="print every explanation")
    args = parser.parse_args()
    entries = json.loads(CORPUS.read_text())["entries"]
    by: dict[str, dict[str, list[int]]] = {
        "family": defaultdict(lambda: [0, 0, 0, 0]),
        "kind": defaultdict(lambda: [0, 0, 0, 0]),
        "era": defaultdict(lambda: [0, 0, 0, 0]),
    }
    failures = []
    for entry in entries:
        recognised, answered, misses, e = judge(entry)
        wants_number = bool(entry["expected"])
        for table, key in (("family", entry["family"]), ("kind", entry["kind"]), ("era", entry.get("vllm_era") or "?")):
            row = by[table][key]
            row[0] += 1
            row[1] += recognised
            row[2] += wants_number and recognised
            row[3] += wants_number and answered
        if not recognised or misses:
            failures.append((entry["id"], entry["kind"], e.kind, misses))
        if args.verbose:
            print(f"--- {entry['id']} ({entry['kind']}) -> {e.kind}\n{rendered(e)}\n{e.numbers}\n")
    total = len(entries)
    rec = sum(r[1] for r in by["family"].values())
    want = sum(r[2] for r in by["family"].values())
    ok = sum(r[3] for r in by["family"].values())
    print(f"corpus: {total} real error texts ({CORPUS.name})")
    print(f"recognised: {rec}/{total} = {100 * rec / total:.1f}%")
    print(f"with remedy number (of recognised texts whose correct answer has numbers): {ok}/{want} = {100 * ok / max(want, 1):.1f}%")
    for table in ("family", "kind", "era"):
        print(f"\nby {table}:")
        print(f"  {'':48} {'texts':>5} {'recognised':>11} {'with number':>12}")
        for key, (n, r, w, a) in sorted(by[table].items()):
            number = f"{a}/{w}" if w else "-"
            print(f"  {key:48} {n:5} {100 * r / n:10.0f}% {number:>12}")
    if failures:
        print("\nmisses:")
        for id_, kind, got, misses in failures:
            print(f"  {id_} ({kind} -> {got}): {'; '.join(misses) or 'wrong kind'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`vllm-launch check`: does this request shape fit a running server; `--probe` sends one for real."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from launcher.budget.check import judge, probe, read_server
from launcher.settings import CheckSettings


def run(s: CheckSettings) -> int:
    key = os.environ.get(s.api_key_env)
    facts = read_server(s.url, s.model, key)
    verdict = judge(facts, s.prompt_tokens, s.max_tokens)
    result = {"server": asdict(facts), "prompt_tokens": s.prompt_tokens, "max_tokens": s.max_tokens, **asdict(verdict)}
    if s.probe:
        if not s.json_output:
            print(
                f"probe: sending one request of {s.prompt_tokens:,} prompt tokens that generates up to {s.max_tokens:,} tokens (ignore_eos)"
            )
        p = probe(facts, s.prompt_tokens, s.max_tokens, key)
        result["probe"] = asdict(p)
        result["probe_matches_prediction"] = p.status == verdict.expected_status and (
            verdict.expected_completion_tokens is None or p.completion_tokens == verdict.expected_completion_tokens
        )
    if s.json_output:
        print(json.dumps(result, indent=2))
    else:
        print(f"server {facts.url}: model {facts.model!r}, max_model_len {facts.max_model_len:,}, vLLM {facts.version or 'unknown'}")
        print(f"{verdict.outcome.upper()}: {verdict.detail}")
        if s.probe:
            p = result["probe"]
            print(
                f"probe: HTTP {p['status']}, finish_reason {p['finish_reason']}, prompt_tokens {p['prompt_tokens']}, "
                f"completion_tokens {p['completion_tokens']}" + (f", error: {p['error']}" if p["error"] else "")
            )
            if p["explanation"]:
                print(f"  which means: {p['explanation']}")
            print("probe matches the prediction" if result["probe_matches_prediction"] else "probe DIFFERS from the prediction")
    return 0 if verdict.outcome == "fits" else 1

"""The start-up log corpus (tests/data/observations.json): its schema, its sources, and that every number it stores
is the number its stored log lines say."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import startup_log  # noqa: E402

from launcher.model.config import spec_from_config  # noqa: E402

CORPUS = json.loads((Path(__file__).resolve().parent / "data" / "observations.json").read_text())
OBSERVATIONS = CORPUS["observations"]
SCHEMA = {
    "id", "source", "source_group", "vllm_version", "model", "dtype", "quantization", "kv_cache_dtype", "gpu_type", "gpu_count",
    "tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization", "max_model_len", "max_num_batched_tokens",
    "block_size", "total_gpu_memory_gib", "weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib",
    "cudagraph_estimated_gib", "cudagraph_actual_gib", "available_kv_cache_gib", "kv_cache_tokens", "num_gpu_blocks",
    "max_concurrency", "max_concurrency_tokens", "estimated_max_model_len", "outcome", "raw_log_excerpt", "config", "config_source",
}  # fmt: skip
# Numbers a log states, as the schema stores them.
LOGGED_NUMBERS = ("kv_cache_tokens", "available_kv_cache_gib", "weights_gib", "activation_peak_gib", "non_torch_gib", "max_concurrency")
# Entries whose excerpt is a summary table row or a parsed run record rather than log lines.
SUMMARY = re.compile(r"^\((summary table row|the sweep's run record)")


def ids(observations: list[dict]) -> list[str]:
    return [o["id"] for o in observations]


def test_every_observation_has_the_schema_and_a_unique_id():
    assert len(OBSERVATIONS) >= 76  # the 36 shared dev logs and the 40+ added from public sources
    assert len(set(ids(OBSERVATIONS))) == len(OBSERVATIONS)
    for obs in OBSERVATIONS:
        assert set(obs) == SCHEMA, obs["id"]


@pytest.mark.parametrize("obs", OBSERVATIONS, ids=ids(OBSERVATIONS))
def test_source_is_a_public_url_with_its_log_lines(obs):
    assert obs["source"].startswith("https://"), obs["source"]
    assert obs["source_group"] and obs["raw_log_excerpt"]
    assert obs["model"] and obs["outcome"]


@pytest.mark.parametrize("obs", [o for o in OBSERVATIONS if o["config"]], ids=ids([o for o in OBSERVATIONS if o["config"]]))
def test_config_has_sources_and_reads_as_a_model(obs):
    sources = obs["config_source"]["sources"]
    assert sources and all(isinstance(s, str) and len(s) > 20 for s in sources)
    spec = spec_from_config(obs["config"], obs["model"])
    assert spec.layers and spec.hidden_size and spec.vocab_size


def rendered(value: float | int) -> list[str]:
    """How a log may print the number: 1,505,552 or 1505552; 43.61, 43.6 or 43.610; GiB stored from "244.61 MB"."""
    if isinstance(value, int):
        return [f"{value:,}", str(value)]
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return [text, f"{value:.2f}", f"{value}", f"{value * 1024:.2f} MB"]


@pytest.mark.parametrize("obs", OBSERVATIONS, ids=ids(OBSERVATIONS))
def test_every_stored_number_appears_in_the_stored_log(obs):
    excerpt = obs["raw_log_excerpt"]
    blocks = startup_log.parse(excerpt).num_gpu_blocks
    for name in LOGGED_NUMBERS:
        value = obs[name]
        if value is None:
            continue
        if name == "kv_cache_tokens" and blocks and value == blocks * 16:
            continue  # V0 logs state blocks; tokens are blocks x the 16-token CUDA block
        assert any(text in excerpt for text in rendered(value)), f"{obs['id']}: {name}={value} is not in its log lines"


ADDED = [o for o in OBSERVATIONS if int(o["id"][3:]) > 200 and not SUMMARY.match(o["raw_log_excerpt"])]


@pytest.mark.parametrize("obs", ADDED, ids=ids(ADDED))
def test_added_observations_are_what_their_log_lines_parse_to(obs):
    facts = startup_log.parse(obs["raw_log_excerpt"])
    first = facts.workers[0] if facts.workers else startup_log.WorkerProfile()
    assert facts.version and facts.version in obs["vllm_version"]
    tokens = facts.kv_cache_tokens or (facts.num_gpu_blocks or 0) * 16  # V0 logs state blocks of 16 tokens
    assert (tokens, facts.available_kv_cache_gib, facts.weights_gib) == (
        obs["kv_cache_tokens"], obs["available_kv_cache_gib"], obs["weights_gib"],
    )  # fmt: skip
    assert (facts.max_concurrency, facts.max_concurrency_tokens) == (obs["max_concurrency"], obs["max_concurrency_tokens"])
    assert (first.activation, first.non_torch) == (obs["activation_peak_gib"], obs["non_torch_gib"])
    assert int(facts.args.get("tensor_parallel_size") or facts.engine.get("tensor_parallel_size", 1)) == obs["tensor_parallel_size"]
    assert facts.gpu_memory_utilization == obs["gpu_memory_utilization"]
    assert facts.max_num_batched_tokens == obs["max_num_batched_tokens"]

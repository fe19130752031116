"""The architecture cases of the differential: a real config.json, scaled down the same way everywhere.

A case file (tests/data/arch/<family>.json) holds the real config it was scaled from (`real`), where that config
comes from (`source`: the Hub page; `copy`: the public copy it was read from), the number of decoder layers to keep
(`layers`: enough for one period of the model's layer pattern), and the context lengths to size at (`lengths`).
`scaled()` keeps every attention field as it is (heads, head sizes, windows, layer types, state shapes) and shrinks
only what does not touch the KV cache (layers beyond the pattern, MLP widths, expert counts, vocabulary), so vLLM
builds the model in seconds on a CPU. Plain Python: it runs in the vLLM venv (the generator) and in the test suite.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "arch"
GOLDEN = CASES_DIR / "vllm_golden.json"

# Sizes that do not shape the KV cache, shrunk so that the model builds fast; the first value of each pair caps it.
SHRINK = {
    "intermediate_size": 256,
    "ffn_hidden_size": 256,
    "dense_intermediate_size": 256,
    "intermediate_size_mlp": 256,
    "moe_intermediate_size": 128,
    "shared_expert_intermediate_size": 128,
    "expert_intermediate_size": 128,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "moe_num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_topk": 2,
    "top_k_experts": 2,
    "n_shared_experts": 1,
    "num_shared_experts": 1,
    "first_k_dense_replace": 1,
    "n_group": 1,
    "topk_group": 1,
    "vocab_size": 512,
    "vocab_size_per_layer_input": 512,
    "max_position_embeddings": 32768,
}
# Per-layer lists and strings are cut to the kept layers; these keys hold layer numbers instead.
LAYER_INDEX_LISTS = ("full_attn_idxs", "hybrid_layer_ids", "attn_layer_indices", "mlp_only_layers")
TEXT_KEYS = ("text_config", "llm_config", "language_config")


def _cut(cfg: dict[str, Any], layers: int) -> None:
    total = next((cfg[k] for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers") if isinstance(cfg.get(k), int)), 0)
    total = total or len(cfg.get("layers_block_type") or cfg.get("hybrid_override_pattern") or "")
    for key, value in list(cfg.items()):
        if key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            cfg[key] = layers
        elif key in LAYER_INDEX_LISTS and isinstance(value, list):
            cfg[key] = [i for i in value if isinstance(i, int) and i < layers]
        elif key == "per_layer_config" and isinstance(value, dict):
            cfg[key] = {k: v for k, v in value.items() if int(k) < layers}
        elif isinstance(value, (list, str)) and total and len(value) == total and key != "architectures":
            cfg[key] = value[:layers]  # one entry per layer: layer_types, hybrid_override_pattern, no_rope_layers, ...
    for key, cap in SHRINK.items():
        value = cfg.get(key)
        if key.startswith("vocab_size") and isinstance(cfg.get("pad_token_id"), int):
            cap = max(cap, cfg["pad_token_id"] + 1)  # the embedding must hold the padding id
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            cfg[key] = cap
    if isinstance(cfg.get("num_experts_per_tok"), int):
        experts = next((cfg[k] for k in ("num_experts", "num_local_experts", "n_routed_experts") if isinstance(cfg.get(k), int)), None)
        if experts:
            cfg["num_experts_per_tok"] = min(cfg["num_experts_per_tok"], experts)


def scaled(real: dict[str, Any], layers: int, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The real config with `layers` decoder layers and small MLPs; attention fields untouched. `drop`: keys the CPU
    build cannot take (MXFP4 MoE weights) and the KV cache does not depend on."""
    cfg = copy.deepcopy(real)
    for key in drop:
        cfg.pop(key, None)
    inner = next((cfg[k] for k in TEXT_KEYS if isinstance(cfg.get(k), dict)), None)
    _cut(inner if inner is not None else cfg, layers)
    for key in ("vocab_size", "max_position_embeddings"):
        if inner is not None and isinstance(cfg.get(key), int):
            cfg[key] = min(cfg[key], SHRINK[key])
    return cfg


def load_cases() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        if path == GOLDEN:
            continue
        case = json.loads(path.read_text())
        case["family"] = path.stem
        case["config"] = scaled(case["real"], case["layers"], tuple(case.get("cpu_drop", ())))
        target = next((case["config"][k] for k in TEXT_KEYS if isinstance(case["config"].get(k), dict)), case["config"])
        target.update(case.get("set", {}))  # per-layer counts that must shrink with the layers (num_kv_shared_layers)
        cases.append(case)
    return cases

"""Turn a Hugging Face `config.json` (a dict) into a `ModelSpec`. Pure: no I/O.

The layers come from the architecture's row in `launcher.model.architectures` (one reading per vLLM 0.33 model
file); the context keys follow vLLM 0.33's `model_arch_config_convertor.py`, as summarised in the project's
memory-model notes. What the reader cannot vouch for is listed in `ModelSpec.unverified`.
"""

from __future__ import annotations

import math
from typing import Any

from launcher.errors import UserError
from launcher.model import architectures
from launcher.model.architectures import int_of, or_zero
from launcher.model.spec import (
    ContextFacts,
    LayerSpec,
    ModelSpec,
    MoeShape,
    RopeEntry,
    WeightFacts,
)

# Keys vLLM takes the minimum over (derive_max_model_len_and_key). GPT-2's n_positions included.
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1}

# Quantization methods -> bytes per quantized linear weight (scales included roughly), for estimates only.
QUANT_WEIGHT_BYTES = {
    "fp8": 1.0,
    "fbgemm_fp8": 1.0,
    "modelopt": 1.0,
    "compressed-tensors": 1.0,
    "awq": 0.5625,
    "gptq": 0.5625,
    "awq_marlin": 0.5625,
    "gptq_marlin": 0.5625,
    "bitsandbytes": 0.5625,
    "mxfp4": 0.53,
    "modelopt_fp4": 0.5625,
}


def _invalid(cfg: dict[str, Any], *keys: str) -> str | None:
    """The first of `keys` present with a value int_of refuses: reported as a bad value, not as a missing key."""
    return next((f"`{k}` is {cfg[k]!r}, not a positive whole number" for k in keys if cfg.get(k) is not None), None)


def rope_entries(cfg: dict[str, Any]) -> tuple[RopeEntry, ...]:
    """RoPE parameter sets, normalised the way vLLM does (type->rope_type, su->longrope, mrope->default)."""
    raw = cfg.get("rope_parameters")
    if raw is None:
        raw = cfg.get("rope_scaling")
    if not raw:
        return ()
    dicts = [raw] if "rope_type" in raw or "type" in raw or "factor" in raw else list(raw.values())
    out = []
    for d in dicts:
        if not isinstance(d, dict):
            continue
        kind = str(d.get("rope_type") or d.get("type") or "default")
        kind = {"su": "longrope", "mrope": "default", "telechat3-yarn": "yarn"}.get(kind, kind)
        factor = d.get("factor")
        ompe = d.get("original_max_position_embeddings") or cfg.get("original_max_position_embeddings")
        out.append(RopeEntry(kind, float(factor) if factor is not None else None, int(ompe) if ompe else None))
    return tuple(out)


def context_facts(cfg: dict[str, Any]) -> ContextFacts:
    lengths = {}
    for key in CONTEXT_KEYS:
        value = cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            lengths["max_position_embeddings" if key == "n_positions" else key] = float(value)
    mml = cfg.get("model_max_length")
    return ContextFacts(
        lengths=lengths,
        model_max_length=float(mml) if mml else None,
        rope=rope_entries(cfg),
        rope_theta=_rope_theta(cfg),
    )


def _rope_theta(cfg: dict[str, Any]) -> float | None:
    theta = cfg.get("rope_theta")
    params = cfg.get("rope_parameters")
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    return float(theta) if isinstance(theta, (int, float)) else None


def read_layers(config: dict[str, Any], cfg: dict[str, Any], name: str) -> tuple[tuple[LayerSpec, ...], str, list[str]]:
    """The layers as the architecture's row in `architectures.ARCHITECTURES` reads them, the row's name, and the
    reasons that reading may not be what vLLM allocates (empty when the config is fully understood)."""
    archs = config.get("architectures") or cfg.get("architectures") or []
    arch = str(archs[0]) if archs else ""
    reasons: list[str] = []
    if arch in architectures.NO_LONGER_SUPPORTED:
        reasons.append(f"vLLM 0.33 no longer serves {arch} (registry.py `_PREVIOUSLY_SUPPORTED_MODELS`)")
    row = architectures.find(arch)
    read = row.read if row is not None else None
    if row is None:
        reasons.append(f"architecture {arch or '(none given)'} is not in vLLM 0.33's registry as vllm-launch reads it")
    elif read is None:
        reasons.append(f"{arch} ({row.source}): {row.note}")
    else:
        reasons.extend(architectures.check_fields(cfg, row))
    if read is None:
        reasons[-1] += "; its KV cache was sized with vLLM's generic rules"
        read = architectures.generic
    try:
        layers = tuple(read(cfg))
    except architectures.UnreadableConfig as exc:
        basics = [
            key
            for key, value in (
                ("num_attention_heads", or_zero(architectures.n_heads, cfg)),
                ("hidden_size", or_zero(architectures.hidden, cfg)),
            )
            if not value
        ]
        what = _invalid(cfg, exc.key) or (f"lacks {', '.join('`' + k + '`' for k in basics)}" if exc.key in basics else str(exc))
        raise UserError(
            f"{name}: config.json {what}",
            "the KV cache is sized from it (vLLM would fail to build the model too)",
            "use the model's own config.json",
        ) from exc
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise UserError(
            f"{name}: config.json does not fit the {arch or 'generic'} layout ({type(exc).__name__}: {exc})",
            "vLLM would fail to build the model from it too",
            "use the model's own config.json",
        ) from exc
    return layers, arch if row is not None else "generic", reasons


def config_dtype(cfg: dict[str, Any]) -> str:
    raw = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16").replace("torch.", "")
    return raw if raw in DTYPE_BYTES else "bfloat16"


def quantization_of(cfg: dict[str, Any]) -> tuple[str | None, bool]:
    """(method, checkpoint declares a quantized KV cache)."""
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        return None, False
    method = str(q.get("quant_method") or q.get("quant_algo") or "unknown").lower()
    if method == "bitsandbytes" or q.get("load_in_4bit") or q.get("load_in_8bit"):
        method = "bitsandbytes"
    kv_quant = bool(q.get("kv_cache_scheme")) or str(q.get("kv_cache_quant_algo") or "").upper() == "FP8"
    return method, kv_quant


def estimate_parameters(cfg: dict[str, Any], layers: tuple[LayerSpec, ...]) -> tuple[int, int, int]:
    """(non-embedding params, embedding params, lm-head params): a first-order count from the config."""
    hidden = or_zero(architectures.hidden, cfg)
    vocab = int_of(cfg, "vocab_size") or 0
    heads = or_zero(architectures.n_heads, cfg) or 1
    inter = int_of(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden
    head = or_zero(architectures.explicit_head_dim, cfg) or hidden // heads
    kv = or_zero(architectures.convertor_kv_heads, cfg)
    attn = hidden * heads * head * 2 + 2 * hidden * kv * head
    experts = int_of(cfg, *EXPERT_KEYS) or 0
    moe_inter = int_of(cfg, "moe_intermediate_size") or inter
    shared = int_of(cfg, "n_shared_experts") or 0
    mlp = 3 * hidden * ((experts + shared) * moe_inter if experts else inter)
    per_layer = attn + mlp
    embed = vocab * hidden
    lm_head = 0 if cfg.get("tie_word_embeddings") else vocab * hidden
    return per_layer * len(layers), embed, lm_head


def routed_expert_parameters(cfg: dict[str, Any], layers: tuple[LayerSpec, ...]) -> int:
    """Parameters of the routed experts (gate, up and down projections), the part vLLM shards over TP x DP ranks.
    DeepSeek-style `first_k_dense_replace` layers have a dense MLP instead."""
    experts = int_of(cfg, *EXPERT_KEYS) or 0
    if not experts:
        return 0
    hidden = or_zero(architectures.hidden, cfg)
    moe_inter = int_of(cfg, "moe_intermediate_size") or int_of(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden
    moe_layers = max(0, len(layers) - int(cfg.get("first_k_dense_replace") or 0))
    return 3 * hidden * moe_inter * experts * moe_layers


def weight_facts(
    cfg: dict[str, Any], layers: tuple[LayerSpec, ...], dtype: str, quant: str | None, total_bytes: int | None, source: str
) -> WeightFacts:
    body, embed, lm_head = estimate_parameters(cfg, layers)
    elem = DTYPE_BYTES[dtype]
    embed_bytes, head_bytes = embed * elem, lm_head * elem
    if total_bytes is None:
        per_weight = QUANT_WEIGHT_BYTES.get(quant or "", elem) if quant else elem
        total_bytes = int(math.ceil(body * per_weight)) + embed_bytes + head_bytes
        source = "estimate"
    embed_bytes, head_bytes = min(embed_bytes, total_bytes // 2), min(head_bytes, total_bytes // 2)
    # The experts' share of the non-embedding bytes, by parameter count (checkpoint indexes give no per-tensor sizes).
    experts = routed_expert_parameters(cfg, layers)
    expert_bytes = int((total_bytes - embed_bytes - head_bytes) * min(1.0, experts / body)) if experts and body else 0
    return WeightFacts(total_bytes, source, embed_bytes, head_bytes, expert_bytes)


def moe_shape(cfg: dict[str, Any]) -> MoeShape | None:
    experts = int_of(cfg, *EXPERT_KEYS)
    if not experts:
        return None
    top_k = int_of(cfg, "num_experts_per_tok", "experts_per_token", "moe_topk") or 1
    width = int_of(cfg, "moe_intermediate_size", "intermediate_size", "ffn_dim") or 0
    shared = int_of(cfg, "shared_expert_intermediate_size") or (int_of(cfg, "n_shared_experts", "num_shared_experts") or 0) * width
    return MoeShape(experts, top_k, width, shared)


def flat_ffn(cfg: dict[str, Any]) -> dict[str, Any]:
    """DBRX nests its experts in `ffn_config` (vLLM 0.33 dbrx.py `DbrxExperts`: moe_num_experts, moe_top_k,
    ffn_hidden_size); the config with them under the keys the other MoE configs use."""
    ffn = cfg.get("ffn_config")
    if not isinstance(ffn, dict):
        return cfg
    keys = {
        "num_local_experts": "moe_num_experts",
        "num_experts_per_tok": "moe_top_k",
        "moe_intermediate_size": "ffn_hidden_size",
        "intermediate_size": "ffn_hidden_size",
    }
    return {**cfg, **{flat: ffn[nested] for flat, nested in keys.items() if ffn.get(nested) is not None}}


def spec_from_config(
    config: dict[str, Any],
    name: str,
    *,
    weights_bytes: int | None = None,
    weights_source: str = "estimate",
    generation_config: dict[str, Any] | None = None,
    facts_source: str = "",
) -> ModelSpec:
    """Build a `ModelSpec` from a parsed config.json (and optionally generation_config.json)."""
    if not isinstance(config, dict) or not config:
        raise UserError(
            f"{name}: config.json is empty or not a JSON object", "vLLM reads the model from it", "use the model's own config.json"
        )
    cfg = architectures.text_of(config)
    if not (
        int_of(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
        or cfg.get("layers_block_type")
        or cfg.get("hybrid_override_pattern")
    ):
        bad = _invalid(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
        raise UserError(
            f"{name}: config.json {bad or 'lacks `num_hidden_layers`'}",
            "the number of layers sizes the KV cache",
            "use the model's own config.json",
        )
    layers, layout, unverified = read_layers(config, cfg, name)
    cfg = flat_ffn(cfg)
    heads = or_zero(architectures.n_heads, cfg)
    hidden = or_zero(architectures.hidden, cfg)
    dtype = config_dtype(cfg)
    quant, _ = quantization_of(cfg)
    kv_quant, kv_reasons = architectures.kv_quantization(cfg)
    unverified += kv_reasons
    archs = config.get("architectures") or cfg.get("architectures") or []
    gen = generation_config or {}
    return ModelSpec(
        name=name,
        architecture=str(archs[0]) if archs else "",
        model_type=str(cfg.get("model_type") or config.get("model_type") or ""),
        layers=layers,
        num_attention_heads=heads,
        hidden_size=hidden,
        intermediate_size=int_of(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden,
        vocab_size=int_of(cfg, "vocab_size") or 32000,
        dtype=dtype,
        context=context_facts(cfg),
        weights=weight_facts(cfg, layers, dtype, quant, weights_bytes, weights_source),
        quantization=quant,
        kv_cache_quantized=kv_quant,
        moe=moe_shape(cfg),
        multimodal=isinstance(config.get("vision_config"), dict) or "ForConditionalGeneration" in str(archs[0] if archs else ""),
        max_new_tokens=int_of(gen, "max_new_tokens"),
        facts_source=facts_source,
        layout=layout,
        unverified=tuple(unverified),
    )

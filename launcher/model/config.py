"""Turn a Hugging Face `config.json` (a dict) into a `ModelSpec`. Pure: no I/O.

The rules follow vLLM 0.32's `model_arch_config_convertor.py` and the model classes' own
`get_kv_cache_spec`, as summarised in the project's memory-model notes.
"""

from __future__ import annotations

import math
from typing import Any

from launcher.errors import UserError
from launcher.model.spec import (
    ContextFacts,
    LayerSpec,
    MambaState,
    ModelSpec,
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
KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num", "num_attention_groups")
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


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """vLLM sizes the language model: multimodal configs keep it under `text_config`."""
    inner = config.get("text_config") or config.get("llm_config") or config.get("language_config")
    if isinstance(inner, dict):
        merged = dict(inner)
        for key in ("quantization_config", "torch_dtype", "dtype", "architectures"):
            if key in config and key not in merged:
                merged[key] = config[key]
        merged.setdefault("model_type", config.get("model_type", ""))
        return merged
    return config


def _int(cfg: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return None


def _invalid(cfg: dict[str, Any], *keys: str) -> str | None:
    """The first of `keys` present with a value _int refuses: reported as a bad value, not as a missing key."""
    return next((f"`{k}` is {cfg[k]!r}, not a positive whole number" for k in keys if cfg.get(k) is not None), None)


def kv_heads_of(cfg: dict[str, Any]) -> int:
    if cfg.get("multi_query") and not cfg.get("new_decoder_architecture"):
        return 1  # Falcon MQA
    attn = cfg.get("attn_config")
    if isinstance(attn, dict) and attn.get("kv_n_heads"):
        return int(attn["kv_n_heads"])  # DBRX
    return _int(cfg, *KV_HEAD_KEYS) or _int(cfg, "num_attention_heads", "n_head") or 0


def head_size_of(cfg: dict[str, Any], heads: int, hidden: int) -> int:
    explicit = _int(cfg, "head_dim", "hidden_size_per_head")
    if explicit:
        return explicit
    return hidden // heads


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
    sliding = cfg.get("sliding_window")
    return ContextFacts(
        lengths=lengths,
        model_max_length=float(mml) if mml else None,
        rope=rope_entries(cfg),
        sliding_window=int(sliding) if isinstance(sliding, int) and sliding > 0 else None,
        rope_theta=_rope_theta(cfg),
    )


def _rope_theta(cfg: dict[str, Any]) -> float | None:
    theta = cfg.get("rope_theta")
    params = cfg.get("rope_parameters")
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    return float(theta) if isinstance(theta, (int, float)) else None


def _mamba_state(cfg: dict[str, Any]) -> MambaState:
    if "linear_num_value_heads" in cfg:  # Qwen3-Next / Qwen3.5 gated delta net
        nk, hk = int(cfg["linear_num_key_heads"]), int(cfg["linear_key_head_dim"])
        nv, hv = int(cfg["linear_num_value_heads"]), int(cfg["linear_value_head_dim"])
        return MambaState("gdn", int(cfg.get("linear_conv_kernel_dim", 4)), 2 * hk * nk + hv * nv, nv, hv, hk, 2)
    hidden = int(cfg["hidden_size"])
    expand = cfg.get("mamba_expand", cfg.get("expand", 2))
    heads = _int(cfg, "mamba_n_heads", "mamba_num_heads")
    head_dim = _int(cfg, "mamba_head_dim", "mamba_d_head")
    state = _int(cfg, "mamba_d_state", "ssm_state_size", "state_size") or 128
    kernel = _int(cfg, "mamba_d_conv", "conv_kernel", "mamba_conv_kernel") or 4
    intermediate = _int(cfg, "mamba_intermediate_size") or (heads * head_dim if heads and head_dim else int(expand * hidden))
    if heads is None:  # Mamba1 (Jamba): state (intermediate, d_state), conv (intermediate, kernel-1)
        return MambaState("mamba1", kernel, intermediate, 1, intermediate, state, 3)
    groups = _int(cfg, "mamba_n_groups", "n_groups") or 1
    return MambaState("mamba2", kernel, intermediate + 2 * groups * state, heads, head_dim or intermediate // heads, state, 3)


def layer_types(cfg: dict[str, Any], n_layers: int) -> list[str]:
    """One of full / sliding / chunked / mamba per layer, from whichever convention the config uses."""
    model_type = str(cfg.get("model_type", ""))
    window = cfg.get("sliding_window")
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == n_layers:
        mapping = {
            "sliding_attention": "sliding",
            "full_attention": "full",
            "attention": "full",
            "chunked_attention": "chunked",
            "linear_attention": "mamba",
            "mamba": "mamba",
            "mamba2": "mamba",
        }
        out = [mapping.get(str(t), "full") for t in types]
        if not window:
            out = ["full" if t == "sliding" else t for t in out]
        return out
    pattern = cfg.get("hybrid_override_pattern")  # Nemotron-H: M mamba, * attention, - MLP only
    if isinstance(pattern, str) and len(pattern) == n_layers:
        return [{"M": "mamba", "*": "full"}.get(ch, "none") for ch in pattern]
    if "attn_layer_period" in cfg:  # Jamba
        period, offset = int(cfg["attn_layer_period"]), int(cfg.get("attn_layer_offset", 0))
        return ["full" if i % period == offset else "mamba" for i in range(n_layers)]
    if "full_attention_interval" in cfg:  # Qwen3-Next without layer_types
        k = int(cfg["full_attention_interval"])
        return ["full" if (i + 1) % k == 0 else "mamba" for i in range(n_layers)]
    if cfg.get("attention_chunk_size"):  # Llama 4: NoPE layers are global, the others chunked
        no_rope = cfg.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) == n_layers:
            return ["chunked" if use_rope else "full" for use_rope in no_rope]
        interval = int(cfg.get("no_rope_layer_interval", 4))
        return ["full" if (i + 1) % interval == 0 else "chunked" for i in range(n_layers)]
    if not window:
        return ["full"] * n_layers
    if model_type == "gemma2" or model_type == "cohere2":
        return ["sliding" if i % 2 == 0 else "full" for i in range(n_layers)]
    if model_type.startswith("gemma3"):
        period = int(cfg.get("sliding_window_pattern", 6))
        return ["full" if (i + 1) % period == 0 else "sliding" for i in range(n_layers)]
    if model_type.startswith("qwen2") or model_type.startswith("qwen3"):
        if not cfg.get("use_sliding_window"):
            return ["full"] * n_layers
        max_window = int(cfg.get("max_window_layers", n_layers))
        return ["sliding" if i >= max_window else "full" for i in range(n_layers)]
    return ["sliding"] * n_layers  # Mistral-7B-v0.1 style: every layer slides


def build_layers(cfg: dict[str, Any], name: str) -> tuple[LayerSpec, ...]:
    n_layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    if not n_layers:
        bad = _invalid(cfg, "num_hidden_layers", "n_layer", "num_layers")
        raise UserError(
            f"{name}: config.json {bad or 'lacks `num_hidden_layers`'}",
            "the number of layers sizes the KV cache",
            "use the model's own config.json",
        )
    heads = _int(cfg, "num_attention_heads", "n_head")
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    if not heads or not hidden:
        bad = (not heads and _invalid(cfg, "num_attention_heads", "n_head")) or (
            not hidden and _invalid(cfg, "hidden_size", "n_embd", "d_model")
        )
        missing = [k for k, v in (("num_attention_heads", heads), ("hidden_size", hidden)) if not v]
        raise UserError(
            f"{name}: config.json {bad}" if bad else f"{name}: config.json lacks {', '.join('`' + m + '`' for m in missing)}",
            "the sizing engine needs them for the KV cache",
            "use the model's own config.json",
        )
    window = cfg.get("sliding_window") if isinstance(cfg.get("sliding_window"), int) else None
    chunk = cfg.get("attention_chunk_size")
    kinds = layer_types(cfg, n_layers)
    shared_from = n_layers - int(cfg.get("num_kv_shared_layers") or 0)  # Gemma-3n: the last N reuse earlier KV

    if cfg.get("kv_lora_rank"):
        latent = int(cfg["kv_lora_rank"]) + int(cfg.get("qk_rope_head_dim", 64))
        return tuple(LayerSpec("mla", 1, latent) for _ in range(n_layers))

    kv = kv_heads_of(cfg)
    head = head_size_of(cfg, heads, hidden)
    mamba = _mamba_state(cfg) if "mamba" in kinds else None
    layers = []
    for i, kind in enumerate(kinds):
        if i >= shared_from:
            layers.append(LayerSpec("shared"))
        elif kind == "none":
            continue
        elif kind == "mamba":
            layers.append(LayerSpec("mamba", mamba=mamba))
        elif kind == "sliding":
            layers.append(LayerSpec("sliding", kv, head, window=int(window)))
        elif kind == "chunked":
            layers.append(LayerSpec("chunked", kv, head, window=int(chunk)))
        else:
            layers.append(LayerSpec("full", kv, head))
    return tuple(layers)


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
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model") or 0
    vocab = _int(cfg, "vocab_size") or 0
    heads = _int(cfg, "num_attention_heads", "n_head") or 1
    inter = _int(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden
    head = head_size_of(cfg, heads, hidden)
    kv = kv_heads_of(cfg)
    attn = hidden * heads * head * 2 + 2 * hidden * kv * head
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts") or 0
    moe_inter = _int(cfg, "moe_intermediate_size") or inter
    shared = _int(cfg, "n_shared_experts") or 0
    mlp = 3 * hidden * ((experts + shared) * moe_inter if experts else inter)
    per_layer = attn + mlp
    embed = vocab * hidden
    lm_head = 0 if cfg.get("tie_word_embeddings") else vocab * hidden
    return per_layer * len(layers), embed, lm_head


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
    return WeightFacts(total_bytes, source, min(embed_bytes, total_bytes // 2), min(head_bytes, total_bytes // 2))


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
    cfg = text_config(config)
    layers = build_layers(cfg, name)
    heads = _int(cfg, "num_attention_heads", "n_head") or 0
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model") or 0
    dtype = config_dtype(cfg)
    quant, kv_quant = quantization_of(cfg)
    archs = config.get("architectures") or cfg.get("architectures") or []
    experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    gen = generation_config or {}
    return ModelSpec(
        name=name,
        architecture=str(archs[0]) if archs else "",
        model_type=str(cfg.get("model_type") or config.get("model_type") or ""),
        layers=layers,
        num_attention_heads=heads,
        num_kv_heads=1 if any(layer.kind == "mla" for layer in layers) else kv_heads_of(cfg),
        hidden_size=hidden,
        intermediate_size=_int(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden,
        vocab_size=_int(cfg, "vocab_size") or 32000,
        dtype=dtype,
        context=context_facts(cfg),
        weights=weight_facts(cfg, layers, dtype, quant, weights_bytes, weights_source),
        quantization=quant,
        kv_cache_quantized=kv_quant,
        is_moe=bool(experts),
        max_new_tokens=_int(gen, "max_new_tokens"),
        facts_source=facts_source,
    )

"""What vLLM allocates per layer for each architecture it serves, read from a Hugging Face config.json. Pure.

`ARCHITECTURES` is the one table: keyed by the `architectures[0]` name of vLLM 0.33's model registry
(`model_executor/models/registry.py`: `_TEXT_GENERATION_MODELS`, the multimodal models' language models, the
Transformers-backend models), each row names the reading (a function below) that mirrors the vLLM file it cites,
and the config keys that reading takes into account. A reading returns one `LayerSpec` per decoder layer with
the KV heads, head sizes and window of that layer, its recurrent state, or the layer it shares its KV with.

Transformers' config classes fill some keys before vLLM sees them (`layer_types` from older keys,
`sliding_window` dropped when `use_sliding_window` is off); `hf_layer_types` repeats what those classes do
(transformers 5.19, the version vLLM 0.32/0.33 install) for the configs that predate `layer_types`.

`check_fields` is the "never guess silently" part: keys that look like they shape the KV cache but that neither
the row nor the common set accounts for make the reading unverified, and the plan says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from launcher.model.spec import LayerSpec, MambaState

Config = dict[str, Any]
Reading = Callable[[Config], list[LayerSpec]]

VLLM = "vLLM 0.33 "  # every source below is a file of the vLLM 0.33.0 wheel
KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num", "num_attention_groups")


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class UnreadableConfig(ValueError):
    """The config lacks a key the architecture's reading needs (vLLM would fail on it too)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"lacks `{key}`")
        self.key = key


# --- plain accessors ---------------------------------------------------------------------------------------------


def int_of(c: Config, *keys: str, default: int | None = None) -> int | None:
    """The first of `keys` holding a positive number (booleans are not numbers here), else `default`."""
    for key in keys:
        value = c.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return default


def or_zero(read: Callable[[Config], int], c: Config) -> int:
    """`read(c)`, or 0 where the config lacks what it needs (for estimates and messages that do without)."""
    try:
        return read(c)
    except UnreadableConfig:
        return 0


def need(c: Config, *keys: str) -> int:
    value = int_of(c, *keys)
    if value is None:
        raise UnreadableConfig(keys[0])
    return value


def n_layers(c: Config) -> int:
    for key in ("layers_block_type", "hybrid_override_pattern"):  # Nemotron-H configs may give only the pattern
        if "num_hidden_layers" not in c and isinstance(c.get(key), (list, str)) and c[key]:
            return len(c[key])
    return need(c, "num_hidden_layers", "n_layer", "num_layers", "n_layers")


def n_heads(c: Config) -> int:
    return need(c, "num_attention_heads", "n_head", "num_heads", "n_heads")


def hidden(c: Config) -> int:
    return need(c, "hidden_size", "n_embd", "d_model", "dim")


def convertor_kv_heads(c: Config) -> int:
    """`model_arch_config_convertor.get_total_num_kv_heads`: the first KV-head key present, else all heads."""
    if c.get("multi_query") and not c.get("new_decoder_architecture"):
        return 1  # Falcon MQA
    attn = c.get("attn_config")
    if isinstance(attn, dict) and attn.get("kv_n_heads"):
        return int(attn["kv_n_heads"])  # DBRX
    return int_of(c, *KV_HEAD_KEYS) or n_heads(c)


def explicit_head_dim(c: Config) -> int:
    """`head_dim` when the config sets it (and it is not null or 0), else hidden_size / heads."""
    return int_of(c, "head_dim") or hidden(c) // n_heads(c)


def derived_head_dim(c: Config) -> int:
    """hidden_size / heads, whatever `head_dim` says (models whose vLLM code never reads it)."""
    return hidden(c) // n_heads(c)


def sliding_window(c: Config) -> int | None:
    """`sliding_window` as vLLM's ModelConfig keeps it: 0, null or a non-integer mean none."""
    value = c.get("sliding_window")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- layer types as transformers' config classes fill them ------------------------------------------------------


def _every(n: int, period: int, other: str, last: str) -> list[str]:
    return [other if (i + 1) % period else last for i in range(n)]


def hf_layer_types(c: Config) -> list[str] | None:
    """`config.layer_types` after transformers 5.19's config class ran (None where the class has none)."""
    n = n_layers(c)
    given = c.get("layer_types")
    if isinstance(given, list):
        return [str(t) for t in given]
    mt = str(c.get("model_type", ""))
    sw = sliding_window(c)
    if mt in ("qwen2", "qwen3", "qwen3_moe", "dots1") or mt.startswith(("qwen2_5_vl", "qwen2_vl", "qwen3_vl")):
        # configuration_qwen2.py: sliding only with use_sliding_window, from max_window_layers on (0: every layer)
        on = bool(c.get("use_sliding_window")) and sw is not None
        start = c.get("max_window_layers", 28)
        start = start if isinstance(start, int) and not isinstance(start, bool) else 28
        return ["sliding_attention" if on and i >= start else "full_attention" for i in range(n)]
    if mt == "qwen2_moe":  # configuration_qwen2_moe.py: every other layer below max_window_layers
        on = bool(c.get("use_sliding_window"))
        limit = int(c.get("max_window_layers", 28))
        return ["sliding_attention" if on and (i + 1) % 2 and i < limit else "full_attention" for i in range(n)]
    if mt in ("gemma2", "gpt_oss"):
        return _every(n, 2, "sliding_attention", "full_attention")
    if mt in ("gemma3", "gemma3_text"):
        return _every(n, int(c.get("sliding_window_pattern", 6)), "sliding_attention", "full_attention")
    if mt == "cohere2":
        return _every(n, int(c.get("sliding_window_pattern", 4)), "sliding_attention", "full_attention")
    if mt in ("exaone4", "exaone_moe"):
        pattern = c.get("sliding_window_pattern", 4)
        if isinstance(pattern, str):  # "LLLG"
            pattern = len(pattern)
        if sw is None or not pattern:
            return ["full_attention"] * n
        return _every(n, int(pattern), "sliding_attention", "full_attention")
    if mt == "afmoe":  # configuration_afmoe.py: every global_attn_every_n_layers-th layer is global
        return _every(n, int(c.get("global_attn_every_n_layers", 4)), "sliding_attention", "full_attention")
    if mt in ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text"):
        return _every(n, int(c.get("full_attention_interval", 4)), "linear_attention", "full_attention")
    return None


# --- readings ------------------------------------------------------------------------------------------------------

ATTENTION_TYPES = {"full_attention": "full", "attention": "full", "global_attention": "full", "sliding_attention": "sliding"}


def key_value_heads(c: Config) -> int:
    """`num_key_value_heads`, else every head: what vLLM's Llama-derived model files read."""
    return int_of(c, "num_key_value_heads") or n_heads(c)


def attention(
    c: Config,
    *,
    kv: Callable[[Config], int] = key_value_heads,
    head: Callable[[Config], int] = explicit_head_dim,
    window_offset: int = 0,
    per_layer_windows: bool = True,
) -> list[LayerSpec]:
    """Decoder layers with vLLM's `Attention`: full, or sliding where the model passes a per-layer window.

    vLLM's `Attention` falls back to the engine-wide window (`CacheConfig.sliding_window`) for a layer without its
    own; `EngineArgs.create_engine_config` sets that only when `layer_types` is absent or all sliding, so a
    Mistral-7B-v0.1 style config (a window, no layer types) slides on every layer
    (vLLM 0.33 `model_executor/layers/attention/attention.py`, `engine/arg_utils.py`).
    """
    n = n_layers(c)
    kvh, hd = kv(c), head(c)
    types = hf_layer_types(c)
    sw = sliding_window(c)
    engine_window = sw if types is None or all(t == "sliding_attention" for t in types[:n]) else None
    out = []
    for i in range(n):
        kind = ATTENTION_TYPES.get(types[i], "full") if types else "full"
        window = sw + window_offset if per_layer_windows and kind == "sliding" and sw else engine_window
        out.append(LayerSpec("sliding", kvh, hd, window=window) if window else LayerSpec("full", kvh, hd))
    return out


def qwen2(c: Config) -> list[LayerSpec]:
    return attention(c, head=derived_head_dim)  # qwen2.py: head_dim = hidden_size // num_heads


def convertor(c: Config) -> list[LayerSpec]:
    """The Transformers modeling backend (transformers/base.py): model_arch_config's KV heads and head size for
    every layer, layer_types' windows."""
    return attention(c, kv=convertor_kv_heads)


def step1(c: Config) -> list[LayerSpec]:
    # step1.py: num_attention_groups (else num_key_value_heads, else 1) KV heads of hidden_size / heads
    return attention(c, kv=lambda c: int_of(c, "num_attention_groups", "num_key_value_heads") or 1, head=derived_head_dim)


def step3_text(c: Config) -> list[LayerSpec]:
    return attention(c, kv=lambda _: 1, head=lambda c: need(c, "head_dim"))  # step3_text.py: multi-query, head_dim


def mha_derived(c: Config) -> list[LayerSpec]:
    return attention(c, kv=lambda c: n_heads(c), head=derived_head_dim)  # GPT-2, Bloom, OPT style: all heads cache KV


def cohere(c: Config) -> list[LayerSpec]:
    # commandr.py: v2 layers slide over sliding_window + 1 keys (the training convention); v1 never slides
    if c.get("model_type") == "cohere":
        return attention(c, per_layer_windows=False)
    return attention(c, window_offset=1)


def gpt_oss(c: Config) -> list[LayerSpec]:
    # gpt_oss.py: even layers slide, whatever layer_types says
    n, kvh, hd, sw = n_layers(c), need(c, "num_key_value_heads"), need(c, "head_dim"), sliding_window(c)
    return [LayerSpec("sliding", kvh, hd, window=sw) if i % 2 == 0 and sw else LayerSpec("full", kvh, hd) for i in range(n)]


def falcon(c: Config) -> list[LayerSpec]:
    # falcon.py: new_decoder_architecture -> num_kv_heads; multi_query -> 1; else every head
    if c.get("new_decoder_architecture"):
        kvh = need(c, "num_kv_heads")
    elif c.get("multi_query", True) and c.get("model_type") != "RefinedWebModel" or c.get("multi_query"):
        kvh = 1
    else:
        kvh = n_heads(c)
    return attention(c, kv=lambda _: kvh, head=derived_head_dim)


def chatglm(c: Config) -> list[LayerSpec]:
    # chatglm.py: multi_query_group_num KV heads when multi_query_attention, head size hidden / heads
    kvh = need(c, "multi_query_group_num") if c.get("multi_query_attention") else n_heads(c)
    return [LayerSpec("full", kvh, derived_head_dim(c)) for _ in range(n_layers(c))]


def dbrx(c: Config) -> list[LayerSpec]:
    kvh = int((c.get("attn_config") or {}).get("kv_n_heads") or n_heads(c))
    return [LayerSpec("full", kvh, derived_head_dim(c)) for _ in range(n_layers(c))]


def mimo_v2(c: Config) -> list[LayerSpec]:
    """mimo_v2.py: `hybrid_layer_pattern` 1 marks sliding layers with their own heads and sizes (`swa_*`), the others
    are full attention with `num_key_value_heads`, `head_dim` and `v_head_dim` (values narrower than keys)."""
    n, pattern = n_layers(c), c.get("hybrid_layer_pattern") or []
    out = []
    for i in range(n):
        if i < len(pattern) and pattern[i] == 1:
            hd = need(c, "swa_head_dim")
            window = c.get("sliding_window_size", -1)
            kvh, hv = need(c, "swa_num_key_value_heads"), int_of(c, "swa_v_head_dim") or hd
            out.append(
                LayerSpec("sliding", kvh, hd, window=int(window), head_size_v=hv)
                if window and window > 0
                else LayerSpec("full", kvh, hd, head_size_v=hv)
            )
        else:
            hd = need(c, "head_dim")
            out.append(LayerSpec("full", need(c, "num_key_value_heads"), hd, head_size_v=int_of(c, "v_head_dim") or hd))
    return out


def exaone_moe(c: Config) -> list[LayerSpec]:
    """exaone_moe.py: sliding layers take their window from `sliding_windows[i]` when the config lists one per layer."""
    n, kvh, hd = n_layers(c), key_value_heads(c), explicit_head_dim(c)
    types = hf_layer_types(c) or ["full_attention"] * n
    windows = c.get("sliding_windows")
    out = []
    for i in range(n):
        window = None if types[i] == "full_attention" else (windows[i] if isinstance(windows, list) else sliding_window(c))
        out.append(LayerSpec("sliding", kvh, hd, window=int(window)) if window else LayerSpec("full", kvh, hd))
    return out


def step3p5(c: Config) -> list[LayerSpec]:
    # step3p5.py: num_attention_groups KV heads on every layer; the engine-wide window is cleared, so only layers marked
    # sliding_attention slide
    n, kvh, hd, sw = n_layers(c), need(c, "num_attention_groups"), explicit_head_dim(c), sliding_window(c)
    types = hf_layer_types(c) or ["full_attention"] * n
    return [
        LayerSpec("sliding", kvh, hd, window=sw) if types[i] == "sliding_attention" and sw else LayerSpec("full", kvh, hd) for i in range(n)
    ]


def minicpm3(c: Config) -> list[LayerSpec]:
    # minicpm3.py decompresses the latent: plain attention, every head caching qk_nope + qk_rope sized keys and values
    head = need(c, "qk_nope_head_dim") + need(c, "qk_rope_head_dim")
    return [LayerSpec("full", n_heads(c), head) for _ in range(n_layers(c))]


def iquest_loopcoder(c: Config) -> list[LayerSpec]:
    """iquest_loopcoder.py: each layer runs `loop_num` passes with one cache each, the first as configured, the later
    ones sliding over `loop_window_size` tokens."""
    loops, window = int(c.get("loop_num", 2)), int(c.get("loop_window_size", 64))
    out = []
    for a in attention(c, head=derived_head_dim):
        extra = tuple(LayerSpec("sliding", a.kv_heads, a.head_size, window=window) for _ in range(loops - 1))
        out.append(LayerSpec(a.kind, a.kv_heads, a.head_size, a.window, extra=extra))
    return out


def nemotron_nas(c: Config) -> list[LayerSpec]:
    """nemotron_nas.py (DeciLM, Llama-3.x-Nemotron Super/Ultra): `block_configs[i].attention` either skips attention
    (`no_op`: no cache) or groups `n_heads_in_group` query heads per KV head."""
    blocks = c.get("block_configs")
    if not isinstance(blocks, list) or len(blocks) < n_layers(c):
        raise UnreadableConfig("block_configs")
    hd, out = explicit_head_dim(c), []
    for block in blocks[: n_layers(c)]:
        attn = block.get("attention") or {}
        out.append(LayerSpec("none") if attn.get("no_op") else LayerSpec("full", n_heads(c) // int(attn["n_heads_in_group"]), hd))
    return out


def mla_latent(c: Config) -> int:
    return need(c, "kv_lora_rank") + int(c.get("qk_rope_head_dim", 64))


def mla(c: Config) -> list[LayerSpec]:
    """Multi-head latent attention: one (kv_lora_rank + qk_rope_head_dim) latent per token and layer, no V
    (`model_executor/layers/attention/mla_attention.py`). Without `kv_lora_rank` DeepSeek-V1 style MHA."""
    if not c.get("kv_lora_rank"):
        return attention(c)
    return [LayerSpec("mla", 1, mla_latent(c)) for _ in range(n_layers(c))]


def longcat_flash(c: Config) -> list[LayerSpec]:
    # longcat_flash.py: every decoder layer runs two MLA attentions (self_attn.0 and self_attn.1), two latent caches
    latent = mla_latent(c)
    return [LayerSpec("mla", 1, latent, extra=(LayerSpec("mla", 1, latent),)) for _ in range(n_layers(c))]


INDEXER_QUANT_BLOCK = 128  # deepseek_v2.py Indexer: fp8 keys plus one fp32 scale per 128 values


def mla_indexed(c: Config) -> list[LayerSpec]:
    """MLA plus the sparse-attention indexer's key cache per layer (DeepSeek-V3.2, GLM-5): uint8 keys of
    index_head_dim + index_head_dim / 128 * 4 bytes (`DeepseekV32IndexerCache`, deepseek_v2.py)."""
    index_dim = need(c, "index_head_dim")
    indexer = LayerSpec("mla", 1, index_dim + index_dim // INDEXER_QUANT_BLOCK * 4, dtype="uint8")
    return [LayerSpec("mla", 1, mla_latent(c), extra=(indexer,)) for _ in range(n_layers(c))]


def llama4(c: Config) -> list[LayerSpec]:
    # llama4.py: layers with RoPE use chunked local attention when attention_chunk_size is set; NoPE layers are global
    n, kvh, hd = n_layers(c), convertor_kv_heads(c), explicit_head_dim(c)
    chunk = int_of(c, "attention_chunk_size")
    no_rope = c.get("no_rope_layers")
    if not isinstance(no_rope, list) or len(no_rope) < n:  # configuration_llama4.py default: every 4th layer is NoPE
        interval = int(c.get("no_rope_layer_interval", 4))
        no_rope = [int((i + 1) % interval != 0) for i in range(n)]
    return [LayerSpec("chunked", kvh, hd, window=chunk) if chunk and no_rope[i] else LayerSpec("full", kvh, hd) for i in range(n)]


def gemma3n(c: Config) -> list[LayerSpec]:
    """gemma3n.py: the last num_kv_shared_layers layers read the KV of the last earlier layer of the same type."""
    layers = attention(c)
    shared_from = len(layers) - int(c.get("num_kv_shared_layers") or 0)
    return [LayerSpec("shared") if i >= shared_from else layer for i, layer in enumerate(layers)]


def gemma4(c: Config) -> list[LayerSpec]:
    """gemma4.py reads each layer's heads and head size from transformers' `per_layer_config`: full-attention
    layers get `global_head_dim` (512 when absent) and, with `attention_k_eq_v`, `num_global_key_value_heads`
    (configuration_gemma4.py); the last num_kv_shared_layers layers share earlier layers' KV."""
    n = n_layers(c)
    types = list(hf_layer_types(c) or _every(n, 6, "sliding_attention", "full_attention"))
    if types[n - 1] != "full_attention":
        types[n - 1] = "full_attention"  # configuration_gemma4.py forces the last layer global
    kvh, hd, sw = need(c, "num_key_value_heads"), need(c, "head_dim"), sliding_window(c)
    if c.get("use_bidirectional_attention") == "all" and sw:
        sw = sw // 2 + 1
    global_hd = int_of(c, "global_head_dim", default=512)
    global_kv = int_of(c, "num_global_key_value_heads") if c.get("attention_k_eq_v", False) else None
    given = c.get("per_layer_config")
    overrides = {int(k): v for k, v in given.items()} if isinstance(given, dict) else None  # keys are "05", "11", ...
    shared_from = n - int(c.get("num_kv_shared_layers") or 0)
    out = []
    for i in range(n):
        if i >= shared_from:
            out.append(LayerSpec("shared"))
            continue
        heads, size = kvh, hd
        if overrides is not None:
            own = overrides.get(i) or {}
            heads, size = int(own.get("num_key_value_heads", kvh)), int(own.get("head_dim", hd))
        elif types[i] == "full_attention":
            heads, size = global_kv or kvh, global_hd or hd
        out.append(
            LayerSpec("sliding", heads, size, window=sw) if types[i] == "sliding_attention" and sw else LayerSpec("full", heads, size)
        )
    return out


# --- recurrent-state layers (vLLM's MambaStateShapeCalculator) -----------------------------------------------------


def mamba1_state(c: Config, intermediate: int) -> MambaState:
    return MambaState(
        "mamba1", need(c, "mamba_d_conv", "conv_kernel"), intermediate, 1, intermediate, need(c, "mamba_d_state", "state_size"), 2
    )


def mamba2_state(c: Config, *, heads: int, head_dim: int, groups: int, state: int, kernel: int, ssm_dtype: str | None = None) -> MambaState:
    return MambaState("mamba2", kernel, heads * head_dim, heads, head_dim, state, 3, n_groups=groups, ssm_dtype=ssm_dtype)


def gdn_state(c: Config) -> MambaState:
    nk, hk = need(c, "linear_num_key_heads"), need(c, "linear_key_head_dim")
    nv, hv = need(c, "linear_num_value_heads"), need(c, "linear_value_head_dim")
    return MambaState("gdn", int(c.get("linear_conv_kernel_dim", 4)), 2 * hk * nk + hv * nv, nv, hv, hk, 2)


def kda_state(heads: int, head_dim: int, kernel: int, k_heads: int | None = None, k_head_dim: int | None = None) -> MambaState:
    conv = heads * head_dim + 2 * (k_heads or heads) * (k_head_dim or head_dim)
    return MambaState("kda", kernel, conv, heads, head_dim, head_dim, 2, ssm_dtype="float32")  # kda_state_dtype: fp32 state


def hybrid(c: Config, kinds: list[str], state: MambaState, attn: list[LayerSpec] | None = None) -> list[LayerSpec]:
    """Layers by kind: "attention" (the reading's attention layer i), "mamba" (the state), "none" (no cache)."""
    attn = attn or attention(c)
    out = []
    for i, kind in enumerate(kinds):
        if kind == "attention":
            out.append(attn[i])
        elif kind == "mamba":
            out.append(LayerSpec("mamba", mamba=state))
        else:
            out.append(LayerSpec("none"))
    return out


# Attention-free models (IsAttentionFree) run without prefix caching (config/model.py is_prefix_caching_supported),
# so mamba_cache_mode stays "none" and a request holds one state block: align_blocks 1.


def mamba(c: Config) -> list[LayerSpec]:
    # mamba.py (Mamba, FalconMamba): attention-free, one Mamba1 state per layer
    state = replace(mamba1_state(c, need(c, "intermediate_size")), align_blocks=1)
    return [LayerSpec("mamba", mamba=state) for _ in range(n_layers(c))]


def mamba2(c: Config) -> list[LayerSpec]:
    heads, head_dim = need(c, "num_heads"), need(c, "head_dim")
    state = mamba2_state(
        c,
        heads=heads,
        head_dim=head_dim,
        groups=int(c.get("n_groups", 1)),
        state=need(c, "state_size"),
        kernel=int(c.get("conv_kernel", 4)),
    )
    return [LayerSpec("mamba", mamba=replace(state, align_blocks=1)) for _ in range(n_layers(c))]


def nemotron_h(c: Config) -> list[LayerSpec]:
    """nemotron_h.py: `hybrid_override_pattern` / `layer_types`: M (Mamba2), * (attention), - and E (MLP / MoE,
    no cache); the SSM state's default dtype changed across releases (models/config.py NemotronHForCausalLMConfig,
    versions.nemotron_h_ssm_cache_dtype) unless the config sets `mamba_ssm_cache_dtype`. Configs that give only
    `layers_block_type` (Nemotron-3-Ultra) get their pattern from it: transformers 5.19's NemotronHConfig maps
    layer_types to layers_block_type and derives `hybrid_override_pattern`, which vLLM reads, from that list."""
    n = n_layers(c)
    pattern = c.get("hybrid_override_pattern")
    if isinstance(pattern, str):
        kinds = [{"M": "mamba", "*": "attention"}.get(ch, "none") for ch in pattern[:n]]
    else:
        block_types = c.get("layers_block_type")
        types = hf_layer_types(c) or (block_types if isinstance(block_types, list) else [])
        kinds = [
            {"mamba": "mamba", "linear_attention": "mamba", "attention": "attention", "full_attention": "attention"}.get(t, "none")
            for t in types[:n]
        ]
    heads, head_dim = need(c, "mamba_num_heads"), need(c, "mamba_head_dim")
    state = mamba2_state(
        c,
        heads=heads,
        head_dim=head_dim,
        groups=need(c, "n_groups"),
        state=need(c, "ssm_state_size"),
        kernel=need(c, "conv_kernel"),
        ssm_dtype=str(c["mamba_ssm_cache_dtype"]) if c.get("mamba_ssm_cache_dtype") else None,
    )
    return hybrid(c, kinds, replace(state, ssm_dtype_rule="nemotron_h_ssm_cache_dtype"))


def jamba(c: Config) -> list[LayerSpec]:
    n = n_layers(c)
    period, offset = int(c.get("attn_layer_period", 8)), int(c.get("attn_layer_offset", 4))
    kinds = ["attention" if i % period == offset else "mamba" for i in range(n)]
    return hybrid(c, kinds, mamba1_state(c, int(c.get("mamba_expand", 2)) * hidden(c)))


def granite_hybrid(c: Config) -> list[LayerSpec]:
    n = n_layers(c)
    types = c.get("layer_types") or c.get("layers_block_type") or ["mamba"] * n  # new names, or mamba / attention
    kinds = ["attention" if t in ("attention", "full_attention") else "mamba" for t in types[:n]]
    heads, head_dim = need(c, "mamba_n_heads"), need(c, "mamba_d_head")
    state = mamba2_state(
        c,
        heads=heads,
        head_dim=head_dim,
        groups=int(c.get("mamba_n_groups", 1)),
        state=need(c, "mamba_d_state"),
        kernel=need(c, "mamba_d_conv"),
    )
    state = MambaState(
        "mamba2", state.conv_kernel, int(c.get("mamba_expand", 2)) * hidden(c), heads, head_dim, state.ssm_state, 3, n_groups=state.n_groups
    )
    return hybrid(c, kinds, state)


def falcon_h1(c: Config) -> list[LayerSpec]:
    """falcon_h1.py: every layer runs attention and a Mamba2 mixer side by side (two caches per layer)."""
    heads, head_dim = need(c, "mamba_n_heads"), need(c, "mamba_d_head")
    d_ssm = int_of(c, "mamba_d_ssm") or int(c.get("mamba_expand", 2)) * hidden(c)
    state = MambaState(
        "mamba2", need(c, "mamba_d_conv"), d_ssm, heads, head_dim, need(c, "mamba_d_state"), 3, n_groups=int(c.get("mamba_n_groups", 1))
    )
    mixer = LayerSpec("mamba", mamba=state)
    return [LayerSpec(a.kind, a.kv_heads, a.head_size, a.window, extra=(mixer,)) for a in attention(c)]


def gated_deltanet(c: Config, ssm_dtype: str | None = None) -> list[LayerSpec]:
    """Qwen3-Next / OLMo-hybrid: `linear_attention` layers are Gated DeltaNet (gdn) states, the rest gated full
    attention (qwen3_next.py, olmo_hybrid.py)."""
    n = n_layers(c)
    types = hf_layer_types(c) or ["full_attention"] * n
    kinds = ["mamba" if t == "linear_attention" else "attention" for t in types[:n]]
    state = gdn_state(c)
    if ssm_dtype:
        state = MambaState(
            "gdn", state.conv_kernel, state.conv_dim, state.ssm_heads, state.ssm_head_dim, state.ssm_state, 2, ssm_dtype=ssm_dtype
        )
    return hybrid(c, kinds, state)


def qwen3_5(c: Config) -> list[LayerSpec]:
    """qwen3_5.py: Qwen3-Next's layout; the state dtype follows the config's `mamba_ssm_dtype`
    (models/config.py Qwen3_5ForConditionalGenerationConfig)."""
    return gated_deltanet(c, str(c["mamba_ssm_dtype"]) if c.get("mamba_ssm_dtype") else None)


def lfm2(c: Config) -> list[LayerSpec]:
    """lfm2.py / lfm2_moe.py: `conv` layers keep a short-conv state of (conv_L_cache - 1) x conv_dim."""
    n = n_layers(c)
    types = c.get("layer_types")
    if not isinstance(types, list):
        full = set(c.get("full_attn_idxs") or [])
        types = ["full_attention" if i in full else "conv" for i in range(n)]
    kinds = ["attention" if t == "full_attention" else "mamba" for t in types[:n]]
    state = MambaState("short_conv", need(c, "conv_L_cache"), int_of(c, "conv_dim") or hidden(c), 0, 0, 0, 2)
    return hybrid(c, kinds, state)


def zamba2(c: Config) -> list[LayerSpec]:
    """zamba2.py: every layer is a Mamba2 mixer; the `hybrid` layers add a shared transformer block whose attention
    caches KV for that layer (head size 2 x hidden / heads: it attends over the concatenated embeddings)."""
    n = n_layers(c)
    types = c.get("layers_block_type") or ["mamba"] * n
    intermediate = int(c.get("mamba_expand", 2)) * hidden(c)
    heads = need(c, "n_mamba_heads")
    state = MambaState(
        "mamba2",
        need(c, "mamba_d_conv"),
        intermediate,
        heads,
        int_of(c, "mamba_headdim") or intermediate // heads,
        need(c, "mamba_d_state"),
        3,
        n_groups=int(c.get("mamba_ngroups", 1)),
    )
    mixer = LayerSpec("mamba", mamba=state)
    head = int_of(c, "attention_head_dim") or 2 * hidden(c) // n_heads(c)
    kvh = int_of(c, "num_key_value_heads") or n_heads(c)
    return [LayerSpec("full", kvh, head, extra=(mixer,)) if t == "hybrid" else mixer for t in types[:n]]


def bailing_linear(c: Config) -> list[LayerSpec]:
    """bailing_moe_linear.py (Ling/Ring 2.5): linear-attention layers keep a (heads, head_dim, head_dim) state; every
    `layer_group_size`-th layer is MLA."""
    n, group = n_layers(c), int(c.get("layer_group_size", 0))
    head_dim = int_of(c, "head_dim") or hidden(c) // n_heads(c)
    state = MambaState("linear_attention", 1, 0, n_heads(c), head_dim, 0, 2)
    kinds = ["mamba" if group > 0 and (i + 1) % group else "attention" for i in range(n)]
    return hybrid(c, kinds, state, attn=mla(c))


def kda_hybrid(c: Config) -> list[LayerSpec]:
    """alice_ai.py: `linear_attention` layers are Kimi delta attention states (fp32 recurrent state), the others
    gated full attention."""
    n = n_layers(c)
    types = hf_layer_types(c) or ["full_attention"] * n
    kinds = ["mamba" if t == "linear_attention" else "attention" for t in types[:n]]
    state = kda_state(need(c, "linear_num_key_heads"), need(c, "linear_key_head_dim"), int(c.get("linear_conv_kernel_dim", 4)))
    return hybrid(c, kinds, state)


def generic(c: Config) -> list[LayerSpec]:
    """vLLM's generic rules (model_arch_config_convertor and the common conventions), for an architecture no row
    reads: MLA when `kv_lora_rank` is set, hybrid patterns by their usual keys, else `attention`. The plan marks
    what it reads this way as unverified."""
    n = n_layers(c)
    if c.get("kv_lora_rank"):
        return mla(c)
    if isinstance(c.get("hybrid_override_pattern"), str) and "mamba_num_heads" in c:
        return nemotron_h(c)
    if "attn_layer_period" in c and "mamba_d_state" in c:
        return jamba(c)
    if "linear_num_value_heads" in c:
        return gated_deltanet(c)
    if c.get("attention_chunk_size"):
        return llama4(c)
    layers = attention(c, kv=convertor_kv_heads)
    shared_from = n - int(c.get("num_kv_shared_layers") or 0)
    return [LayerSpec("shared") if i >= shared_from else layer for i, layer in enumerate(layers)]


def kimi_linear(c: Config) -> list[LayerSpec]:
    """Kimi-Linear (models/kimi_k3, transformers_utils/configs/kimi_linear.py): layers listed (1-based) in
    linear_attn_config["kda_layers"] keep a Kimi delta attention state, the others are MLA."""
    la = c.get("linear_attn_config") or {}
    kda = set(la.get("kda_layers") or [])
    state = kda_state(int(la["num_heads"]), int(la["head_dim"]), int(la.get("short_conv_kernel_size", 4))) if kda else None
    latent = mla_latent(c)
    return [LayerSpec("mamba", mamba=state) if i + 1 in kda else LayerSpec("mla", 1, latent) for i in range(n_layers(c))]


# --- the table ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One architecture: how to read its layers, the vLLM file the reading mirrors, the config keys it reads
    beyond the common ones (COMMON_KEYS), and the layer type names it understands."""

    read: Reading | None
    source: str
    keys: frozenset[str] = frozenset()
    layer_types: frozenset[str] = frozenset({"full_attention", "sliding_attention", "attention"})
    note: str = ""


def row(read: Reading | None, source: str, keys: str = "", types: str = "", note: str = "") -> Row:
    layer_types = frozenset(types.split()) if types else frozenset({"full_attention", "sliding_attention", "attention"})
    return Row(read, VLLM + source, words(keys), layer_types, note)


M = "model_executor/models/"
STD = "max_window_layers use_sliding_window sliding_window_pattern"
MLA = "kv_lora_rank qk_rope_head_dim qk_nope_head_dim qk_head_dim v_head_dim q_lora_rank"
GDN = "linear_num_key_heads linear_key_head_dim linear_num_value_heads linear_value_head_dim linear_conv_kernel_dim full_attention_interval"
MAMBA2 = (
    "mamba_n_heads mamba_d_head mamba_n_groups mamba_d_state mamba_d_conv mamba_expand mamba_d_ssm mamba_chunk_size "
    "mamba_conv_bias mamba_proj_bias mamba_rms_norm mamba_norm_before_gate"
)
UNREAD = "its layer layout is not yet read by vllm-launch"

ARCHITECTURES: dict[str, Row] = {
    # dense / MoE decoders with vLLM's Attention, heads and head size the common way
    **{
        name: row(attention, M + file, STD)
        for name, file in {
            "ApertusForCausalLM": "apertus.py",
            "BailingMoeForCausalLM": "bailing_moe.py",
            "BailingMoeV2ForCausalLM": "bailing_moe.py",
            "Ernie4_5ForCausalLM": "ernie45.py",
            "Ernie4_5_MoeForCausalLM": "ernie45_moe.py",
            "ExaoneForCausalLM": "exaone.py",
            "Exaone4ForCausalLM": "exaone4.py",
            "GemmaForCausalLM": "gemma.py",
            "Gemma2ForCausalLM": "gemma2.py",
            "Gemma3ForCausalLM": "gemma3.py",
            "Rnj1ForCausalLM": "rnj1.py",
            "Glm4ForCausalLM": "glm4.py",
            "Glm4MoeForCausalLM": "glm4_moe.py",
            "GraniteForCausalLM": "granite.py",
            "GraniteSWAForCausalLM": "granite.py",
            "HyperCLOVAXForCausalLM": "hyperclovax.py",
            "HCXVisionV2ForCausalLM": "hyperclovax_vision_v2.py",
            "HYV3ForCausalLM": "hy_v3.py",
            "InternLM3ForCausalLM": "llama.py",
            "IQuestCoderForCausalLM": "llama.py",
            "LlamaForCausalLM": "llama.py",
            "LLaMAForCausalLM": "llama.py",
            "Ministral3ForCausalLM": "mistral.py",
            "MistralForCausalLM": "mistral.py",
            "MixtralForCausalLM": "mixtral.py",
            "NemotronForCausalLM": "nemotron.py",
            "Param2MoEForCausalLM": "param2moe.py",
            "Phi3ForCausalLM": "phi3.py",
            "PhiMoEForCausalLM": "phimoe.py",
            "Qwen3ForCausalLM": "qwen3.py",
            "Qwen3MoeForCausalLM": "qwen3_moe.py",
            "Qwen2MoeForCausalLM": "qwen2_moe.py",
            "SolarForCausalLM": "solar.py",
            "TeleChat3ForCausalLM": "llama.py",
            "TeleFLMForCausalLM": "teleflm.py",
            "TeleChat2ForCausalLM": "telechat2.py",
            "MuseGlimmerForCausalLM": "muse_glimmer.py",
        }.items()
    },
    # the Transformers modeling backend: model_arch_config's heads and head size, layer_types' windows
    **{
        name: row(convertor, M + "transformers/base.py", STD)
        for name in words(
            """ArceeForCausalLM CwmForCausalLM FlexOlmoForCausalLM GlmForCausalLM HunYuanDenseV1ForCausalLM
            HunYuanMoEV1ForCausalLM Jais2ForCausalLM MellumForCausalLM NanbeigeForCausalLM OlmoForCausalLM Olmo2ForCausalLM
            Olmo3ForCausalLM SeedOssForCausalLM
            SmolLM3ForCausalLM Starcoder2ForCausalLM VaultGemmaForCausalLM GPTNeoXForCausalLM GPTBigCodeForCausalLM PhiForCausalLM"""
        )
    },
    "AfmoeForCausalLM": row(attention, M + "afmoe.py", STD + " global_attn_every_n_layers"),
    "LagunaForCausalLM": row(attention, M + "laguna.py", STD + " num_attention_heads_per_layer swa_rope_parameters"),
    "Qwen2ForCausalLM": row(qwen2, M + "qwen2.py", STD, note="head size is hidden_size / heads; head_dim is ignored"),
    "InternLM2ForCausalLM": row(qwen2, M + "internlm2.py", note="head size is hidden_size / heads"),
    "GraniteMoeForCausalLM": row(qwen2, M + "granitemoe.py", note="head size is hidden_size / heads"),
    "GraniteMoeSharedForCausalLM": row(qwen2, M + "granitemoeshared.py"),
    "GraniteMoeSWAForCausalLM": row(qwen2, M + "granitemoeshared.py"),
    "OrionForCausalLM": row(qwen2, M + "orion.py"),
    "StableLmForCausalLM": row(qwen2, M + "stablelm.py"),
    "OlmoeForCausalLM": row(qwen2, M + "olmoe.py"),
    "MiniCPMForCausalLM": row(qwen2, M + "minicpm.py"),
    "MiMoForCausalLM": row(qwen2, M + "mimo.py", STD),
    "Step3TextForCausalLM": row(step3_text, M + "step3_text.py", "share_q_dim"),
    "BloomForCausalLM": row(mha_derived, M + "bloom.py", "n_head n_layer"),
    "GPT2LMHeadModel": row(mha_derived, M + "gpt2.py", "n_head n_layer n_embd n_positions"),
    "GPTJForCausalLM": row(mha_derived, M + "gpt_j.py", "n_head n_layer n_embd n_positions rotary_dim"),
    "OPTForCausalLM": row(mha_derived, M + "opt.py"),
    "Step1ForCausalLM": row(step1, M + "step1.py", "num_attention_groups"),
    "CohereForCausalLM": row(cohere, M + "commandr.py", STD),
    "Cohere2ForCausalLM": row(cohere, M + "commandr.py", STD, note="sliding layers keep sliding_window + 1 tokens"),
    "Cohere2MoeForCausalLM": row(cohere, M + "cohere2_moe.py", STD + " prefix_dense_sliding_window_pattern"),
    "DbrxForCausalLM": row(dbrx, M + "dbrx.py", "attn_config d_model n_heads n_layers"),
    "FalconForCausalLM": row(falcon, M + "falcon.py", "multi_query new_decoder_architecture num_kv_heads n_head n_layer"),
    "ChatGLMModel": row(chatglm, M + "chatglm.py", "multi_query_attention multi_query_group_num kv_channels num_layers"),
    "ChatGLMForConditionalGeneration": row(chatglm, M + "chatglm.py", "multi_query_attention multi_query_group_num kv_channels num_layers"),
    "MiMoV2FlashForCausalLM": row(
        mimo_v2,
        M + "mimo_v2.py",
        "hybrid_layer_pattern swa_head_dim swa_num_key_value_heads swa_num_attention_heads swa_v_head_dim "
        "v_head_dim sliding_window_size add_swa_attention_sink_bias add_full_attention_sink_bias swa_rope_theta",
    ),
    "MiMoV2ForCausalLM": row(
        mimo_v2,
        M + "mimo_v2.py",
        "hybrid_layer_pattern swa_head_dim swa_num_key_value_heads swa_num_attention_heads swa_v_head_dim "
        "v_head_dim sliding_window_size add_swa_attention_sink_bias add_full_attention_sink_bias swa_rope_theta",
    ),
    "ExaoneMoeForCausalLM": row(exaone_moe, M + "exaone_moe.py", STD + " sliding_windows"),
    "ExaoneMoEForCausalLM": row(exaone_moe, M + "exaone_moe.py", STD + " sliding_windows"),
    "Step3p5ForCausalLM": row(step3p5, M + "step3p5.py", "num_attention_groups num_sliding_attention_heads use_rope_layers"),
    "MiniMaxM2ForCausalLM": row(attention, M + "minimax_m2.py", "rotary_dim"),
    "GptOssForCausalLM": row(gpt_oss, M + "gpt_oss.py", note="even layers slide, whatever layer_types says"),
    "Llama4ForCausalLM": row(llama4, M + "llama4.py", "attention_chunk_size no_rope_layers no_rope_layer_interval"),
    "Llama4ForConditionalGeneration": row(llama4, M + "mllama4.py", "attention_chunk_size no_rope_layers no_rope_layer_interval"),
    # multi-head latent attention
    **{
        name: row(mla, M + file, MLA)
        for name, file in {
            "DeepseekForCausalLM": "deepseek_v2.py",
            "DeepseekV2ForCausalLM": "deepseek_v2.py",
            "DeepseekV3ForCausalLM": "deepseek_v2.py",
            "Glm4MoeLiteForCausalLM": "glm4_moe_lite.py",
            "MistralLarge3ForCausalLM": "mistral_large_3.py",
            "SarvamMLAForCausalLM": "sarvam.py",
            "PanguUltraMoEForCausalLM": "openpangu.py",
            "KimiK25ForConditionalGeneration": "kimi_k25.py",
            "KimiVLForConditionalGeneration": "kimi_vl.py",
            "DeepseekVLV2ForCausalLM": "deepseek_vl2.py",
        }.items()
    },
    "IQuestLoopCoderForCausalLM": row(iquest_loopcoder, M + "iquest_loopcoder.py", STD + " loop_num loop_window_size"),
    "DeciLMForCausalLM": row(nemotron_nas, M + "nemotron_nas.py", "block_configs"),
    "MiniCPM3ForCausalLM": row(minicpm3, M + "minicpm3.py", MLA),
    "LongcatFlashForCausalLM": row(
        longcat_flash, M + "longcat_flash.py", MLA + " mla_scale_q_lora mla_scale_kv_lora zero_expert_num zero_expert_type"
    ),
    "DeepseekV32ForCausalLM": row(mla_indexed, "models/deepseek_v32/nvidia/model.py", MLA + " index_head_dim index_n_heads index_topk"),
    "GlmMoeDsaForCausalLM": row(mla_indexed, "models/deepseek_v32/nvidia/model.py", MLA + " index_head_dim index_n_heads index_topk"),
    # shared KV and per-layer heads
    "Gemma3nForCausalLM": row(gemma3n, M + "gemma3n.py", "num_kv_shared_layers"),
    "Gemma3nForConditionalGeneration": row(gemma3n, M + "gemma3n_mm.py", "num_kv_shared_layers"),
    "Gemma4ForCausalLM": row(
        gemma4,
        M + "gemma4.py",
        "global_head_dim num_global_key_value_heads attention_k_eq_v num_kv_shared_layers per_layer_config use_bidirectional_attention",
    ),
    "Gemma4ForConditionalGeneration": row(
        gemma4,
        M + "gemma4_mm.py",
        "global_head_dim num_global_key_value_heads attention_k_eq_v num_kv_shared_layers per_layer_config use_bidirectional_attention",
    ),
    # state-space and linear-attention hybrids
    "MambaForCausalLM": row(mamba, M + "mamba.py", "state_size conv_kernel expand time_step_rank", types="mamba"),
    "FalconMambaForCausalLM": row(mamba, M + "mamba.py", "state_size conv_kernel expand time_step_rank", types="mamba"),
    "Mamba2ForCausalLM": row(
        mamba2, M + "mamba2.py", "state_size conv_kernel expand n_groups num_heads head_dim chunk_size", types="mamba"
    ),
    "NemotronHForCausalLM": row(
        nemotron_h,
        M + "nemotron_h.py",
        "hybrid_override_pattern layers_block_type mtp_layers_block_type mamba_num_heads mamba_head_dim n_groups ssm_state_size "
        "conv_kernel mamba_ssm_cache_dtype chunk_size",
        types="mamba attention full_attention linear_attention mlp moe",
    ),
    "NemotronHPuzzleForCausalLM": row(
        nemotron_h,
        M + "nemotron_h.py",
        "hybrid_override_pattern layers_block_type mtp_layers_block_type mamba_num_heads mamba_head_dim n_groups ssm_state_size "
        "conv_kernel mamba_ssm_cache_dtype chunk_size",
        types="mamba attention full_attention linear_attention mlp moe",
    ),
    "JambaForCausalLM": row(
        jamba, M + "jamba.py", "attn_layer_period attn_layer_offset mamba_d_state mamba_d_conv mamba_expand mamba_dt_rank"
    ),
    "GraniteMoeHybridForCausalLM": row(
        granite_hybrid, M + "granitemoehybrid.py", MAMBA2 + " layers_block_type", types="mamba attention linear_attention full_attention"
    ),
    "FalconH1ForCausalLM": row(falcon_h1, M + "falcon_h1.py", MAMBA2),
    "Qwen3NextForCausalLM": row(gated_deltanet, M + "qwen3_next.py", GDN, types="linear_attention full_attention"),
    "Qwen3_5ForCausalLM": row(qwen3_5, M + "qwen3_5.py", GDN + " mamba_ssm_dtype", types="linear_attention full_attention"),
    "Qwen3_5MoeForCausalLM": row(qwen3_5, M + "qwen3_5.py", GDN + " mamba_ssm_dtype", types="linear_attention full_attention"),
    "Qwen3_5ForConditionalGeneration": row(qwen3_5, M + "qwen3_5.py", GDN + " mamba_ssm_dtype", types="linear_attention full_attention"),
    "Qwen3_5MoeForConditionalGeneration": row(qwen3_5, M + "qwen3_5.py", GDN + " mamba_ssm_dtype", types="linear_attention full_attention"),
    "OlmoHybridForCausalLM": row(
        gated_deltanet,
        M + "olmo_hybrid.py",
        GDN + " linear_a_log_max linear_allow_neg_eigval linear_dt_init_floor linear_dt_max linear_dt_min",
        types="linear_attention full_attention",
    ),
    "KimiLinearForCausalLM": row(
        kimi_linear, "models/kimi_k3/nvidia/model.py", MLA + " linear_attn_config mla_use_nope mla_use_output_gate"
    ),
    "AliceAIForCausalLM": row(kda_hybrid, M + "alice_ai.py", GDN, types="linear_attention full_attention"),
    "Lfm2ForCausalLM": row(lfm2, M + "lfm2.py", "conv_L_cache conv_dim full_attn_idxs conv_bias block_dim", types="conv full_attention"),
    "Lfm2MoeForCausalLM": row(lfm2, M + "lfm2_moe.py", "conv_L_cache conv_dim full_attn_idxs conv_bias", types="conv full_attention"),
    "Zamba2ForCausalLM": row(
        zamba2,
        M + "zamba2.py",
        "layers_block_type hybrid_layer_ids mamba_d_state mamba_d_conv mamba_expand mamba_ngroups n_mamba_heads chunk_size "
        "attention_hidden_size kv_channels "
        "mamba_headdim attention_head_dim",
    ),
    "BailingMoeV2_5ForCausalLM": row(bailing_linear, M + "bailing_moe_linear.py", MLA + " layer_group_size"),
}

# Multimodal checkpoints whose language model is one of the rows above (their config's text_config).
for _mm, _text in {
    "Gemma3ForConditionalGeneration": "Gemma3ForCausalLM",
    "Mistral3ForConditionalGeneration": "MistralForCausalLM",
    "PixtralForConditionalGeneration": "MistralForCausalLM",
    "LlavaForConditionalGeneration": "LlamaForCausalLM",
    "LlavaNextForConditionalGeneration": "LlamaForCausalLM",
    "Qwen2VLForConditionalGeneration": "Qwen2ForCausalLM",
    "Qwen2_5_VLForConditionalGeneration": "Qwen2ForCausalLM",
    "Qwen3VLForConditionalGeneration": "Qwen3ForCausalLM",
    "Qwen3VLMoeForConditionalGeneration": "Qwen3MoeForCausalLM",
    "InternVLChatModel": "Qwen2ForCausalLM",
    "Glm4vForConditionalGeneration": "Glm4ForCausalLM",
    "Glm4vMoeForConditionalGeneration": "Glm4MoeForCausalLM",
    "Lfm2VlForConditionalGeneration": "Lfm2ForCausalLM",
    "Exaone4_5_ForConditionalGeneration": "Exaone4ForCausalLM",
}.items():
    _base = ARCHITECTURES[_text]
    ARCHITECTURES[_mm] = Row(_base.read, _base.source, _base.keys, _base.layer_types, f"language model: {_text}")

# Registered in vLLM 0.33 but not read here yet: the plan says so and marks its numbers unverified.
for _name, _file in {
    "AXK1ForCausalLM": M + "AXK1.py",
    "BailingMoeV3ForCausalLM": M + "bailing_moe_v3.py",
    "BeamForCausalLM": "models/beam",
    "DeepseekV4ForCausalLM": "models/deepseek_v4",
    "DomynEdgeForCausalLM": M + "domyn_edge.py",
    "DoryForCausalLM": M + "dory.py",
    "FlintForCausalLM": "models/flint",
    "Glm5NextForCausalLM": "models/glm5next",
    "HrmTextForCausalLM": M + "hrm_text.py",
    "HYV4ForCausalLM": "models/hy_v4",
    "InklingForCausalLM": "models/inkling",
    "InklingForConditionalGeneration": "models/inkling",
    "K2HorizonForCausalLM": M + "k2_horizon.py",
    "LongcatFlashNgramForCausalLM": M + "longcat_flash_ngram.py",
    "MiniMaxM3SparseForCausalLM": "models/minimax_m3",
    "PanguEmbeddedForCausalLM": M + "openpangu.py",
    "PanguProMoEV2ForCausalLM": M + "openpangu.py",
    "Plamo3ForCausalLM": M + "plamo3.py",
    "Qwen4ExpForCausalLM": "models/qwen4_exp",
    "SarvamMoEForCausalLM": M + "sarvam.py",
    "Step5ForCausalLM": "models/step5",
}.items():
    ARCHITECTURES.setdefault(_name, Row(None, VLLM + _file, note=UNREAD))

# vLLM 0.33 refuses these (`_PREVIOUSLY_SUPPORTED_MODELS` in registry.py): the plan says so.
NO_LONGER_SUPPORTED = words(
    "MotifForCausalLM Phi3SmallForCausalLM Phi4FlashForCausalLM Phi4MultimodalForCausalLM JAISLMHeadModel "
    "InternLM2VEForCausalLM QWenLMHeadModel QwenVLForConditionalGeneration InternLMForCausalLM "
    "MllamaForConditionalGeneration XverseForCausalLM Dots1ForCausalLM BambaForCausalLM MiniMaxForCausalLM "
    "MiniMaxText01ForCausalLM MiniMaxM1ForCausalLM MiniMaxVL01ForConditionalGeneration BaiChuanForCausalLM "
    "BaichuanForCausalLM AquilaModel AquilaForCausalLM Grok1ModelForCausalLM Grok1ForCausalLM TeleChatForCausalLM "
    "PersimmonForCausalLM FuyuForCausalLM Plamo2ForCausalLM OuroForCausalLM ArcticForCausalLM MPTForCausalLM "
    "MptForCausalLM RWForCausalLM StableLMEpochForCausalLM"
)

# --- fields the readings account for everywhere, and those that never change the cache ---------------------------

COMMON_KEYS = words(
    """architectures model_type num_hidden_layers num_attention_heads num_key_value_heads head_dim hidden_size
    n_head n_layer n_embd n_positions n_inner num_heads n_heads num_layers n_layers d_model
    sliding_window layer_types max_position_embeddings rope_theta rope_scaling rope_parameters partial_rotary_factor
    torch_dtype dtype quantization_config text_config vision_config audio_config"""
)
# Keys that look like attention settings but leave the cache alone (dropout, biases, norms, scaling, softcaps,
# RoPE details, MLP and vision/audio tower settings, speculative heads).
INERT_KEYS = words(
    """attention_dropout attention_bias attn_logit_softcapping final_logit_softcapping query_pre_attn_scalar
    attention_multiplier attention_out_bias attention_value_scale attn_output_gate head_dim_original
    use_qk_norm qk_norm qk_layernorm use_qk_layernorm qkv_bias attention_softmax_in_fp32 attn_implementation
    _attn_implementation attention_layer_norm use_head_wise_attn_gate attn_scale use_attn_sink attention_sink
    rope_local_base_freq rope_interleave rotary_pct rotary_emb_base rotary_dim rope_head_dim rope_type
    num_nextn_predict_layers mlp_only_layers mlp_layer_types moe_layer_freq decoder_sparse_step
    hidden_size_per_layer_input vocab_size_per_layer_input laurel_rank altup_num_inputs altup_active_idx
    altup_coef_clip altup_correct_scale activation_sparsity_pattern conv_bias mamba_conv_bias
    use_conv_bias use_bias residual_in_fp32 use_cache use_sliding_window_attention_sink
    vision_feature_layer vision_start_token_id image_token_index cache_implementation attn_pdrop
    scale_attn_weights scale_attention_softmax_in_fp32 apply_query_key_layer_scaling parallel_attn use_mamba_kernels"""
)
KV_LIKE = re.compile(
    r"(^|_)(kv|key|value|head|heads|window|attn|attention|sliding|swa|chunk|lora|rope_head|index|indexer|ssm|mamba|"
    r"conv|state|linear|layer_types|shared|sharing|global|local|nope|compress|sparse|mla|gdn|delta|recurrent|cache)s?($|_)"
)


def text_of(config: Config) -> Config:
    """The language model's config as vLLM's `hf_text_config` sees it (multimodal configs nest it)."""
    for key in ("text_config", "llm_config", "language_config", "text_model_config"):
        inner = config.get(key)
        if isinstance(inner, dict):
            merged = dict(inner)
            for outer in ("quantization_config", "torch_dtype", "dtype", "architectures"):
                if outer in config and outer not in merged:
                    merged[outer] = config[outer]
            merged.setdefault("model_type", config.get("model_type", ""))
            return merged
    return config


def find(architecture: str) -> Row | None:
    return ARCHITECTURES.get(architecture)


# Names that can match KV_LIKE but are about experts, scaling factors, token ids or bookkeeping.
INERT_PARTS = re.compile(
    r"expert|multiplier|dropout|pdrop|intermediate|_token_id|_token_index|^_|^moe_|_act$|_bias$|_eps$|_init|initializer"
)


def check_fields(cfg: Config, arch_row: Row) -> list[str]:
    """Reasons the reading may differ from vLLM: keys that look like KV-cache settings the row does not read, and
    layer types it does not know."""
    reasons = []
    known = COMMON_KEYS | INERT_KEYS | arch_row.keys
    unknown = sorted(
        k for k in cfg if k not in known and KV_LIKE.search(k) and not INERT_PARTS.search(k) and cfg[k] not in (None, False, 0, "", [], {})
    )
    if unknown:
        reasons.append(
            f"config.json sets {', '.join('`' + k + '`' for k in unknown)}, which vllm-launch does not read for this architecture"
        )
    types = cfg.get("layer_types")
    if isinstance(types, list):
        odd = sorted({str(t) for t in types} - arch_row.layer_types)
        if odd:
            reasons.append(
                f"layer_types holds {', '.join(repr(t) for t in odd)}, a layer type vllm-launch does not know for this architecture"
            )
    return reasons


def kv_quantization(cfg: Config) -> tuple[bool, list[str]]:
    """(the checkpoint declares an 8-bit float KV cache, reasons it declares something else vllm-launch cannot size).

    vLLM 0.33 `utils/torch_utils.py` `get_kv_cache_quant_algo_string` (ModelOpt) and `Attention.__init__`
    (llm-compressor `kv_cache_scheme` -> fp8)."""
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        return False, []
    inner = q.get("quantization") if isinstance(q.get("quantization"), dict) else q
    scheme = inner.get("kv_cache_scheme") or q.get("kv_cache_scheme")
    algo = inner.get("kv_cache_quant_algo") or q.get("kv_cache_quant_algo")
    spec = scheme if scheme is not None else algo
    if spec is None:
        return False, []
    if isinstance(spec, dict) and spec.get("type") == "float" and spec.get("num_bits") == 8:
        return True, []
    if isinstance(spec, str) and spec.lower() in ("fp8", "fp8_e4m3", "float8_e4m3fn"):
        return True, []
    return False, [f"quantization_config declares a KV-cache scheme vllm-launch cannot size ({spec!r}); vLLM may store the cache in it"]

"""Plain data describing a model, as far as vLLM's sizing cares.

The reader (`launcher.model.config`) fills these from a Hugging Face `config.json`; the pure sizing
engine (`launcher.sizing`) consumes them. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# full / sliding / chunked / mla attention, a recurrent state (mamba), a layer reading another layer's KV
# (shared), cross-attention to the encoder's tokens (cross), or a decoder layer that caches nothing (none).
LayerKind = Literal["full", "sliding", "chunked", "mla", "mamba", "shared", "cross", "none"]
StateFamily = Literal["mamba1", "mamba2", "gdn", "short_conv", "linear_attention", "kda"]


@dataclass(frozen=True)
class MambaState:
    """Per-sequence recurrent state of one Mamba / linear-attention / short-conv layer, before TP division.

    Shapes per family follow vLLM's `MambaStateShapeCalculator` (`model_executor/layers/mamba/mamba_utils.py`):
    mamba1: conv (kernel-1, conv_dim/TP), ssm (conv_dim/TP, ssm_state); mamba2: conv (kernel-1,
    (conv_dim + 2 n_groups' ssm_state)/TP) with n_groups padded up to the TP size, ssm (ssm_heads/TP, ssm_head_dim,
    ssm_state); gdn: conv (kernel-1, conv_dim/TP), ssm (ssm_heads/TP, ssm_head_dim, ssm_state); kda: conv as gdn,
    ssm (ssm_heads/TP, ssm_head_dim, ssm_head_dim); short_conv: conv only; linear_attention: ssm
    (ssm_heads/TP, ssm_head_dim, ssm_head_dim) only. For mamba2 `conv_dim` is the intermediate size
    without the groups' B/C channels (`n_groups` and `ssm_state` add them per rank).
    """

    family: StateFamily
    conv_kernel: int
    conv_dim: int
    ssm_heads: int
    ssm_head_dim: int
    ssm_state: int
    # Blocks one request holds with prefix caching on (mamba_cache_mode "align"): Mamba2 3, GDN 2.
    align_blocks: int
    n_groups: int = 0
    # A dtype the model forces on its recurrent state ("float32"), else None: --mamba-ssm-cache-dtype / the model dtype.
    ssm_dtype: str | None = None
    # The VersionRules field holding the state dtype vLLM defaults this model to, where that changed across releases.
    ssm_dtype_rule: str = ""


@dataclass(frozen=True)
class LayerSpec:
    """The KV-cache needs of one decoder layer (one vLLM `KVCacheSpec`).

    kind: full attention, sliding window, chunked local attention, MLA latent, Mamba state, a layer that reuses
    another layer's KV (`shared`, no memory of its own), cross-attention (`window` = the encoder's tokens), or a
    layer without any cache (`none`: MLP-only blocks of hybrids, attention-free layers).
    `head_size_v` is the value head size where it differs from the key's (0: the same); `dtype` a cache dtype
    the layer forces regardless of --kv-cache-dtype (the sparse-attention indexer's uint8 keys), else None.
    `extra` holds further caches the same decoder layer allocates (DeepSeek-V3.2's indexer keys).
    """

    kind: LayerKind
    kv_heads: int = 0
    head_size: int = 0
    window: int | None = None
    mamba: MambaState | None = None
    head_size_v: int = 0
    dtype: str | None = None
    extra: tuple[LayerSpec, ...] = ()

    @property
    def value_size(self) -> int:
        return self.head_size_v or self.head_size


@dataclass(frozen=True)
class RopeEntry:
    """One RoPE parameter set (there is one per layer type in Gemma 3 style configs)."""

    rope_type: str
    factor: float | None = None
    original_max_position_embeddings: int | None = None


@dataclass(frozen=True)
class ContextFacts:
    """The config keys vLLM derives `max_model_len` from (`derive_max_model_len_and_key`)."""

    lengths: dict[str, float]
    model_max_length: float | None
    rope: tuple[RopeEntry, ...]
    rope_theta: float | None = None


@dataclass(frozen=True)
class WeightFacts:
    """Checkpoint size and how we know it."""

    total_bytes: int
    source: str  # "safetensors index", "safetensors headers", "hub metadata", "catalog", "estimate"
    embedding_bytes: int
    lm_head_bytes: int
    # The routed experts' share of the checkpoint (MoE): data and expert parallelism split it over more ranks than the rest.
    expert_bytes: int = 0

    @property
    def is_estimate(self) -> bool:
        return self.source == "estimate"


@dataclass(frozen=True)
class MoeShape:
    """The routed experts of a mixture-of-experts layer, as the fused-MoE kernel sees them."""

    experts: int
    experts_per_token: int
    intermediate_size: int  # one expert's gate/up width (before tensor-parallel sharding)
    shared_intermediate_size: int = 0  # shared experts run as a dense MLP beside the routed ones


@dataclass(frozen=True)
class ModelSpec:
    """Everything the sizing engine needs about one model."""

    name: str
    architecture: str
    model_type: str
    layers: tuple[LayerSpec, ...]
    num_attention_heads: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    dtype: str
    context: ContextFacts
    weights: WeightFacts
    quantization: str | None = None
    kv_cache_quantized: bool = False
    moe: MoeShape | None = None
    multimodal: bool = False  # vLLM profiles the vision encoder too
    max_new_tokens: int | None = None
    facts_source: str = ""
    # The architecture row that read the layers (launcher.model.architectures), and why its reading may not be
    # what vLLM allocates (config fields or layer types it does not understand); empty when fully understood.
    layout: str = ""
    unverified: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def num_experts(self) -> int:
        """Routed experts per MoE layer (0: a dense model)."""
        return self.moe.experts if self.moe else 0

"""Plain data describing a model, as far as vLLM's sizing cares.

The reader (`launcher.model.config`) fills these from a Hugging Face `config.json`; the pure sizing
engine (`launcher.sizing`) consumes them. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LayerKind = Literal["full", "sliding", "chunked", "mla", "mamba", "shared"]


@dataclass(frozen=True)
class MambaState:
    """Per-sequence recurrent state of one Mamba/linear-attention layer, before TP division.

    `conv_dim` and `ssm_heads` are divided by the tensor-parallel size (vLLM's `mamba_utils`);
    the state is `(conv_kernel - 1) x conv_dim/TP` plus `ssm_heads/TP x ssm_head_dim x ssm_state`.
    """

    family: Literal["mamba2", "gdn", "mamba1"]
    conv_kernel: int
    conv_dim: int
    ssm_heads: int
    ssm_head_dim: int
    ssm_state: int
    # Blocks one request holds with prefix caching on (mamba_cache_mode "align"): Mamba2 3, GDN 2.
    align_blocks: int


@dataclass(frozen=True)
class LayerSpec:
    """The KV-cache needs of one decoder layer.

    kind: full attention, sliding window, chunked local attention, MLA latent, Mamba state, or a
    layer that reuses another layer's KV (`shared`, no memory of its own).
    """

    kind: LayerKind
    kv_heads: int = 0
    head_size: int = 0
    window: int | None = None
    mamba: MambaState | None = None


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
    sliding_window: int | None
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
    num_kv_heads: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    dtype: str
    context: ContextFacts
    weights: WeightFacts
    quantization: str | None = None
    kv_cache_quantized: bool = False
    is_moe: bool = False
    moe: MoeShape | None = None
    multimodal: bool = False  # vLLM profiles the vision encoder too
    max_new_tokens: int | None = None
    facts_source: str = ""
    num_experts: int = 0  # routed experts per MoE layer

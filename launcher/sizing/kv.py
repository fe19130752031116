"""KV-cache layout: per-layer page sizes, the hybrid allocator's grouping, blocks per request.

Mirrors vLLM 0.33's `v1/kv_cache_interface.py` and `v1/core/kv_cache_planning.py` (0.32's `kv_cache_utils.py`)
(`get_kv_cache_groups`, `unify_kv_cache_spec_page_size`, `_get_kv_cache_groups_uniform_page_size`,
`_project_kv_cache_groups_to_worker`, `_get_kv_cache_bytes_per_block`). Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from launcher.model.spec import LayerSpec, MambaState
from launcher.sizing.versions import VersionRules, rules_for

KV_DTYPE_BYTES = {
    "bfloat16": 2,
    "float16": 2,
    "float32": 4,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8_per_token_head": 1,
    "fp8_per_token_head": 1,
    "int4_per_token_head": 1,
}
MLA_FIXED_BYTES_PER_TOKEN = {"fp8_ds_mla": 656, "nvfp4_ds_mla": 352}
SMALLEST_KERNEL_BLOCK = 16


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerPage:
    """One layer's cache spec on one rank: the unit vLLM groups (a `KVCacheSpec`)."""

    kind: str  # full / sliding / chunked / mla / mamba / cross
    block_size: int
    page_bytes: int  # bytes of one block of this layer (padded for Mamba)
    window: int | None = None
    mamba_blocks: int = 0  # state blocks a request holds (Mamba only)

    @property
    def key(self) -> tuple:
        return (self.kind, self.block_size, self.page_bytes, self.window, self.mamba_blocks)


@dataclass(frozen=True)
class KVGroup:
    """A KV-cache group: layers sharing one block table."""

    spec: LayerPage
    layers: tuple[int, ...]  # layer indices (into the model's KV layers)


def kv_elem_bytes(kv_cache_dtype: str, model_dtype: str, checkpoint_kv_quantized: bool) -> int:
    if kv_cache_dtype == "auto":
        return 1 if checkpoint_kv_quantized else KV_DTYPE_BYTES.get(model_dtype, 2)
    if kv_cache_dtype not in KV_DTYPE_BYTES:
        raise ValueError(f"unsupported --kv-cache-dtype {kv_cache_dtype!r}")
    return KV_DTYPE_BYTES[kv_cache_dtype]


FIXED_DTYPE_BYTES = {"uint8": 1, "int8": 1, "float8": 1, "bfloat16": 2, "float16": 2, "float32": 4}


def attention_bytes_per_token(layer: LayerSpec, tp: int, elem: int, kv_cache_dtype: str) -> int:
    """One token's cache in one attention layer on one rank (`AttentionSpec.page_size_bytes` / block size)."""
    if layer.dtype is not None:  # a cache with its own dtype (the indexer's uint8 keys): --kv-cache-dtype does not apply
        elem = FIXED_DTYPE_BYTES[layer.dtype]
    elif layer.kind == "mla":  # ds_mla layouts pack latent, rope part and scales into a fixed blob
        return MLA_FIXED_BYTES_PER_TOKEN.get(kv_cache_dtype, layer.head_size * elem)
    if layer.kind == "mla":  # one latent per token (no V), replicated on every TP rank
        return layer.head_size * elem
    heads = max(1, layer.kv_heads // tp)  # replicated when kv_heads < TP
    return heads * (layer.head_size + layer.value_size) * elem


def mamba_state_shapes(state: MambaState, tp: int) -> list[tuple[tuple[int, ...], str]]:
    """The state tensors of one layer on one rank, each with its dtype role ("conv" or "ssm"), as vLLM's
    `MambaStateShapeCalculator` builds them (0.32/0.33 `model_executor/layers/mamba/mamba_utils.py`)."""
    k = state.conv_kernel - 1
    f = state.family
    if f == "mamba1":
        return [((k, state.conv_dim // tp), "conv"), ((state.conv_dim // tp, state.ssm_state), "ssm")]
    if f == "mamba2":  # groups padded so every rank holds the groups its heads need (extra_groups_for_head_shards)
        groups = state.n_groups + (0 if state.n_groups % tp == 0 else tp - state.n_groups)
        conv = (k, (state.conv_dim + 2 * groups * state.ssm_state) // tp)
        return [(conv, "conv"), ((state.ssm_heads // tp, state.ssm_head_dim, state.ssm_state), "ssm")]
    if f == "gdn":
        return [((k, state.conv_dim // tp), "conv"), ((state.ssm_heads // tp, state.ssm_head_dim, state.ssm_state), "ssm")]
    if f == "kda":
        return [((k, state.conv_dim // tp), "conv"), ((state.ssm_heads // tp, state.ssm_head_dim, state.ssm_head_dim), "ssm")]
    if f == "short_conv":
        return [((k, state.conv_dim // tp), "conv")]
    # linear_attention (MiniMax lightning): one (heads, head_dim, head_dim) state in the cache dtype
    return [((state.ssm_heads // tp, state.ssm_head_dim, state.ssm_head_dim), "conv")]


def release_state(state: MambaState, rules: VersionRules) -> MambaState:
    """The state with the dtype this release gives it by default (a model-specific default that changed over releases)."""
    if state.ssm_dtype is None and state.ssm_dtype_rule:
        default = getattr(rules, state.ssm_dtype_rule)
        return replace(state, ssm_dtype=None if default == "auto" else default)
    return state


def mamba_state_bytes(state: MambaState, tp: int, elem: int, ssm_elem: int) -> int:
    if state.ssm_dtype is not None:
        ssm_elem = FIXED_DTYPE_BYTES[state.ssm_dtype]
    total = 0
    for shape, role in mamba_state_shapes(state, tp):
        count = 1
        for dim in shape:
            count *= dim
        total += count * (elem if role == "conv" else ssm_elem)
    return total


def kv_layers(layers: tuple[LayerSpec, ...]) -> list[tuple[int, LayerSpec]]:
    """vLLM's KV-cache layers in model order, each with the index of the decoder layer that owns it.

    A shared-KV layer or a layer without a cache has none; a layer with a second cache (an indexer) has two.
    """
    out = []
    for index, layer in enumerate(layers):
        if layer.kind not in ("shared", "none"):
            out.append((index, layer))
        out.extend((index, extra) for extra in layer.extra)
    return out


def layer_pages(
    layers: tuple[LayerSpec, ...],
    *,
    tp: int,
    block_size: int,
    elem: int,
    kv_cache_dtype: str,
    ssm_elem: int,
    prefix_caching: bool,
    rules: VersionRules | None = None,
    architecture: str = "",
) -> tuple[list[LayerPage], int]:
    """Per-layer specs for one TP rank (before PP split), and the block size actually used.

    Hybrid Mamba models raise the attention block size so one attention page holds at least one
    Mamba state (`_align_hybrid_block_size`); this overrides a user --block-size, as in vLLM.
    Layer kinds are the ones the release's model runner creates (`spec_kind`), as the hybrid allocator keeps them
    (`promote_to_full` gives what vLLM sizes without it).
    """
    rules = rules or rules_for(None)
    cached = [layer for _, layer in kv_layers(layers)]
    attn = [layer for layer in cached if layer.kind != "mamba"]
    mambas = [layer for layer in cached if layer.kind == "mamba"]
    state_bytes = 0
    if mambas:  # vLLM pads every state to the largest one's page (models with two state layouts)
        states = [release_state(m.mamba, rules) for m in mambas if m.mamba is not None]
        state_bytes = max(mamba_state_bytes(state, tp, elem, ssm_elem) for state in states)
        if attn:
            per_token = attention_bytes_per_token(attn[0], tp, elem, kv_cache_dtype)
            align = max(SMALLEST_KERNEL_BLOCK, block_size)
            if attn[0].kind == "mla":
                align = max(align, 128)
            block_size = align * cdiv(state_bytes, align * per_token)

    pages = []
    for layer in cached:
        if layer.kind == "mamba":
            assert layer.mamba is not None
            mode = mamba_cache_mode(rules, prefix_caching, architecture)
            pages.append(LayerPage("mamba", block_size, state_bytes, None, mamba_blocks(layer.mamba, mode, rules)))
            continue
        per_token = attention_bytes_per_token(layer, tp, elem, kv_cache_dtype)
        kind = spec_kind(layer.kind, rules)
        window = layer.window if kind in ("sliding", "chunked") else None
        pages.append(LayerPage(kind, block_size, block_size * per_token, window))
    if mambas and attn:
        padded = max(p.page_bytes for p in pages if p.kind != "mamba")
        pages = [replace(p, page_bytes=max(p.page_bytes, padded)) if p.kind == "mamba" else p for p in pages]
    return pages, block_size


def spec_kind(kind: str, rules: VersionRules) -> str:
    """The spec kind the release's model runner gives a layer (older releases treat chunked layers as full)."""
    if kind == "chunked" and not rules.chunked_local_spec or kind == "sliding" and not rules.sliding_window_spec:
        return "full"
    return kind


# LayerPage.mamba_blocks of a Mamba layer that keeps a state per block of the context (mamba_cache_mode "all").
MAMBA_PER_BLOCK = -1


def mamba_cache_mode(rules: VersionRules, prefix_caching: bool, architecture: str) -> str:
    """vLLM's mamba_cache_mode for this model: "none" (one state), "align" or "all" (one state per block)."""
    if not prefix_caching or rules.mamba_cache_policy == "one":
        return "none"
    supported = architecture in rules.mamba_prefix_caching_architectures
    if rules.mamba_cache_policy == "per_block_if_supported":
        return "all" if supported else "none"  # unsupported models run with prefix caching off
    if rules.mamba_cache_policy == "all_if_supported_else_align":
        return "all" if supported else "align"
    return "align"


def mamba_blocks(state: MambaState, mode: str, rules: VersionRules) -> int:
    """State blocks one request holds: 1; 2 plus the checkpoint blocks ("align"); or one per block ("all")."""
    if mode == "all":
        return MAMBA_PER_BLOCK
    if mode == "align":
        return state.align_blocks if rules.mamba_checkpoint_blocks else 2
    return 1


def promote_to_full(pages: list[LayerPage]) -> list[LayerPage]:
    """Without the hybrid allocator a model mixing full with sliding/chunked layers is sized as all-full: those layers
    store the whole context (`unify_hybrid_kv_cache_specs`); an all-sliding model keeps its windows. Page sizes are
    unchanged, so this applies to `layer_pages`' output, Mamba padding included."""
    if not any(p.kind in ("full", "mla") for p in pages):
        return pages
    return [replace(p, kind="full", window=None) if p.kind in ("sliding", "chunked") else p for p in pages]


def _unify_page_sizes(pages: list[LayerPage]) -> list[LayerPage]:
    """Smaller attention pages get a larger block size (integer ratio) or padding; Mamba pages padding."""
    largest = max(p.page_bytes for p in pages)
    out = []
    for p in pages:
        if p.page_bytes == largest:
            out.append(p)
        elif p.kind != "mamba" and largest % p.page_bytes == 0:
            ratio = largest // p.page_bytes
            out.append(replace(p, block_size=p.block_size * ratio, page_bytes=largest))
        else:
            out.append(replace(p, page_bytes=largest))
    return out


class UnsupportedLayout(ValueError):
    """The release cannot size this mix of layers (vLLM raises NotImplementedError at start-up)."""


def kv_groups(pages: list[LayerPage], rules: VersionRules | None = None) -> list[KVGroup]:
    """Group layers as vLLM's `get_kv_cache_groups` does (whole model, before PP projection)."""
    rules = rules or rules_for(None)
    if not pages:
        return []
    if len({(p.kind, p.window, p.mamba_blocks) for p in pages}) == 1:
        if len({p.key for p in pages}) == 1:
            return [KVGroup(pages[0], tuple(range(len(pages))))]
        if not rules.merges_uneven_pages:
            raise UnsupportedLayout(f"vLLM {rules.release} cannot size layers of one kind with different page sizes")
        return [KVGroup(_summed(pages), tuple(range(len(pages))))]
    if len({p.page_bytes for p in pages}) > 1:
        if not rules.unifies_page_sizes:
            raise UnsupportedLayout(f"vLLM {rules.release} cannot size layers of different kinds with different page sizes")
        pages = _unify_page_sizes(pages)
    buckets: dict[tuple, list[int]] = {}
    for index, page in enumerate(pages):
        buckets.setdefault(page.key, []).append(index)
    sizes = [len(v) for v in buckets.values()]
    group_size = min(sizes)
    if max(sizes) < min(sizes) * rules.group_size_slack:
        group_size = max(sizes)
    groups = []
    for indices in buckets.values():
        n_groups = cdiv(len(indices), group_size)
        for i in range(n_groups):
            groups.append(KVGroup(pages[indices[0]], tuple(indices[i::n_groups])))
    return groups


def _summed(pages: list[LayerPage]) -> LayerPage:
    # Same attention type, different per-layer sizes (vLLM's UniformTypeKVCacheSpecs): one group whose
    # block costs the sum of the layers' pages; stored as the mean so that layers x page stays exact.
    return replace(pages[0], page_bytes=sum(p.page_bytes for p in pages) // len(pages))


def bytes_per_block(groups: list[KVGroup], stage_layers: set[int] | None = None) -> int:
    """The largest group's bytes per block on a worker holding `stage_layers` (all when None)."""
    best = 0
    for group in groups:
        count = len(group.layers) if stage_layers is None else sum(1 for i in group.layers if i in stage_layers)
        best = max(best, count * group.spec.page_bytes)
    return best


def blocks_per_request(group: KVGroup, max_model_len: int, inflight: int) -> int:
    spec = group.spec
    if spec.kind in ("full", "mla"):
        return cdiv(max_model_len, spec.block_size)
    if spec.kind == "sliding":
        assert spec.window is not None
        return cdiv(min(spec.window - 1 + inflight, max_model_len), spec.block_size) + 1
    if spec.kind == "chunked":
        assert spec.window is not None
        return cdiv(min(spec.window + inflight, max_model_len), spec.block_size)
    if spec.mamba_blocks == MAMBA_PER_BLOCK:
        return cdiv(max_model_len, spec.block_size)
    if spec.kind == "cross":  # the encoder's tokens, whatever the request's length (CrossAttentionSpec)
        assert spec.window is not None
        return cdiv(spec.window, spec.block_size)
    return spec.mamba_blocks


def request_blocks(groups: list[KVGroup], max_model_len: int, inflight: int) -> int:
    """R(L): blocks one full-length request takes from the shared pool, summed over groups."""
    return sum(blocks_per_request(g, max_model_len, inflight) for g in groups)


def split_layers(n_layers: int, pp: int, rules: VersionRules | None = None) -> list[range]:
    """vLLM's PP partition (`get_pp_indices`): n // pp each, the remainder one each to the stages before the
    last (0.8+), or all to the last stage (0.6, 0.7)."""
    rules = rules or rules_for(None)
    base, rest = divmod(n_layers, pp)
    sizes = [base] * pp
    if rules.pp_remainder == "last":
        sizes[-1] += rest
    for i in range(rest if rules.pp_remainder == "before_last" else 0):
        sizes[pp - 2 - i if pp > 1 else 0] += 1
    out, start = [], 0
    for size in sizes:
        out.append(range(start, start + size))
        start += size
    return out

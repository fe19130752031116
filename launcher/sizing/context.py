"""The model's context limit exactly as vLLM derives it (`_get_and_verify_max_len`), per release.

The release differences (which keys are read, whether model_max_length replaces the minimum, which RoPE types
scale the length, YaRN's original x factor before 0.30, LongRoPE's default) come from `VersionRules`; see
launcher/sizing/versions.py for the code behind each.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.model.spec import ContextFacts
from launcher.sizing.versions import VersionRules

DEFAULT_WHEN_NO_KEY = 2048


@dataclass(frozen=True)
class ContextLimit:
    derived: int  # the largest max_model_len vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN
    key: str  # the config key it came from, as vLLM names it in its error text
    default: int  # what vLLM uses when --max-model-len is not given
    yarn_factor: float | None  # YaRN factor declared in the config (a remedy beyond `derived`)
    yarn_original: int | None


def derive_context_limit(facts: ContextFacts, model_type: str, rules: VersionRules) -> ContextLimit:
    lengths = dict(facts.lengths)
    if not rules.max_target_positions_key:
        lengths.pop("max_target_positions", None)
    if lengths:
        key = min(lengths, key=lambda k: lengths[k])
        derived = lengths[key]
    else:
        key, derived = "default", float(DEFAULT_WHEN_NO_KEY)
    if facts.model_max_length and rules.model_max_length_replaces:
        key, derived = "model_max_length", facts.model_max_length

    yarn = next((r for r in facts.rope if r.rope_type in ("yarn", "deepseek_yarn")), None)
    if facts.rope and not (rules.gemma3_skips_rope_scaling and "gemma3" in model_type):
        # The factor of the last entry whose type scales; before 0.30 a yarn entry also sets the length to its
        # original_max_position_embeddings (so the result is original x factor).
        factor = 1.0
        for entry in facts.rope:
            if entry.rope_type in rules.rope_non_scaling:
                continue
            if entry.factor is not None:
                factor = entry.factor
            if entry.rope_type == "yarn" and rules.yarn_scales_max_len:
                derived = entry.original_max_position_embeddings or derived
        derived *= factor

    longrope = next((r for r in facts.rope if r.rope_type == "longrope"), None)
    default = int(derived)
    if longrope and longrope.original_max_position_embeddings and rules.longrope_default_original:
        default = longrope.original_max_position_embeddings
    return ContextLimit(
        derived=int(derived),
        key=key,
        default=default,
        yarn_factor=yarn.factor if yarn else None,
        yarn_original=yarn.original_max_position_embeddings if yarn else None,
    )

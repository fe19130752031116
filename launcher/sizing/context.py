"""The model's context limit exactly as vLLM derives it (`ModelConfig.get_and_verify_max_len`)."""

from __future__ import annotations

from dataclasses import dataclass

from launcher.model.spec import ContextFacts
from launcher.sizing.versions import VersionRules

# Rope types whose `factor` vLLM 0.32 does not multiply into the derived length.
NON_SCALING_ROPE = {"su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling"}
DEFAULT_WHEN_NO_KEY = 2048


@dataclass(frozen=True)
class ContextLimit:
    derived: int  # the largest max_model_len vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN
    key: str  # the config key it came from, as vLLM names it in its error text
    default: int  # what vLLM uses when --max-model-len is not given
    yarn_factor: float | None  # YaRN factor declared in the config (a remedy beyond `derived`)
    yarn_original: int | None


def derive_context_limit(facts: ContextFacts, model_type: str, rules: VersionRules) -> ContextLimit:
    if facts.lengths:
        key = min(facts.lengths, key=lambda k: facts.lengths[k])
        derived = facts.lengths[key]
    else:
        key, derived = "default", float(DEFAULT_WHEN_NO_KEY)
    if facts.model_max_length:
        key, derived = "model_max_length", facts.model_max_length

    yarn = next((r for r in facts.rope if r.rope_type in ("yarn", "deepseek_yarn")), None)
    if "gemma3" not in model_type:
        factor = 1.0
        for entry in facts.rope:
            if entry.factor is None:
                continue
            if entry.rope_type == "yarn" and rules.yarn_scales_max_len:
                base = entry.original_max_position_embeddings or derived
                derived, factor = base * entry.factor, 1.0
            elif entry.rope_type not in NON_SCALING_ROPE:
                factor = entry.factor
        derived *= factor

    longrope = next((r for r in facts.rope if r.rope_type == "longrope"), None)
    default = int(derived)
    if longrope and longrope.original_max_position_embeddings:
        default = longrope.original_max_position_embeddings
    return ContextLimit(
        derived=int(derived),
        key=key,
        default=default,
        yarn_factor=yarn.factor if yarn else None,
        yarn_original=yarn.original_max_position_embeddings if yarn else None,
    )

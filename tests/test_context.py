"""The context limit as vLLM derives it (memory-model notes A.1-A.3, each case verified there with vLLM 0.32)."""

import model_configs as mc
import pytest

from launcher.model.architectures import text_of
from launcher.model.config import context_facts, spec_from_config
from launcher.sizing.context import derive_context_limit
from launcher.sizing.versions import rules_for

V032 = rules_for("0.32.0")


def limit(config: dict, version: str = "0.32.0"):
    cfg = text_of(config)
    return derive_context_limit(context_facts(cfg), str(cfg.get("model_type", "")), rules_for(version))


def test_llama3_rope_does_not_scale():
    assert limit(mc.catalog("meta-llama/Llama-3.1-8B-Instruct")).derived == 131072


def test_qwen25_yarn_ignored_in_032_but_scaled_before():
    config = mc.catalog("Qwen/Qwen2.5-32B-Instruct")
    config["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert limit(config).derived == 32768
    assert limit(config, "0.10.1").derived == 131072


def test_dynamic_rope_multiplies():
    config = {"model_type": "llama", "max_position_embeddings": 4096, "rope_scaling": {"type": "dynamic", "factor": 2.0}}
    assert limit(config).derived == 8192


def test_longrope_default_is_original_length():
    config = {
        "model_type": "phi3",
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "rope_scaling": {"type": "su", "short_factor": [1.0], "long_factor": [1.0]},
    }
    result = limit(config)
    assert (result.derived, result.default) == (131072, 4096)


def test_gemma3_skips_rope_scaling():
    assert limit(mc.GEMMA3_27B).derived == 131072


def test_model_max_length_replaces_the_minimum():
    result = limit({"model_type": "cohere", "max_position_embeddings": 8192, "model_max_length": 131072})
    assert (result.derived, result.key) == (131072, "model_max_length")


def test_minimum_over_keys_and_gpt2_name():
    result = limit({"model_type": "gpt2", "n_positions": 1024, "max_seq_len": 4096})
    assert (result.derived, result.key) == (1024, "max_position_embeddings")


def test_no_key_defaults_to_2048():
    assert limit({"model_type": "x"}).derived == 2048


def test_deepseek_yarn_keeps_mpe():
    assert limit(mc.catalog("deepseek-ai/DeepSeek-V2-Lite")).derived == 163840


@pytest.mark.parametrize("repo", sorted(mc.CATALOG))
def test_catalog_models_build(repo):
    spec = spec_from_config(mc.catalog(repo), repo, weights_bytes=1, weights_source="t")
    assert spec.layers and spec.num_attention_heads > 0 and spec.vocab_size > 1000

"""Model configs for tests: real ones (sources cited) and shapes that exercise each architecture family."""

import json
from pathlib import Path

CATALOG = json.loads((Path(__file__).resolve().parent.parent / "launcher" / "data" / "catalog.json").read_text())


def catalog(repo: str) -> dict:
    return json.loads(json.dumps(CATALOG[repo]["config"]))


# google/gemma-3-27b-it text_config (huggingface.co/google/gemma-3-27b-it/blob/main/config.json): 62 layers, pattern 6.
GEMMA3_27B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": 5376,
        "intermediate_size": 21504,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "num_hidden_layers": 62,
        "max_position_embeddings": 131072,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
        "vocab_size": 262208,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
    },
}
# mistralai/Mistral-7B-v0.1 config.json: sliding_window 4096 on every layer, no layer_types.
MISTRAL_7B_V01 = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "max_position_embeddings": 32768,
    "sliding_window": 4096,
    "vocab_size": 32000,
    "torch_dtype": "bfloat16",
}
# meta-llama/Llama-4-Scout-17B-16E text_config: chunked local attention 8192, every 4th layer global (NoPE).
LLAMA4_SCOUT = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text",
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_hidden_layers": 48,
        "max_position_embeddings": 10485760,
        "attention_chunk_size": 8192,
        "num_local_experts": 16,
        "vocab_size": 202048,
    },
}
# Qwen/Qwen3-Next-80B-A3B config.json shapes: 48 layers, full attention every 4th, gated delta net elsewhere.
QWEN3_NEXT = {
    "architectures": ["Qwen3NextForCausalLM"],
    "model_type": "qwen3_next",
    "hidden_size": 2048,
    "intermediate_size": 5120,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "num_hidden_layers": 48,
    "full_attention_interval": 4,
    "linear_num_key_heads": 16,
    "linear_key_head_dim": 128,
    "linear_num_value_heads": 32,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "max_position_embeddings": 262144,
    "num_experts": 512,
    "vocab_size": 151936,
    "torch_dtype": "bfloat16",
}
# A Nemotron-H-like Mamba2 hybrid (hybrid_override_pattern: M = Mamba2, * = attention, - = MLP only).
NEMOTRON_H = {
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "nemotron_h",
    "hidden_size": 4096,
    "intermediate_size": 21504,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "num_hidden_layers": 12,
    "hybrid_override_pattern": "M-M*-M-M*-M-",
    "mamba_num_heads": 128,
    "mamba_head_dim": 64,
    "ssm_state_size": 128,
    "n_groups": 8,
    "conv_kernel": 4,
    "max_position_embeddings": 8192,
    "vocab_size": 131072,
    "torch_dtype": "bfloat16",
}
# A Gemma-3n-like model: the last 10 of 30 layers reuse earlier layers' KV (num_kv_shared_layers).
SHARED_KV = {
    "architectures": ["Gemma3nForCausalLM"],
    "model_type": "gemma3n_text",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "num_hidden_layers": 30,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 6,
    "num_kv_shared_layers": 10,
    "max_position_embeddings": 32768,
    "vocab_size": 262400,
    "torch_dtype": "bfloat16",
}
# bigcode/starcoder config.json (GPT-2 style keys): multi-query attention, 1 KV head replicated on every TP rank.
MQA = {
    "architectures": ["GPTBigCodeForCausalLM"],
    "model_type": "gpt_bigcode",
    "n_embd": 6144,
    "n_head": 48,
    "n_layer": 40,
    "multi_query": True,
    "n_positions": 8192,
    "vocab_size": 49152,
    "torch_dtype": "float16",
}

#!/usr/bin/env bash
# vLLM server for meta-llama/Llama-3.1-8B-Instruct, sized by vllm-launch 0.1.0:
#   max_model_len 58000; predicted KV cache 449,984 tokens, 7.76x concurrency
#   on 1 x H100-80GB at --gpu-memory-utilization 0.92.
# Secrets come from the environment (HF_TOKEN, VLLM_API_KEY), never from this file. Extra arguments are passed to vLLM.
set -euo pipefail
exec vllm serve meta-llama/Llama-3.1-8B-Instruct --max-model-len 58000 --gpu-memory-utilization 0.92 --port 8000 "$@"

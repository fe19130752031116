"""Runs inside the vLLM CPU venv: the fused-MoE workspace vLLM 0.32 reserves for given problem sizes.

Input (stdin): a JSON list of {"M", "N", "K", "topk", "experts", "dtype_bytes"}. Output (stdout): a JSON list of
byte counts. The shapes come from vLLM's own TritonExperts.workspace_shapes and the byte sizes and 256-byte
alignment from its WorkspaceManager helpers; they are combined as FusedMoEKernel._allocate_buffers
(model_executor/layers/fused_moe/modular_kernel.py) does: one region for max(workspace13, output), one for
workspace2, taken together by WorkspaceManager.get_simultaneous.
"""

import json
import sys
from math import prod

import torch
from vllm.model_executor.layers.fused_moe.activation import MoEActivation
from vllm.model_executor.layers.fused_moe.experts.triton_moe import TritonExperts
from vllm.utils.math_utils import round_up
from vllm.v1.worker.workspace import _compute_bytes

DTYPES = {2: torch.bfloat16, 4: torch.float32}


class _Shapes:
    adjust_N_for_activation = staticmethod(TritonExperts.adjust_N_for_activation)


out = []
for case in json.load(sys.stdin):
    ws13, ws2, fused_out = TritonExperts.workspace_shapes(
        _Shapes(), case["M"], case["N"], case["K"], case["topk"], case["experts"], case["experts"], None, MoEActivation.SILU
    )
    dtype = DTYPES[case["dtype_bytes"]]
    regions = [((max(prod(ws13), prod(fused_out)),), dtype), (ws2, dtype)]
    out.append(sum(round_up(_compute_bytes(shape, d), 256) for shape, d in regions))
json.dump(out, sys.stdout)

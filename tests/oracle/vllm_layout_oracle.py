"""Runs INSIDE the vLLM (CPU build) venv: what vLLM's own code makes of a TP x PP x DP layout, for
tests/test_differential_layouts.py. Reads a JSON list of cases on stdin, prints one JSON list.

Each case: {"kv": [replica, ...] with replica = a tests/oracle/vllm_kv_oracle.py case (the TP x PP workers of one
data-parallel engine), "num_layers", "pp", "num_experts", "tp", "dp", "expert_parallel"}. Output per case:
- "replicas": vllm_kv_oracle's answer for each replica (`get_kv_cache_configs` over its workers);
- "pp_ranges": `vllm.distributed.utils.get_pp_indices` for every stage;
- "expert_shares": per (dp_rank, tp_rank), the fraction of a MoE layer's routed-expert weights the rank holds, from
  `FusedMoEParallelConfig.make` (experts shard over TP x DP ranks) and `determine_expert_map` (whole experts with EP).
"""

import json
import sys
from types import SimpleNamespace as NS

from vllm.distributed.utils import get_pp_indices
from vllm.model_executor.layers.fused_moe import config as moe_config
from vllm.model_executor.layers.fused_moe.expert_map_manager import determine_expert_map
from vllm_kv_oracle import run as kv_run


def expert_shares(num_experts, tp, dp, expert_parallel):
    shares = []
    for dp_rank in range(dp):
        for tp_rank in range(tp):
            # The ranks come from torch.distributed groups that do not exist here; make() reads them through these names.
            moe_config.get_dp_group = lambda rank=dp_rank: NS(rank_in_group=rank)
            moe_config.get_tensor_model_parallel_rank = lambda rank=tp_rank: rank
            parallel = NS(enable_expert_parallel=expert_parallel, all2all_backend="allgather_reducescatter", enable_eplb=False)
            made = moe_config.FusedMoEParallelConfig.make(tp_size_=tp, pcp_size_=1, dp_size_=dp, sp_size_=1, vllm_parallel_config=parallel)
            local, _, _ = determine_expert_map(made.ep_size, made.ep_rank, num_experts)
            shares.append(local / num_experts / made.tp_size)
    return shares


def run(case):
    out = {
        "replicas": [kv_run(replica) for replica in case["kv"]],
        "pp_ranges": [list(get_pp_indices(case["num_layers"], rank, case["pp"])) for rank in range(case["pp"])],
    }
    if case["num_experts"]:
        out["expert_shares"] = expert_shares(case["num_experts"], case["tp"], case["dp"], case["expert_parallel"])
    return out


if __name__ == "__main__":
    print(json.dumps([run(case) for case in json.load(sys.stdin)]))

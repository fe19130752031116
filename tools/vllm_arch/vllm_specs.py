"""Runs INSIDE the vLLM CPU venv: build each model from a config with vLLM's own code, read the KV-cache spec
vLLM allocates per layer, and size it with vLLM's own `get_kv_cache_configs`.

    VENV/bin/python tools/vllm_arch/vllm_specs.py CASES.json > RESULTS.json

CASES.json: a list of {"name", "config", "scenarios": [{"max_model_len", "kv_cache_memory_bytes"?}]}.
A scenario without `kv_cache_memory_bytes` is sized to fit ~3 requests; one with `"tight": true` gets 60% of
what one request needs, so vLLM's "estimated maximum model length" path runs too.

Each case runs in a forked child (imports are paid once) on vLLM's CPU worker path: EngineArgs ->
VllmConfig, the CPU model runner loads the model with dummy weights (`load_format="dummy"`), and
`get_kv_cache_spec()` returns what the engine core would receive; `get_kv_cache_configs` then sizes it the way
`EngineCore._initialize_kv_caches` does (vLLM 0.32 `v1/engine/core.py`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

import torch  # noqa: E402
from vllm.config import set_current_vllm_config  # noqa: E402
from vllm.distributed import init_distributed_environment, initialize_model_parallel  # noqa: E402
from vllm.engine.arg_utils import EngineArgs  # noqa: E402
from vllm.v1.attention.backends.utils import get_supported_kv_cache_layouts, resolve_kv_cache_layout  # noqa: E402
from vllm.v1.core import kv_cache_utils as ku  # noqa: E402
from vllm.v1.core.single_type_kv_cache_manager import register_all_kvcache_specs  # noqa: E402
from vllm.v1.worker.cpu_model_runner import CPUModelRunner  # noqa: E402

GiB = 1 << 30
FIT_BYTES = 256 << 20


def describe(spec) -> dict:
    """The facts of one KVCacheSpec that sizing depends on (plain JSON)."""
    out = {"type": type(spec).__name__, "block_size": spec.block_size, "page_size_bytes": spec.page_size_bytes}
    for attr in ("num_kv_heads", "head_size", "head_size_v", "sliding_window", "attention_chunk_size", "page_size_padded"):
        value = getattr(spec, attr, None)
        if value is not None:
            out[attr] = value
    if getattr(spec, "dtype", None) is not None:
        out["dtype"] = str(spec.dtype).replace("torch.", "")
    if getattr(spec, "shapes", None) is not None:
        out["shapes"] = [list(s) for s in spec.shapes]
        out["dtypes"] = [str(d).replace("torch.", "") for d in spec.dtypes]
    for attr in ("num_prefill_checkpoint_blocks", "num_speculative_blocks", "mamba_cache_mode", "max_encoder_tokens"):
        value = getattr(spec, attr, None)
        if value is not None and not callable(value):
            out[attr] = value if isinstance(value, (int, str)) else str(value)
    return out


def size(vc, specs: dict, length: int, available: int) -> dict:
    vc.model_config.max_model_len = length
    out: dict = {"max_model_len": length, "kv_cache_memory_bytes": available}
    try:
        configs = ku.get_kv_cache_configs(vc, [specs], [available])
    except ValueError as exc:
        text = str(exc)
        marker = "estimated maximum model length is "
        out.update(fits=False, estimate=int(text.split(marker)[1].split(".")[0]) if marker in text else 0, error=text[:400])
        return out
    config = configs[0]
    concurrency = ku.get_max_concurrency_for_kv_cache_config(vc, config)
    out.update(
        fits=True,
        num_blocks=config.num_blocks,
        max_concurrency=concurrency,
        kv_cache_tokens=int(concurrency * length),
        groups=[len(g.layer_names) for g in config.kv_cache_groups],
        bytes_per_block=ku._pool_bytes_per_block(vc, config.kv_cache_groups),
    )
    return out


def run_case(case: dict, port: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(case["config"], f)
        first = case["scenarios"][0]["max_model_len"]
        args = EngineArgs(
            model=tmp,
            load_format="dummy",
            skip_tokenizer_init=True,
            max_model_len=first,
            enforce_eager=True,
            kv_cache_memory_bytes=FIT_BYTES,
            **case.get("engine_args", {}),
        )
        vc = args.create_engine_config()
        with set_current_vllm_config(vc):
            init_distributed_environment(
                world_size=1, rank=0, distributed_init_method=f"tcp://127.0.0.1:{port}", local_rank=0, backend="gloo"
            )
            initialize_model_parallel(1, 1)
            runner = CPUModelRunner(vc, torch.device("cpu"))
            runner.load_model()
            specs = runner.get_kv_cache_spec()
            register_all_kvcache_specs(vc)
            from vllm.distributed.kv_transfer.kv_connector.utils import get_current_attn_backends  # noqa: PLC0415

            layouts = [layout.name for layout in get_supported_kv_cache_layouts(get_current_attn_backends(vc))]
            resolve_kv_cache_layout(vc, [layouts], list(specs.values()))
            result = {
                "name": case["name"],
                "block_size": vc.cache_config.block_size,
                "max_num_batched_tokens": vc.scheduler_config.max_num_batched_tokens,
                "layers": {name: describe(spec) for name, spec in specs.items()},
                "shared": dict(getattr(runner, "shared_kv_cache_layers", {}) or {}),
                "scenarios": [],
            }
            for scenario in case["scenarios"]:
                length = scenario["max_model_len"]
                fit = size(vc, specs, length, scenario.get("kv_cache_memory_bytes", FIT_BYTES))
                if scenario.get("tight") and fit.get("fits"):
                    need = round(fit["num_blocks"] / fit["max_concurrency"])  # blocks one request takes
                    tight = (need * 6 // 10 + 1) * fit["bytes_per_block"] + fit["bytes_per_block"] // 2
                    result["scenarios"].append(size(vc, specs, length, tight))
                else:
                    result["scenarios"].append(fit)
            return result


def main() -> None:
    cases = json.load(open(sys.argv[1]))
    results = []
    for index, case in enumerate(cases):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                payload = run_case(case, 29600 + index % 300)
            except BaseException as exc:  # the child reports any failure as data
                payload = {"name": case["name"], "error": f"{type(exc).__name__}: {exc}"[:2000], "trace": traceback.format_exc()[-3000:]}
            with os.fdopen(write, "w") as f:
                json.dump(payload, f)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            text = f.read()
        os.waitpid(pid, 0)
        results.append(json.loads(text) if text else {"name": case["name"], "error": "child died without a result"})
        print(f"{case['name']}: {results[-1].get('error', 'ok')[:200]}", file=sys.stderr)
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()

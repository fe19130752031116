"""Runs INSIDE an interpreter with torch (the vLLM CPU venv): one vLLM release's own KV-cache sizing code on a list
of cases, read as JSON from stdin; prints {"loader": ..., "answers": [...]} as JSON.

Usage: python run_release.py /work/vllm-src/vllm-0.10.2 < cases.json

V1 releases (0.8+): the layer specs of each worker become the release's own `KVCacheSpec` classes and go through
its `get_kv_cache_config` + `unify_kv_cache_configs` (0.8-0.10) or `get_kv_cache_configs` (0.11+), then its
capacity report (`update_kv_cache_capacity`, 0.29+). The KV-size and concurrency log lines are read back from
the release's logger, the concurrency itself from `get_max_concurrency_for_kv_cache_config` where it exists.
V0 (case["engine"] == "v0"): the release's `CacheEngine.get_cache_block_size`, run on its own `ModelConfig`
geometry methods (get_head_size, get_num_kv_heads, get_num_layers_by_block_type ... taken from its config.py and
executed on the HF config), `raise_if_cache_size_invalid` and the executor's `initialize_cache` log lines. The
block count itself (`int(available // cache_block_size)`) is one line inside the worker's profiling method,
which needs CUDA; it is repeated here (worker/worker.py, determine_num_available_blocks).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace as NS

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release_loader  # noqa: E402

DTYPES = {1: torch.float8_e4m3fn, 2: torch.bfloat16, 4: torch.float32}
TOKENS_RE = re.compile(r"KV cache size: ([\d,]+) tokens")
BLOCKS_RE = re.compile(r"# GPU blocks: (\d+)")
CONC_RE = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")
ESTIMATE_RE = re.compile(r"estimated maximum model length is (\d+)")


def extract_functions(path: Path, owner: str | None, names: set[str], namespace: dict) -> dict:
    """Compile selected functions (or methods of class `owner`), and module-level assignments, from a release file
    into `namespace`."""
    tree = ast.parse(path.read_text())
    body = tree.body
    if owner:
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner).body
    out = {}
    for node in body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in node.targets):
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
            out.update({t.id: namespace[t.id] for t in node.targets if isinstance(t, ast.Name)})
        if isinstance(node, ast.FunctionDef) and node.name in names:
            node.decorator_list = []  # property/staticmethod/cache: called here as plain functions
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(ast.fix_missing_locations(module), str(path), "exec"), namespace)
            out[node.name] = namespace[node.name]
    return out


# ---------------------------------------------------------------- V1


def make_spec(ki, layer: dict, case: dict):
    fields = {}
    kind = layer["kind"]
    dtype = DTYPES[layer["dtype_bytes"]]
    if kind == "mamba":
        cls = ki.MambaSpec
        fields = {
            "block_size": layer.get("block_size", case["block_size"]),
            "shapes": tuple(tuple(s) for s in layer["mamba_shapes"]),
            "dtypes": tuple(DTYPES[b] for b in layer["mamba_dtype_bytes"]),
            "dtype": DTYPES[layer["mamba_dtype_bytes"][0]],  # 0.9's single-dtype MambaSpec
            "page_size_padded": layer.get("page_size_padded"),
            "mamba_cache_mode": case["mamba_cache_mode"],
            "num_prefill_checkpoint_blocks": layer.get("checkpoint_blocks", 0),
        }
    else:
        common = {
            "block_size": case["block_size"],
            "num_kv_heads": layer["kv_heads"],
            "head_size": layer["head_size"],
            "dtype": dtype,
            "use_mla": kind == "mla",
        }
        if kind == "mla":
            cls = getattr(ki, "MLAAttentionSpec", None) or ki.FullAttentionSpec
            fields = dict(common, num_kv_heads=1)
        elif kind == "sliding":
            cls = ki.SlidingWindowSpec
            fields = dict(common, sliding_window=layer["window"])
        elif kind == "chunked":
            cls = ki.ChunkedLocalAttentionSpec
            fields = dict(common, attention_chunk_size=layer["window"])
        else:
            cls = ki.FullAttentionSpec
            fields = common
    names = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in fields and _required(f)]
    if missing:
        raise RuntimeError(f"{cls.__name__} needs {missing}, which the case does not describe")
    return cls(**{k: v for k, v in fields.items() if k in names})


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def release_defaults(src: Path, module: str, cls: str) -> dict:
    """The literal defaults of a config class in this release (`x: int = 3`, `x: int = Field(default=3)`)."""
    root = src / "vllm"
    path = root / "config" / f"{module}.py"
    if not path.is_file():
        path = root / "config.py" if (root / "config.py").is_file() else root / "config" / "__init__.py"
    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
    out: dict = {}
    for item in node.body if node else []:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None):
            continue
        value = item.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
            value = next((k.value for k in value.keywords if k.arg == "default"), None)
        try:
            out[item.target.id] = ast.literal_eval(value) if value is not None else None
        except ValueError:
            continue
    return out


def vllm_config(case: dict, src: Path) -> NS:
    """The config the KV functions read: the release's own class defaults, with the case's values on top."""
    use_mla = any(layer["kind"] == "mla" for layer in case["layer_specs"])
    model = NS(**release_defaults(src, "model", "ModelConfig"))
    model.__dict__.update(max_model_len=case["max_model_len"], original_max_model_len=case["max_model_len"], use_mla=use_mla)
    # 0.33: only models implementing SupportsKVCacheGrouping (DeepSeek-V4) group themselves; none of the cases do.
    model.supports_kv_cache_grouping = False
    parallel = NS(**release_defaults(src, "parallel", "ParallelConfig"))
    parallel.__dict__.update(
        tensor_parallel_size=case["tp"],
        pipeline_parallel_size=case["pp"],
        decode_context_parallel_size=1,
        prefill_context_parallel_size=1,
    )
    cache = NS(**release_defaults(src, "cache", "CacheConfig"))
    cache.__dict__.update(
        block_size=case["block_size"],
        num_gpu_blocks_override=None,
        mamba_cache_mode=case["mamba_cache_mode"],
        enable_prefix_caching=case["mamba_cache_mode"] != "none",
        kv_cache_layout="NHD",
    )
    scheduler = NS(**release_defaults(src, "scheduler", "SchedulerConfig"))
    scheduler.__dict__.update(
        max_num_batched_tokens=case["max_num_batched_tokens"],
        disable_hybrid_kv_cache_manager=case["disable_hybrid"],
        max_num_encoder_input_tokens=0,
        async_scheduling=case["async_scheduling"],
    )
    cfg = NS(
        model_config=model,
        parallel_config=parallel,
        cache_config=cache,
        scheduler_config=scheduler,
        device_config=NS(device_type="cuda"),
        attention_config=NS(hisparse_config=None),
        speculative_config=None,
        kv_transfer_config=None,
        num_prefill_lookahead_tokens=0,
        use_v2_model_runner=case["v2_model_runner"],
    )
    # The KV cache layout (0.29+) as the engine core resolves it for FlashAttention on CUDA: "NHD" (layer-compact),
    # read through the release's own CacheConfig.get_resolved_kv_cache_layout.
    cache_file = src / "vllm" / "config" / "cache.py"
    if cache_file.is_file() and "def get_resolved_kv_cache_layout" in cache_file.read_text():
        layout = sys.modules["vllm.v1.kv_cache_layout"].KVCacheLayout
        ns = extract_functions(cache_file, None, {"_LAYOUT_COMPAT_ALIASES", "_layout_from_name"}, {"KVCacheLayout": layout})
        method = extract_functions(cache_file, "CacheConfig", {"get_resolved_kv_cache_layout"}, dict(ns, KVCacheLayout=layout))
        cfg.cache_config.get_resolved_kv_cache_layout = lambda: method["get_resolved_kv_cache_layout"](cfg.cache_config)
    # The in-flight term of sliding/chunked specs (0.26+) is a VllmConfig property: use the release's own code.
    config_file = src / "vllm" / "config" / "vllm.py"
    if config_file.is_file() and "def max_in_flight_tokens" in config_file.read_text():
        funcs = extract_functions(config_file, "VllmConfig", {"max_concurrent_batches", "max_in_flight_tokens"}, {})
        cfg.max_concurrent_batches = funcs["max_concurrent_batches"](cfg)
        cfg.max_in_flight_tokens = funcs["max_in_flight_tokens"](cfg)
    return cfg


def run_v1(mods: dict, case: dict, src: Path, messages: list[str]) -> dict:
    ki, ku = mods["vllm.v1.kv_cache_interface"], mods["vllm.v1.core.kv_cache_utils"]
    planning = mods.get("vllm.v1.core.kv_cache_planning")
    api = types.SimpleNamespace(**{**vars(ku), **(vars(planning) if planning else {})})
    cfg = vllm_config(case, src)
    workers = [
        {f"layers.{index}": make_spec(ki, case["layer_specs"][spec], case) for index, spec in stage}
        for stage in case["stages"]
        for _ in range(case["tp"])
    ]
    available = list(case["available"])
    out: dict = {"fits": True, "estimate": None, "error": None}
    del messages[:]
    try:
        if hasattr(api, "get_global_kv_cache_groups"):  # 0.33: the engine core groups first, then configures
            groups = api.get_global_kv_cache_groups(cfg, workers)
            configs = api.get_kv_cache_configs(cfg, workers, available, groups)
        elif hasattr(api, "get_kv_cache_configs"):
            configs = api.get_kv_cache_configs(cfg, workers, available)
        else:
            configs = [api.get_kv_cache_config(cfg, spec, mem) for spec, mem in zip(workers, available, strict=True)]
            # 0.8-0.10 log each worker's own numbers before the block counts are unified.
            if hasattr(api, "get_max_concurrency_for_kv_cache_config"):
                out["worker_concurrency"] = [api.get_max_concurrency_for_kv_cache_config(cfg, c) for c in configs]
            api.unify_kv_cache_configs(configs)
    except ValueError as exc:
        text = str(exc)
        out.update(fits=False, error=text)
        match = ESTIMATE_RE.search(text)
        out["estimate"] = int(match[1]) if match else 0
        if "No available memory" not in text and hasattr(api, "estimate_max_model_len") and not match:
            # 0.8's message drops the number (a stray f-string); the release's own estimate is still computed.
            worst = min(range(len(workers)), key=lambda i: available[i])
            cfg.model_config.max_model_len = case["max_model_len"]
            out["estimate"] = api.estimate_max_model_len(cfg, workers[worst], available[worst])
        return out
    sched = api.generate_scheduler_kv_cache_config(configs) if hasattr(api, "generate_scheduler_kv_cache_config") else configs[0]
    if hasattr(api, "update_kv_cache_capacity"):
        api.update_kv_cache_capacity(cfg, sched)
    out["num_blocks"] = sched.num_blocks
    out["groups"] = [len(g.layer_names) for g in sched.kv_cache_groups]
    out["group_block_sizes"] = [g.kv_cache_spec.block_size for g in sched.kv_cache_groups]
    if "worker_concurrency" in out:
        out["max_concurrency"] = min(out.pop("worker_concurrency"))
    elif hasattr(api, "get_max_concurrency_for_kv_cache_config"):
        out["max_concurrency"] = api.get_max_concurrency_for_kv_cache_config(cfg, sched)
    tokens = [int(m[1].replace(",", "")) for m in map(TOKENS_RE.search, messages) if m]
    conc = [float(m[2]) for m in map(CONC_RE.search, messages) if m]
    out["log"] = [m for m in messages if TOKENS_RE.search(m) or CONC_RE.search(m)]
    # Releases before 0.11 log once per worker, before the block counts are unified: the smallest is the pool.
    out["kv_cache_tokens"] = min(tokens)
    out["logged_concurrency"] = min(conc)
    return out


# ---------------------------------------------------------------- V0


class _Enum(str):
    @property
    def value(self):
        return str(self)


def run_v0(src: Path, case: dict, messages: list[str]) -> dict:
    """The release's V0 geometry on the HF config, per worker, then the block count and the start-up check."""
    root = src / "vllm"
    config_py = root / "config.py" if (root / "config.py").is_file() else root / "config" / "__init__.py"
    envs = NS(VLLM_PP_LAYER_PARTITION=None, VLLM_MLA_DISABLE=False)
    ns: dict = {"envs": envs, "LayerBlockType": NS(attention=_Enum("attention"), mamba=_Enum("mamba")), "Tuple": tuple}
    dist_utils = root / "distributed" / "utils.py"
    get_pp = extract_functions(
        dist_utils, None, {"get_pp_indices"}, {"envs": envs, "Tuple": tuple, "logger": release_loader.CaptureLogger([])}
    )["get_pp_indices"]
    ns["get_pp_indices"] = get_pp
    sys.modules["vllm.distributed.utils"] = NS(get_pp_indices=get_pp)
    geometry = {
        "get_head_size",
        "get_total_num_kv_heads",
        "get_num_kv_heads",
        "get_layers_start_end_indices",
        "get_num_layers",
        "get_num_layers_by_block_type",
        "get_num_attention_layers",
        "is_deepseek_mla",
        "use_mla",
        "_verify_with_expert_parallelism",
    }
    methods = extract_functions(config_py, "ModelConfig", geometry, ns)
    hf = _namespace(case["hf_config"])
    cache_engine = root / "worker" / "cache_engine.py"
    get_dtype_size = extract_functions(_utils_file(root), None, {"get_dtype_size"}, {"torch": torch})["get_dtype_size"]
    engine_ns = {
        "get_dtype_size": get_dtype_size,
        # vllm/utils.py STR_DTYPE_TO_TORCH_DTYPE: every fp8 cache dtype is stored as uint8 (1 byte)
        "STR_DTYPE_TO_TORCH_DTYPE": {"fp8": torch.uint8, "fp8_e4m3": torch.uint8, "fp8_e5m2": torch.uint8},
        "LayerBlockType": ns["LayerBlockType"],
        "torch": torch,
        "current_platform": release_loader.FakeCudaPlatform(),
        "envs": NS(VLLM_CUDA_MEM_ALIGN_KV_CACHE=True),  # 0.7.3 vllm/envs.py:583 default "1"
    }
    engine_ns.update(extract_functions(_utils_file(root), None, {"align_to_256bytes", "round_up", "cdiv"}, engine_ns))
    helpers = extract_functions(cache_engine, "CacheEngine", {"_align_cache"}, engine_ns)
    engine_ns["CacheEngine"] = NS(**{k: v for k, v in helpers.items()})
    block_size_fn = extract_functions(cache_engine, "CacheEngine", {"get_cache_block_size"}, engine_ns)["get_cache_block_size"]
    worker_py = root / "worker" / "worker.py"
    check = extract_functions(worker_py, None, {"raise_if_cache_size_invalid"}, {})["raise_if_cache_size_invalid"]

    class FakeModelConfig:
        pass

    for name, fn in methods.items():
        setattr(FakeModelConfig, name, fn)
    for name in ("is_deepseek_mla", "use_mla"):  # properties in the release's ModelConfig
        if name in methods:
            setattr(FakeModelConfig, name, property(methods[name]))
    model = FakeModelConfig()
    model.hf_config = hf
    model.hf_text_config = hf
    model.is_attention_free = False
    model.is_hybrid = case["is_hybrid"]  # the model registry's IsHybrid (Mamba hybrids)
    model.has_noops = False
    _add_vllm_config_properties(root, hf)
    model.dtype = DTYPES[case["model_dtype_bytes"]]
    model.max_model_len = case["max_model_len"]
    model.use_async_output_proc = False
    model.multimodal_config = None
    if "use_mla" not in methods:
        model.use_mla = False
    cache = NS(block_size=case["block_size"], cache_dtype=case["kv_cache_dtype"])
    sizes = []
    for rank in range(case["tp"] * case["pp"]):
        parallel = NS(tensor_parallel_size=case["tp"], pipeline_parallel_size=case["pp"], rank=rank)
        sizes.append(block_size_fn(cache, model, parallel))
    blocks = [int(mem // size) for mem, size in zip(case["available"], sizes, strict=True)]  # worker.determine_num_available_blocks
    num_blocks = max(min(blocks), 0)  # the executor takes the minimum over workers
    out = {"cache_block_size": sizes, "num_blocks": num_blocks, "fits": True, "estimate": None, "error": None}
    arguments = [num_blocks, case["block_size"], False, case["max_model_len"], case["pp"]]
    try:
        check(*arguments[: check.__code__.co_argcount])  # 0.8+ takes pipeline_parallel_size
    except ValueError as exc:
        text = str(exc)
        out.update(fits=False, error=text)
        match = re.search(r"stored in KV cache \((\d+)\)", text)
        out["estimate"] = int(match[1]) if match else 0
    # The executor's log lines, from its own initialize_cache (logged before the workers allocate).
    executor = root / "executor" / "executor_base.py"
    if not executor.is_file() or "Maximum concurrency" not in executor.read_text():
        executor = root / "executor" / "distributed_gpu_executor.py"
    logger = release_loader.CaptureLogger(messages)
    del messages[:]
    platform = release_loader.FakeCudaPlatform()
    init = extract_functions(
        executor,
        _owner_of(executor, "initialize_cache"),
        {"initialize_cache"},
        {"logger": logger, "vllm": NS(platforms=NS(current_platform=platform))},
    )
    fake = NS(
        cache_config=NS(block_size=case["block_size"], num_gpu_blocks=None, num_cpu_blocks=None),
        model_config=NS(max_model_len=case["max_model_len"]),
        collective_rpc=lambda *args, **kwargs: None,
        _run_workers=lambda *args, **kwargs: None,
        driver_worker=NS(initialize_cache=lambda *args, **kwargs: None),
        vllm_config=NS(device_config=NS(device_type="cuda")),
    )
    fake.cache_config.num_gpu_blocks = num_blocks
    init["initialize_cache"](fake, num_blocks, 0)
    out["log"] = list(messages)
    conc = [float(m[2]) for m in map(CONC_RE.search, messages) if m]
    out["logged_concurrency"] = conc[0] if conc else None
    out["max_concurrency"] = num_blocks * case["block_size"] / case["max_model_len"]
    out["kv_cache_tokens"] = num_blocks * case["block_size"]
    return out


def _add_vllm_config_properties(root: Path, hf: dict) -> None:
    """Properties vLLM's own config class of this model type adds (NemotronHConfig.layers_block_type)."""
    path = root / "transformers_utils" / "configs" / f"{hf.get('model_type', '')}.py"
    if not path.is_file():
        return
    tree = ast.parse(path.read_text())
    owner = next((n.name for n in tree.body if isinstance(n, ast.ClassDef)), None)
    props = extract_functions(path, owner, {"layers_block_type"}, {}) if owner else {}
    if "layers_block_type" in props:
        hf["layers_block_type"] = props["layers_block_type"](hf)


def _utils_file(root: Path) -> Path:
    return root / "utils.py" if (root / "utils.py").is_file() else root / "utils" / "__init__.py"


def _owner_of(path: Path, method: str) -> str:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(isinstance(n, ast.FunctionDef) and n.name == method for n in node.body):
            return node.name
    raise LookupError(f"{method} not in {path}")


def _namespace(value):
    if isinstance(value, dict):
        return _AttrDict({k: _namespace(v) for k, v in value.items()})
    return value


class _AttrDict(dict):
    """HF configs are read both as attributes and as mappings (`"kv_n_heads" in attn_config`), with the aliases of
    transformers' `PretrainedConfig.attribute_map` for the GPT-2 style names (GPTBigCodeConfig, GPT2Config)."""

    ALIASES = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "n_positions",
    }

    def __getattr__(self, name):
        if name in self:
            return self[name]
        if name in self.ALIASES and self.ALIASES[name] in self:
            return self[self.ALIASES[name]]
        raise AttributeError(name)


def main() -> int:
    src = Path(sys.argv[1])
    cases = json.load(sys.stdin)
    answers = []
    loader = None
    mods: dict = {}
    if any(c["engine"] == "v1" for c in cases):
        names = ["vllm.v1.kv_cache_interface", "vllm.v1.core.kv_cache_utils"]
        if (src / "vllm" / "v1" / "core" / "kv_cache_planning.py").is_file():
            names.append("vllm.v1.core.kv_cache_planning")
        loader, loaded = release_loader.load(src, *names)
        mods = dict(zip(names, loaded, strict=True))
    messages = loader.messages if loader else []
    for case in cases:
        try:
            if case["engine"] == "v1":
                answers.append(run_v1(mods, case, src, messages))
            else:
                answers.append(run_v0(src, case, messages))
        except release_loader.StubUsed:
            raise  # the harness is incomplete for this release: fail, never record a wrong answer
        except (NotImplementedError, AssertionError) as exc:
            # The release's own code rejects this layout (e.g. 0.10 with uneven page sizes): recorded as such.
            answers.append({"unsupported": f"{type(exc).__name__}: {exc}"[:500]})
    report = loader.report() if loader else {}
    print(json.dumps({"loader": report, "answers": answers}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

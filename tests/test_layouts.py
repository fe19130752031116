"""Layouts: data/expert parallelism in the engine, the ranked TP x PP x DP search, capacity planning over GPU types,
the renderers, and the Python API. Every layout row is checked against a direct engine plan of that layout."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import model_configs as mc
import pytest
import yaml
from helpers import require_tool, run_cli, write_model_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.hardware import CUDA_CONTEXT_BYTES, GPU_PRESETS, GiB, Gpu, GpuInventory, GpuProcess, inventory_from_preset
from launcher.model.config import spec_from_config
from launcher.sizing import layouts
from launcher.sizing.plan import AUTO, Requirements, assess, expert_share, make_plan, rope_cache_bytes


def catalog_spec(repo: str):
    entry = mc.CATALOG[repo]
    return spec_from_config(entry["config"], repo, weights_bytes=entry["weights_bytes"], weights_source="catalog")


LLAMA8 = catalog_spec("meta-llama/Llama-3.1-8B-Instruct")
QWEN32 = catalog_spec("Qwen/Qwen2.5-32B-Instruct")
GPT_OSS = catalog_spec("openai/gpt-oss-20b")
DEEPSEEK_LITE = catalog_spec("deepseek-ai/DeepSeek-V2-Lite")
H100x8 = inventory_from_preset("H100-80GB", 8)
ROW_KEYS = {
    "gpu",
    "gpus",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "kv_cache_tokens",
    "max_concurrency",
    "total_concurrency",
    "fits",
    "recommended",
}


def shape_of(plan) -> tuple[int, int, int]:
    return plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.data_parallel_size


# --- the engine: data parallelism -----------------------------------------------------------------------------------


def test_dense_replicas_each_hold_what_one_engine_holds():
    one = assess(LLAMA8, H100x8, Requirements(max_model_len=32768))
    four = assess(LLAMA8, H100x8, Requirements(max_model_len=32768, data_parallel_size=4))
    assert (four.num_gpu_blocks, four.kv_cache_tokens, four.memory) == (one.num_gpu_blocks, one.kv_cache_tokens, one.memory)
    assert four.total_concurrency == pytest.approx(4 * one.max_concurrency)
    assert four.gpu_indices == (0, 1, 2, 3)
    assert four.vllm_args[four.vllm_args.index("--data-parallel-size") + 1] == "4"


def test_data_parallel_needs_a_gpu_per_rank():
    plan = assess(
        LLAMA8, inventory_from_preset("H100-80GB", 4), Requirements(max_model_len=8192, tensor_parallel_size=2, data_parallel_size=3)
    )
    assert not plan.fits and any("TP x PP x DP = 6 GPUs" in p for p in plan.problems)


def test_min_concurrency_counts_every_replica():
    one = assess(LLAMA8, H100x8, Requirements(max_model_len=32768))
    target = one.max_concurrency * 1.5
    assert not assess(LLAMA8, H100x8, Requirements(max_model_len=32768, min_concurrency=target)).fits
    two = assess(LLAMA8, H100x8, Requirements(max_model_len=32768, min_concurrency=target, data_parallel_size=2))
    assert two.fits


def test_a_busy_gpu_in_the_second_replica_is_seen():
    # vLLM gives DP rank d the GPUs [d*TP*PP, (d+1)*TP*PP) and each checks its own free memory.
    held = GpuProcess(99, 60 * GiB, "other")
    gpus = [Gpu(i, "H100", H100x8.gpus[0].total_bytes, H100x8.gpus[0].free_bytes) for i in range(4)]
    gpus[2] = replace(gpus[2], free_bytes=gpus[2].total_bytes - 60 * GiB - CUDA_CONTEXT_BYTES, processes=(held,))
    inv = GpuInventory(tuple(gpus), "nvml")
    assert assess(LLAMA8, inv, Requirements(max_model_len=8192, data_parallel_size=2)).fits
    plan = assess(LLAMA8, inv, Requirements(max_model_len=8192, data_parallel_size=3))
    assert not plan.fits and any("pid 99" in p for p in plan.problems)


# --- the engine: MoE weights over TP x DP ---------------------------------------------------------------------------


def test_moe_experts_split_over_tp_times_dp_and_the_rest_over_tp():
    w = GPT_OSS.weights
    assert 0 < w.expert_bytes < w.total_bytes and GPT_OSS.num_experts == 32
    one = assess(GPT_OSS, H100x8, Requirements(max_model_len=8192))
    dp2 = assess(GPT_OSS, H100x8, Requirements(max_model_len=8192, data_parallel_size=2))
    tp2 = assess(GPT_OSS, H100x8, Requirements(max_model_len=8192, tensor_parallel_size=2))
    rope = rope_cache_bytes(GPT_OSS, "bfloat16")  # every rank holds the whole rotary cache
    assert one.memory.weights == w.total_bytes + rope
    assert dp2.memory.weights == w.total_bytes - w.expert_bytes + w.expert_bytes // 2 + rope  # attention replicated per DP rank
    assert abs(tp2.memory.weights - rope - w.total_bytes / 2) < 2
    assert dp2.memory.weights > tp2.memory.weights


def test_dense_weights_do_not_shrink_with_data_parallelism():
    one = assess(LLAMA8, H100x8, Requirements(max_model_len=8192))
    dp4 = assess(LLAMA8, H100x8, Requirements(max_model_len=8192, data_parallel_size=4, enable_expert_parallel=True))
    assert dp4.memory.weights == one.memory.weights


@pytest.mark.parametrize(("experts", "tp", "dp", "ep", "local"), [(32, 1, 2, True, 16), (64, 1, 3, True, 22), (64, 2, 3, False, None)])
def test_expert_share_follows_vllms_split(experts, tp, dp, ep, local):
    share = expert_share(experts, tp, dp, ep)
    if local is None:  # without EP every rank holds a 1/(TP x DP) slice of every expert
        assert share == pytest.approx(1 / (tp * dp))
    else:  # with EP whole experts; the first E mod (TP x DP) ranks hold one more, and the fullest rank sets the budget
        assert share * experts == local


def test_expert_parallel_flag_reaches_vllm():
    plan = assess(DEEPSEEK_LITE, H100x8, Requirements(max_model_len=8192, data_parallel_size=2, enable_expert_parallel=True))
    assert "--enable-expert-parallel" in plan.vllm_args and plan.enable_expert_parallel


# --- the search -----------------------------------------------------------------------------------------------------


def valid_shapes(spec, n: int) -> set[tuple[int, int, int]]:
    """vLLM's rules, stated directly: heads split evenly over TP (KV heads too, or TP a multiple of them), no more
    pipeline stages than layers, one GPU per rank."""
    out = set()
    kv_heads = {layer.kv_heads for layer in spec.layers if layer.kind in ("full", "sliding")}
    for tp in range(1, n + 1):
        heads_ok = spec.num_attention_heads % tp == 0
        kv_ok = all((kv % tp == 0) if kv >= tp else (tp % kv == 0) for kv in kv_heads)
        for pp in range(1, min(len(spec.layers), n // tp) + 1):
            for dp in range(1, n // (tp * pp) + 1):
                if heads_ok and kv_ok:
                    out.add((tp, pp, dp))
    return out


@pytest.mark.parametrize("spec", [QWEN32, LLAMA8, GPT_OSS], ids=["qwen32", "llama8", "gpt-oss"])
def test_every_valid_layout_is_ranked_and_each_row_is_the_engines_own_plan(spec):
    req = Requirements(prompt=20000, completion=8000, min_concurrency=8)
    rows = layouts.search(spec, H100x8, req, layouts.Fixed())
    assert {row.shape for row in rows} == valid_shapes(spec, 8)
    for row in rows:
        tp, pp, dp = row.shape
        direct = assess(
            spec,
            H100x8,
            replace(
                req,
                tensor_parallel_size=tp,
                pipeline_parallel_size=pp,
                data_parallel_size=dp,
                enable_expert_parallel=spec.is_moe and dp > 1,
            ),
        )
        assert (direct.kv_cache_tokens, direct.max_concurrency, direct.fits) == (
            row.plan.kv_cache_tokens,
            row.plan.max_concurrency,
            row.fits,
        )


@pytest.mark.parametrize("target", [1, 8, 40, 60])
def test_recommendation_is_the_fewest_gpus_then_no_pipeline_then_the_most_at_once(target):
    rows = layouts.search(QWEN32, H100x8, Requirements(prompt=20000, completion=8000, min_concurrency=target), layouts.Fixed())
    best = layouts.recommended(rows)
    assert best is not None and best.fits and best.plan.total_concurrency >= target
    fitting = [r for r in rows if r.fits]
    assert all(r.plan.total_concurrency >= target for r in fitting)
    assert min(r.gpus for r in fitting) == best.gpus
    peers = [r for r in fitting if r.gpus == best.gpus]
    if any(r.shape[1] == 1 for r in peers):
        assert best.shape[1] == 1
        peers = [r for r in peers if r.shape[1] == 1]
    assert best.plan.total_concurrency == max(r.plan.total_concurrency for r in peers)
    assert sum(r.recommended for r in rows) == 1


def test_nothing_fits_recommends_nothing():
    rows = layouts.search(QWEN32, inventory_from_preset("L4", 2), Requirements(prompt=20000, completion=8000), layouts.Fixed())
    assert rows and layouts.recommended(rows) is None


def test_user_sizes_are_kept():
    req = Requirements(prompt=20000, completion=8000, min_concurrency=20, tensor_parallel_size=2)
    rows = layouts.search(QWEN32, H100x8, req, layouts.Fixed(tensor_parallel_size=2))
    best = layouts.recommended(rows)
    assert best is not None and best.shape[0] == 2
    assert any(r.shape[0] != 2 for r in rows)  # the others are listed: what they would give


def test_auto_rows_hold_their_longest_length_and_no_more():
    req = Requirements(max_model_len=AUTO, min_concurrency=16)
    rows = layouts.search(LLAMA8, inventory_from_preset("H100-80GB", 4), req, layouts.Fixed())
    ceiling = 131072
    for row in rows:
        tp, pp, dp = row.shape
        trial = replace(req, tensor_parallel_size=tp, pipeline_parallel_size=pp, data_parallel_size=dp)
        at = assess(LLAMA8, inventory_from_preset("H100-80GB", 4), replace(trial, max_model_len=row.plan.max_model_len))
        assert at.kv_fits and at.total_concurrency >= 16
        if row.plan.max_model_len < ceiling:
            longer = assess(LLAMA8, inventory_from_preset("H100-80GB", 4), replace(trial, max_model_len=row.plan.max_model_len + 1))
            assert longer.total_concurrency < 16
    best = layouts.recommended(rows)
    assert best is not None and best.plan.max_model_len == max(r.plan.max_model_len for r in rows)


def bisected_longest(spec, inv, req) -> int | None:
    """Reference: plain bisection over [1, ceiling] of the same engine check (what fit.longest_length must equal)."""
    from launcher.sizing.fit import holds, length_ceiling
    from launcher.sizing.versions import rules_for

    def ok(length: int) -> bool:
        return holds(assess(spec, inv, replace(req, max_model_len=length)), req.min_concurrency)

    if not ok(1):
        return None
    lo, hi = 1, length_ceiling(spec, req, rules_for(req.vllm_version))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


@settings(max_examples=40, deadline=None)
@given(
    spec=st.sampled_from([LLAMA8, QWEN32, GPT_OSS, DEEPSEEK_LITE, spec_from_config(mc.GEMMA3_27B, "gemma3")]),
    gpu=st.sampled_from(["L4", "A100-40GB", "H100-80GB"]),
    shape=st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 1)]),
    target=st.sampled_from([1.0, 2.5, 16.0, 100.0]),
)
def test_the_galloping_length_search_equals_plain_bisection(spec, gpu, shape, target):
    from launcher.sizing.fit import longest_length

    tp, pp, dp = shape
    req = Requirements(
        max_model_len=AUTO, min_concurrency=target, tensor_parallel_size=tp, pipeline_parallel_size=pp, data_parallel_size=dp
    )
    inv = inventory_from_preset(gpu, 4)
    assert longest_length(spec, inv, req) == bisected_longest(spec, inv, req)


# --- the command line -----------------------------------------------------------------------------------------------


def plan_json(*args: str) -> dict:
    result = run_cli("plan", *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_eight_gpus_json_contract_and_text():
    data = plan_json(
        "--model", "Qwen/Qwen2.5-32B-Instruct", "--gpu", "H100-80GB", "--gpus", "8", "--prompt", "20000", "--completion", "8000"
    )
    assert data["layouts"] and all(set(row) >= ROW_KEYS for row in data["layouts"])
    chosen = [r for r in data["layouts"] if r["recommended"]]
    assert len(chosen) == 1
    row = chosen[0]
    assert (row["tensor_parallel_size"], row["pipeline_parallel_size"], row["data_parallel_size"]) == (
        data["tensor_parallel_size"],
        data["pipeline_parallel_size"],
        data["data_parallel_size"],
    )
    assert row["kv_cache_tokens"] == data["kv_cache_tokens"] and row["gpus"] == 1
    assert data["layout_reason"].startswith("layout TP 1 x PP 1 x DP 1 on 1 of 8 x H100-80GB")
    for r in data["layouts"]:
        assert r["total_concurrency"] == pytest.approx(r["max_concurrency"] * r["data_parallel_size"], abs=1e-3)
        assert r["gpus"] == r["tensor_parallel_size"] * r["pipeline_parallel_size"] * r["data_parallel_size"]
    text = run_cli(
        "plan", "--model", "Qwen/Qwen2.5-32B-Instruct", "--gpu", "H100-80GB", "--gpus", "8", "--prompt", "20000", "--completion", "8000"
    )
    assert "Layouts on H100-80GB" in text.stdout and "<- recommended" in text.stdout


def test_min_concurrency_picks_data_parallelism_and_says_why():
    data = plan_json(
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "H100-80GB",
        "--gpus",
        "8",
        "--prompt",
        "20000",
        "--completion",
        "8000",
        "--min-concurrency",
        "40",
    )
    rows = {(r["tensor_parallel_size"], r["pipeline_parallel_size"], r["data_parallel_size"]): r for r in data["layouts"]}
    one = rows[(1, 1, 1)]["max_concurrency"]
    # 32 heads: no TP 3; two GPUs hold fewer than 40 either way, so three replicas of one GPU are the fewest GPUs.
    assert rows[(2, 1, 1)]["total_concurrency"] < 40 and rows[(1, 1, 2)]["total_concurrency"] < 40 and 3 * one >= 40
    assert (data["tensor_parallel_size"], data["pipeline_parallel_size"], data["data_parallel_size"]) == (1, 1, 3)
    assert data["vllm_args"][data["vllm_args"].index("--data-parallel-size") + 1] == "3"
    assert data["total_concurrency"] == pytest.approx(3 * one, abs=1e-3)
    assert "fewest GPUs holding --min-concurrency 40" in data["layout_reason"] and "without pipeline stages" in data["layout_reason"]


def test_explicit_layout_is_kept_with_a_note():
    data = plan_json(
        "--model", "Qwen/Qwen2.5-32B-Instruct", "--gpu", "H100-80GB", "--gpus", "8", "--prompt", "20000", "--completion", "8000",
        "--tensor-parallel-size", "1", "--pipeline-parallel-size", "1", "--data-parallel-size", "2",
    )  # fmt: skip
    assert (data["tensor_parallel_size"], data["pipeline_parallel_size"], data["data_parallel_size"]) == (1, 1, 2)
    assert any(note.startswith("other layouts on these GPUs") for note in data["notes"])


def test_what_to_rent_over_every_preset():
    data = plan_json(
        "--model", "Qwen/Qwen2.5-32B-Instruct", "--gpu", "all", "--prompt", "20000", "--completion", "8000", "--min-concurrency", "16"
    )
    by_type: dict[str, list[dict]] = {}
    for row in data["layouts"]:
        by_type.setdefault(row["gpu"], []).append(row)
    assert set(by_type) == set(GPU_PRESETS)
    for name, rows in by_type.items():
        fitting = [r for r in rows if r["fits"]]
        picked = [r for r in rows if r["recommended"]]
        if not fitting:
            assert not picked, name
            continue
        assert len(picked) == 1 and picked[0]["gpus"] == min(r["gpus"] for r in fitting), name
        assert picked[0]["total_concurrency"] >= 16
    # The plan is the first-listed type among those needing the fewest GPUs, planned on exactly those GPUs.
    fewest = min(r["gpus"] for r in data["layouts"] if r["recommended"])
    first = next(name for name in GPU_PRESETS if any(r["recommended"] and r["gpus"] == fewest for r in by_type[name]))
    assert data["gpu"]["name"] == first and data["gpu"]["count"] == fewest
    text = run_cli(
        "plan",
        "--model",
        "Qwen/Qwen2.5-32B-Instruct",
        "--gpu",
        "H100-80GB,L4",
        "--prompt",
        "20000",
        "--completion",
        "8000",
        "--min-concurrency",
        "16",
    )
    assert "What to rent" in text.stdout and "L4" in text.stdout


def test_unknown_gpu_in_a_list_is_bad_input():
    result = run_cli("plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-80GB,H1000", "--max-model-len", "8192")
    assert result.returncode == 2 and "'H1000'" in result.stderr


def test_single_preset_without_a_target_plans_as_before():
    data = plan_json("--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-80GB", "--max-model-len", "8192")
    assert data["layouts"] == [] and data["data_parallel_size"] == 1 and data["gpu"]["count"] == 1


def test_max_model_len_auto_per_layout():
    data = plan_json(
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "H100-80GB",
        "--gpus",
        "4",
        "--max-model-len",
        "auto",
        "--min-concurrency",
        "16",
    )
    lengths = {
        (r["tensor_parallel_size"], r["pipeline_parallel_size"], r["data_parallel_size"]): r["max_model_len"] for r in data["layouts"]
    }
    assert len(set(lengths.values())) > 1  # each layout holds its own longest length
    assert data["max_model_len"] == max(lengths.values())


def test_nvml_node_layouts_see_a_busy_gpu(monkeypatch):
    # Four H100s through NVML (faked at that one seam, as tests/test_gpus.py does); the fourth has 20 GiB free.
    from test_gpus import FakeNvml, device

    from launcher.commands.plan import build_plan
    from launcher.settings import PlanSettings

    devices = [device(i, 79 * GiB) for i in range(3)] + [device(3, 20 * GiB)]
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(devices))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = PlanSettings(
        model="meta-llama/Llama-3.1-8B-Instruct", prompt=20000, completion=8000, min_concurrency=40, vllm_version="0.32.0", device="cuda"
    )
    plan = build_plan(settings)
    assert plan.layouts and plan.gpus_available == 4
    for row in plan.layouts:  # vLLM takes the first TP x PP x DP visible GPUs: every 4-GPU layout meets the busy one
        assert row.fits == (row.gpus < 4 and row.plan.total_concurrency >= 40)
        if row.gpus == 4:
            assert any("Free memory on device" in p for p in row.plan.problems)
    assert plan.fits and plan.gpu_indices == tuple(range(plan.data_parallel_size * plan.tensor_parallel_size))


# --- renderers ------------------------------------------------------------------------------------------------------

RENDER = ["--prompt", "20000", "--completion", "8000", "--vllm-version", "0.32.0", "--device", "cuda", "--gpu", "H100-80GB", "--gpus", "8"]


def render(*args: str) -> subprocess.CompletedProcess:
    result = run_cli("render", *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.real("shellcheck")
def test_slurm_gres_covers_every_replica(tmp_path):
    require_tool("shellcheck")
    result = render("slurm", "--model", "Qwen/Qwen2.5-32B-Instruct", *RENDER, "--min-concurrency", "20", "--data-parallel-size", "2")
    text = result.stdout
    assert "#SBATCH --gres=gpu:4" in text and "--tensor-parallel-size 2 --data-parallel-size 2" in text
    assert "layout TP 2 x PP 1 x DP 2" in result.stderr
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    check = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_vllm_config_carries_the_layout():
    text = render("vllm-config", "--model", "meta-llama/Llama-3.1-8B-Instruct", *RENDER, "--min-concurrency", "40").stdout
    options = yaml.safe_load(text)
    assert options.get("data-parallel-size", 1) * options.get("tensor-parallel-size", 1) * options.get("pipeline-parallel-size", 1) >= 2


def kubernetes_validate(tmp_path, docs: list[dict]) -> None:
    path = tmp_path / "docs.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    exe = __import__("pathlib").Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(exe), "--strict", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.real("validators")
def test_k8s_dense_data_parallel_is_replicas_of_a_smaller_pod(tmp_path):
    result = render("k8s", "--model", "meta-llama/Llama-3.1-8B-Instruct", *RENDER, "--min-concurrency", "30", "--data-parallel-size", "2")
    docs = list(yaml.safe_load_all(result.stdout))
    kubernetes_validate(tmp_path, docs)
    deployment = docs[1]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    sizer = pod["initContainers"][0]["command"]
    assert "--data-parallel-size" not in sizer and sizer[sizer.index("--min-concurrency") + 1] == "15.0"
    assert "replicas of a 1-GPU pod" in result.stderr


@pytest.mark.real("validators")
def test_k8s_moe_data_parallel_stays_one_pod_with_expert_parallelism(tmp_path):
    result = render(
        "k8s", "--model", "openai/gpt-oss-20b", "--max-model-len", "131072", "--vllm-version", "0.32.0", "--device", "cuda",
        "--gpu", "H100-80GB", "--gpus", "8", "--min-concurrency", "30", "--data-parallel-size", "2",
    )  # fmt: skip
    docs = list(yaml.safe_load_all(result.stdout))
    kubernetes_validate(tmp_path, docs)
    deployment = docs[1]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    sizer = pod["initContainers"][0]["command"]
    assert sizer[sizer.index("--data-parallel-size") + 1] == "2" and "--enable-expert-parallel" in sizer


# --- serve and the Python API ---------------------------------------------------------------------------------------


def test_serve_dry_run_says_why(tmp_path):
    model = write_model_dir(tmp_path / "llama", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    result = run_cli(
        "serve", "--model", str(model), "--gpu", "H100-80GB", "--gpus", "8", "--prompt", "20000", "--completion", "8000",
        "--min-concurrency", "40", "--vllm-version", "0.32.0", "--device", "cuda", "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "the fewest GPUs holding --min-concurrency 40" in result.stdout
    assert "--data-parallel-size 3" in result.stdout.split("\nCommand")[1]


def test_python_api_returns_the_json_contract():
    args = dict(prompt=20000, completion=8000, gpu="H100-80GB", gpus=8, min_concurrency=16, vllm_version="0.32.0", device="cuda")
    code = (
        "import json, sys\n"
        "from launcher.api import plan\n"
        f"print(json.dumps(plan('Qwen/Qwen2.5-32B-Instruct', **{args!r})))\n"
        "print(json.dumps([m for m in ('torch', 'vllm', 'transformers') if m in sys.modules]))\n"
    )
    env = {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ, **env}, check=True)
    from_api, heavy = (json.loads(line) for line in out.stdout.strip().splitlines())
    assert heavy == []
    cli = plan_json(
        "--model", "Qwen/Qwen2.5-32B-Instruct", "--prompt", "20000", "--completion", "8000", "--gpu", "H100-80GB", "--gpus", "8",
        "--min-concurrency", "16", "--vllm-version", "0.32.0", "--device", "cuda",
    )  # fmt: skip
    assert from_api == cli


def test_python_api_bad_input_and_lazy_import():
    from launcher import plan
    from launcher.api import PlanInputError

    with pytest.raises(PlanInputError, match="unknown GPU"):
        plan("meta-llama/Llama-3.1-8B-Instruct", max_model_len=8192, gpu=["H100-80GB", "H1000"])
    with pytest.raises(PlanInputError, match="unknown argument"):
        plan("meta-llama/Llama-3.1-8B-Instruct", max_model_len=8192, gpu="H100-80GB", tensor_parallel=2)
    code = "import sys, launcher\nprint([m for m in ('launcher.api', 'launcher.commands.plan', 'pydantic_settings') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_make_plan_carries_the_layout_through_remedies():
    # A DP layout that does not fit still gets remedies computed with its own data-parallel size.
    plan = make_plan(QWEN32, inventory_from_preset("L40S", 2), Requirements(prompt=20000, completion=8000, data_parallel_size=2))
    assert not plan.fits and plan.data_parallel_size == 2 and "--data-parallel-size" in plan.vllm_args

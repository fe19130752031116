"""The CLI as users run it: the JSON contract, exit codes, formats, settings precedence, bad input."""

import json
import subprocess
import sys

import model_configs as mc
import pytest
import yaml
from helpers import run_cli, write_model_dir

CONTRACT = {
    "max_model_len": int,
    "fits": bool,
    "kv_cache_memory_bytes": int,
    "kv_cache_tokens": int,
    "max_concurrency": float,
    "num_gpu_blocks": int,
    "block_size": int,
    "weights_bytes": int,
    "estimated_max_model_len": (int, type(None)),
    "tensor_parallel_size": int,
    "pipeline_parallel_size": int,
    "vllm_args": list,
}


@pytest.fixture
def llama_dir(tmp_path):
    return write_model_dir(tmp_path / "llama", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)


def plan(*args, **kw):
    return run_cli("plan", *args, **kw)


def test_json_contract_and_fit(llama_dir):
    result = plan("--model", str(llama_dir), "--gpu", "H100-80GB", "--prompt", "30000", "--completion", "27000", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key, kind in CONTRACT.items():
        assert isinstance(data[key], kind), key
    assert data["max_model_len"] == 58000 and data["fits"] and data["estimated_max_model_len"] is None
    assert data["vllm_args"][:3] == [str(llama_dir), "--max-model-len", "58000"]
    # what vLLM loads: the checkpoint plus the rotary cos/sin cache (131072 positions x 128 dims x 2 bytes)
    assert data["weights_bytes"] == 16060522496 + 131072 * 128 * 2


def test_does_not_fit_exits_1_with_json(llama_dir):
    result = plan("--model", str(llama_dir), "--gpu", "L4", "--max-model-len", "128K", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and not data["fits"] and data["max_model_len"] == 131072
    assert data["remedies"]


def test_gpu_memory_and_kv_bytes_accept_vllm_suffixes(llama_dir):
    result = plan(
        "--model", str(llama_dir), "--gpu-memory", "80G", "--gpus", "1", "--max-model-len", "32k", "--kv-cache-memory-bytes", "4g", "--json"
    )
    data = json.loads(result.stdout)
    assert data["max_model_len"] == 32000 and data["kv_cache_memory_bytes"] == 4_000_000_000
    assert data["gpu"]["total_bytes"] == 80 * 2**30  # uppercase suffixes are binary, as in vLLM


def test_format_args_and_vllm_config(llama_dir):
    args = plan(
        "--model", str(llama_dir), "--gpu", "H100-80GB", "--max-model-len", "8192", "--served-model-name", "my model", "--format", "args"
    )
    assert args.returncode == 0
    assert "'my model'" in args.stdout and "--max-model-len 8192" in args.stdout
    cfg = plan("--model", str(llama_dir), "--gpu", "H100-80GB", "--max-model-len", "8192", "--format", "vllm-config")
    loaded = yaml.safe_load(cfg.stdout)
    assert loaded["max-model-len"] == 8192 and loaded["model"] == str(llama_dir)


def test_text_report_explains(llama_dir):
    text = plan("--model", str(llama_dir), "--gpu", "H100-80GB", "--max-model-len", "8192").stdout
    for needle in ("Memory per GPU", "KV cache size", "Verdict: FITS", "vllm serve"):
        assert needle in text


def test_precedence_flags_over_env_over_file(llama_dir, tmp_path):
    conf = tmp_path / "launch.toml"
    conf.write_text(f'model = "{llama_dir}"\ngpu = "H100-80GB"\nmax_model_len = 4096\nbuffer = 7\n')
    from_file = json.loads(plan("--config", str(conf), "--json").stdout)
    assert from_file["max_model_len"] == 4096
    from_env = json.loads(plan("--config", str(conf), "--json", env={"VLLM_LAUNCH_MAX_MODEL_LEN": "5000"}).stdout)
    assert from_env["max_model_len"] == 5000
    env = {"VLLM_LAUNCH_MAX_MODEL_LEN": "5000"}
    from_flag = json.loads(plan("--config", str(conf), "--json", "--max-model-len", "6000", env=env).stdout)
    assert from_flag["max_model_len"] == 6000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prompt", "0", "--completion", "5"], "--prompt"),
        (["--prompt", "-5", "--completion", "5"], "--prompt"),
        (["--prompt", "lots", "--completion", "5"], "not a number"),
        (["--max-model-len", "1.5K"], "Decimals are not allowed"),
        (["--prompt", "5"], "no context size given"),
        (["--max-model-len", "4096", "--gpu", "Z100"], "unknown GPU 'Z100'"),
        (["--max-model-len", "4096", "--tensor-parallel-size", "3"], "does not divide the model's 32 attention heads"),
        (["--max-model-len", "4096", "--gpus", "1", "--tensor-parallel-size", "2"], "2 GPUs asked, 1 present"),
        (["--max-model-len", "4096", "--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization"),
    ],
)
def test_bad_input_exits_2_with_advice(llama_dir, args, needle):
    if "--gpu" not in args:
        args = [*args, "--gpu", "H100-80GB"]
    result = plan("--model", str(llama_dir), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_gpu_and_no_nvml_is_not_a_guess(llama_dir):
    result = plan("--model", str(llama_dir), "--max-model-len", "4096", "--device", "cuda")
    assert result.returncode == 2 and "--gpu NAME" in result.stderr


def test_help_is_useful():
    result = run_cli("plan", "--help")
    assert result.returncode == 0
    for flag in ("--prompt", "--completion", "--max-model-len", "--gpu-memory-utilization", "--kv-cache-dtype", "--config"):
        assert flag in result.stdout
    assert "plan" in run_cli("--help").stdout


def test_gpus_presets():
    data = json.loads(run_cli("gpus", "--presets", "--json").stdout)
    for name in ("H100-80GB", "H200", "B200", "A100-40GB", "A100-80GB", "L40S", "L4", "A10G", "RTX-4090", "RTX-3090", "T4", "V100"):
        assert data[name]["total_bytes"] > 10 * 2**30


def test_import_is_light():
    code = (
        "import sys, launcher, launcher.cli, launcher.sizing.plan\n"
        "print([m for m in ('torch', 'vllm', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

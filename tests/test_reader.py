"""Model reader: local directories, config.json paths, safetensors sizes, the HF cache offline, the catalog, errors."""

import json

import model_configs as mc
import pytest
from helpers import run_cli, write_model_dir

from launcher.errors import UserError
from launcher.model.reader import read_model

LLAMA = mc.catalog("meta-llama/Llama-3.1-8B-Instruct")


def test_local_dir_uses_index_total(tmp_path):
    spec = read_model(str(write_model_dir(tmp_path / "m", LLAMA, index_total=16060522496)))
    assert spec.weights.total_bytes == 16060522496 and spec.weights.source == "safetensors index"


def test_config_path_and_safetensors_headers(tmp_path):
    d = write_model_dir(tmp_path / "m", LLAMA, tensors={"a": ("BF16", [4, 8], 64), "b": ("F32", [4], 16)})
    spec = read_model(str(d / "config.json"))
    assert spec.weights.total_bytes == 80 and spec.weights.source == "safetensors headers"


def test_no_weights_is_labelled_estimate(tmp_path):
    spec = read_model(str(write_model_dir(tmp_path / "m", LLAMA)))
    assert spec.weights.is_estimate
    assert 15e9 < spec.weights.total_bytes < 17e9  # 8.0B parameters in bf16


def test_generation_config_max_new_tokens(tmp_path):
    d = write_model_dir(tmp_path / "m", LLAMA)
    (d / "generation_config.json").write_text(json.dumps({"max_new_tokens": 2048}))
    assert read_model(str(d)).max_new_tokens == 2048


def test_hf_overrides_apply(tmp_path):
    d = write_model_dir(tmp_path / "m", mc.catalog("Qwen/Qwen2.5-32B-Instruct"))
    spec = read_model(str(d), hf_overrides='{"max_position_embeddings": 65536}')
    assert spec.context.lengths["max_position_embeddings"] == 65536


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"model_type": "llama"}', "lacks `num_hidden_layers`"),
        ('{"num_hidden_layers": 2, "model_type": "x"}', "lacks `num_attention_heads`, `hidden_size`"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, content, needle):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(content)
    with pytest.raises(UserError, match=needle):
        read_model(str(d))


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="no such file or directory"):
        read_model(str(tmp_path / "nope"))


def test_dir_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        read_model(str(tmp_path))


def test_hub_id_from_local_hf_cache_offline(tmp_path):
    snapshot = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    write_model_dir(snapshot, LLAMA, index_total=123456789)
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    result = run_cli(
        "plan", "--model", "acme/tiny", "--gpu", "H100-80GB", "--max-model-len", "8192", "--json", env={"HF_HOME": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # the checkpoint index's total, plus the rotary cache vLLM builds at load (131072 positions x 128 dims x 2 bytes)
    assert data["weights_bytes"] == 123456789 + 131072 * 128 * 2 and "Hub acme/tiny" in data["facts_source"]


def test_unknown_hub_id_offline_not_cached(tmp_path):
    result = run_cli("plan", "--model", "acme/absent", "--gpu", "H100-80GB", "--max-model-len", "8192", env={"HF_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "not in the HF cache" in result.stderr and "Traceback" not in result.stderr


def test_catalog_answers_offline(tmp_path):
    result = run_cli(
        "plan",
        "--model",
        "Qwen/Qwen2.5-32B-Instruct",
        "--gpu",
        "H100-80GB",
        "--prompt",
        "30000",
        "--completion",
        "27000",
        "--json",
        env={"HF_HOME": str(tmp_path)},
    )
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["max_model_len"] == 58000 and not data["fits"]
    assert "built-in catalog" in data["facts_source"] and "huggingface.co/Qwen/Qwen2.5-32B-Instruct" in data["facts_source"]


def test_unreachable_hub_falls_back_fast_without_retries(tmp_path):
    import time

    start = time.monotonic()
    result = run_cli(
        "plan",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "H100-80GB",
        "--max-model-len",
        "8192",
        "--json",
        env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "built-in catalog" in json.loads(result.stdout)["facts_source"] and "Retrying" not in result.stderr
    assert time.monotonic() - start < 10


def test_gated_repo_without_token_is_explained(tmp_path):
    """A local stand-in for the Hub (HF_ENDPOINT) that answers like a gated repository: 401 with X-Error-Code GatedRepo."""
    import http.server
    import threading

    class Gated(http.server.BaseHTTPRequestHandler):
        def _deny(self):
            self.send_response(401)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to model acme/gated is restricted. You must have access to it.")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = _deny

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gated)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_cli(
            "plan",
            "--model",
            "acme/gated",
            "--gpu",
            "H100-80GB",
            "--max-model-len",
            "8192",
            env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path), "HF_TOKEN": ""},
        )
    finally:
        server.shutdown()
    assert result.returncode == 2, result.stderr
    assert "gated repository" in result.stderr and "HF_TOKEN" in result.stderr and "Traceback" not in result.stderr

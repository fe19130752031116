"""One test per input defect of issue 8 (each failed before its fix): silently ignored inputs, tracebacks, misleading
output. They run `vllm-launch` in-process (tests/inprocess.py) unless the process boundary is the point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import model_configs as mc
import pytest
import yaml
from helpers import write_model_dir
from inprocess import run_main

import launcher.commands.explain as explain_command
from launcher import gpus as gpu_adapter
from launcher.commands import serve as serve_command
from launcher.sizing.versions import NEWEST_KNOWN

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
H100 = ("--gpu", "H100-80GB")
ERROR_WITH_COMMA = "This model's maximum context length is 4096 tokens. However, your request has 4500 input tokens."


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model_dir(tmp_path / "my-model", mc.catalog(LLAMA), index_total=16060522496)


@pytest.fixture
def explained(monkeypatch) -> list[str]:
    """The text `explain` hands to the decoder (what it makes of the text belongs to launcher.budget.explain)."""
    seen: list[str] = []
    real = explain_command.explain

    def spy(text: str, **kw):
        seen.append(text)
        return real(text, **kw)

    monkeypatch.setattr(explain_command, "explain", spy)
    return seen


# --- explain's input ---------------------------------------------------------------------------------------------


def test_explain_takes_the_text_verbatim_commas_included(explained):
    result = run_main("explain", ERROR_WITH_COMMA, "--max-tokens", "27000", "--max-model-len", "31096")
    assert explained == [ERROR_WITH_COMMA] and result.rc == 0, result.err


def test_explain_argument_with_newlines_is_text_not_a_traceback(explained):
    text = "This model's maximum context length is 4096 tokens.\nHowever, your request has 4500 input tokens."
    result = run_main("explain", text)
    assert explained == [text] and result.rc in (0, 1)


def test_explain_after_double_dash(explained):
    run_main("explain", "--", ERROR_WITH_COMMA)
    assert explained == [ERROR_WITH_COMMA]


def test_explain_missing_log_file_is_an_error(explained, tmp_path):
    result = run_main("explain", "missing.log", cwd=tmp_path)
    assert result.rc == 2 and "missing.log: no such file" in result.err and explained == []


def test_explain_several_words_unquoted_are_refused(explained):
    result = run_main("explain", "maximum", "context")
    assert result.rc == 2 and "ONE argument" in result.err and explained == []


def test_explain_on_a_terminal_names_real_ways_in():
    class Tty:
        def isatty(self) -> bool:
            return True

    result = run_main("explain", stdin=Tty())  # type: ignore[arg-type]
    assert result.rc == 2 and "--text" not in result.err and "pipe it in" in result.err


def test_explain_text_from_the_environment_is_no_traceback(explained):
    result = run_main("explain", env={"VLLM_LAUNCH_TEXT": "foo"})
    assert result.rc == 1 and explained == ["foo"]


# --- the model path: what vLLM is given is what readiness waits for ---------------------------------------------


@pytest.mark.parametrize("spelling", ["./my-model", "my-model/", "./././my-model", "sub/../my-model", "my-model/config.json"])
def test_serve_gives_vllm_and_readiness_one_model_name(model_dir, spelling, monkeypatch):
    seen = {}

    def started(self, argv, env, log_path):
        seen.update(argv=argv, served=self.served)
        return 0

    monkeypatch.setattr(serve_command.Supervisor, "run", started)
    (model_dir.parent / "sub").mkdir()
    flags = (*H100, "--max-model-len", "4k", "--vllm", "/bin/true", "--port", "1")
    result = run_main("serve", "--model", spelling, *flags, cwd=model_dir.parent)
    assert result.rc == 0, result.err
    assert seen["argv"][2] == seen["served"] == str(model_dir)


# --- what deployment files must carry --------------------------------------------------------------------------


def test_allow_long_max_model_len_reaches_vllm_config_and_k8s(model_dir):
    cfg = run_main("render", "vllm-config", "--model", LLAMA, *H100, "--max-model-len", "200k", "--allow-long-max-model-len")
    assert cfg.rc == 0 and "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1" in cfg.out + cfg.err
    k8s = run_main("render", "k8s", "--model", LLAMA, "--max-model-len", "200k", "--allow-long-max-model-len")
    deployment = [d for d in yaml.safe_load_all(k8s.out) if d and d["kind"] == "Deployment"][0]
    vllm = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "value": "1"} in vllm["env"]
    sizer = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert "--allow-long-max-model-len" in sizer["command"]


def test_systemd_unit_runs_an_absolute_vllm_launch_and_model_path(model_dir, monkeypatch):
    monkeypatch.setattr(gpu_adapter, "read_inventory", lambda: (_ for _ in ()).throw(gpu_adapter.NvmlUnavailable("no GPU")))
    result = run_main("render", "systemd", "--model", "./my-model", "--max-model-len", "4k", cwd=model_dir.parent, env={"PATH": "/nowhere"})
    assert result.rc == 0, result.err
    exec_start = next(line for line in result.out.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith(f'ExecStart="{Path(sys.executable).parent / "vllm-launch"}"')
    assert f'"--model" "{model_dir}"' in exec_start
    assert "sizes the server on its machine" in result.err  # no GPU here: rendered anyway, and said so
    missing = run_main("render", "systemd", "--model", LLAMA, "--max-model-len", "4k", "--vllm-launch", "no-such-launcher")
    assert missing.rc == 2 and "--vllm-launch /absolute/path" in missing.err


def test_k8s_with_a_local_model_path_warns(model_dir):
    result = run_main("render", "k8s", "--model", "./my-model", "--max-model-len", "4k", cwd=model_dir.parent)
    assert result.rc == 0 and "is a path on this machine" in result.err


def test_slurm_readiness_compares_names_as_vllm_sends_them():
    """vLLM's /v1/models is FastAPI JSON: non-ASCII unescaped, no spaces. The job's expected id must be the same bytes."""
    name = 'modèle "ü" ✓'
    script = run_main("render", "slurm", "--model", LLAMA, *H100, "--max-model-len", "4k", "--served-model-name", name).out
    line = next(x for x in script.splitlines() if x.startswith("MODEL_JSON="))
    value = subprocess.run(["bash", "-c", line + '\nprintf %s "$MODEL_JSON"'], capture_output=True, text=True).stdout
    assert value == json.dumps(name, ensure_ascii=False, separators=(",", ":"))


# --- silently ignored or conflicting inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "needles"),
    [
        (["--gpu", "H100-80GB", "--gpu-memory", "80G", "--max-model-len", "4k"], {}, ["--gpu", "--gpu-memory", "both given"]),
        ([*H100, "--max-model-len", "4k", "--turns", "4"], {}, ["--max-model-len", "--turns"]),
        ([*H100, "--prompt", "10", "--completion", "5", "--observation", "7"], {}, ["--observation 7 without --turns"]),
        ([*H100, "--max-model-len", "4k", "--json", "--format", "args"], {}, ["--json", "--format args"]),
        ([*H100, "--max-model-len", "4k", "--gpus", "2", "--device", "cpu"], {}, ["--device cpu", "--gpu"]),
        (["--max-model-len", "4k", "--gpus", "2", "--device", "cuda"], {}, ["--gpus 2 without --gpu"]),
    ],
)
def test_conflicting_plan_inputs_name_both_sides(args, env, needles):
    result = run_main("plan", "--model", LLAMA, *args, env=env)
    assert result.rc == 2 and result.out == ""
    for needle in needles:
        assert needle in result.err


def test_aliased_flags_work_from_the_environment(tmp_path):
    as_json = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", env={"VLLM_LAUNCH_JSON": "1"})
    assert json.loads(as_json.out)["max_model_len"] == 4000
    out = tmp_path / "plan.txt"
    written = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", env={"VLLM_LAUNCH_O": str(out)})
    assert written.rc == 0 and written.out == "" and "Verdict: FITS" in out.read_text()


def test_misspelt_environment_variable_is_named():
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", env={"VLLM_LAUNCH_MAX_MODEL_LENGTH": "5"})
    assert result.rc == 2 and "VLLM_LAUNCH_MAX_MODEL_LENGTH" in result.err and "did you mean VLLM_LAUNCH_MAX_MODEL_LEN" in result.err


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("max_model_len = 4096\nmodle = 'x'\n", "unknown key 'modle'; did you mean model?"),
        ("[plna]\nmax_model_len = 4096\n", "unknown section [plna]; did you mean plan?"),
        ("[plan]\nport = 80\n", "[plan] has an unknown key 'port'"),
        ("max_model_len = \n", "not valid TOML"),
        ("max_model_len = 'lots'\n", "max_model_len in"),
    ],
)
def test_config_file_mistakes_are_named(tmp_path, toml, needle):
    conf = tmp_path / "launch.toml"
    conf.write_text(toml)
    result = run_main("plan", "--model", LLAMA, *H100, "--config", str(conf))
    assert result.rc == 2 and needle in result.err, result.err


def test_config_file_not_utf8_and_sections_per_command(tmp_path):
    conf = tmp_path / "launch.toml"
    conf.write_bytes(b"model = '\xff'\n")
    result = run_main("plan", "--config", str(conf), *H100, "--max-model-len", "4k")
    assert result.rc == 2 and "not UTF-8" in result.err
    conf.write_text(f"model = '{LLAMA}'\nport = 9000\n[plan]\nmax_model_len = '8k'\n[serve]\nmax_model_len = 99\n")
    plan = run_main("plan", "--config", str(conf), *H100, "--json")  # port is serve's: allowed in a shared file
    assert plan.rc == 0 and json.loads(plan.out)["max_model_len"] == 8000


def test_serve_dry_run_honours_json_and_format_and_prints_the_command_once(model_dir):
    base = ("serve", "--model", str(model_dir), *H100, "--max-model-len", "4k", "--vllm", "/bin/true", "--port", "8123", "--dry-run")
    as_json = json.loads(run_main(*base, "--json").out)
    assert as_json["command"][-2:] == ["--port", "8123"] and as_json["max_model_len"] == 4000
    args = run_main(*base, "--format", "args").out
    assert args.startswith("/bin/true serve ") and args.count("--port") == 1
    text = run_main(*base).out
    assert text.count("--port 8123") == 1
    live = run_main(*base[:-1], "--json")
    assert live.rc == 2 and "--json applies to `serve --dry-run` only" in live.err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--max-model-len", "9999"], "the planned `--max-model-len 4000`"),
        (["--max_model_len=9999"], "the planned `--max-model-len 4000`"),
        (["--enforce-eager"], "is a vllm-launch flag"),
        (["-tp", "2"], "is a vllm-launch flag"),
    ],
)
def test_vllm_args_after_double_dash_cannot_change_the_plan(extra, needle):
    result = run_main("serve", "--model", LLAMA, *H100, "--max-model-len", "4k", "--dry-run", "--", *extra)
    assert result.rc == 2 and needle in result.err and result.out == ""
    fine = run_main("serve", "--model", LLAMA, *H100, "--max-model-len", "4k", "--dry-run", "--vllm", "/bin/true", "--", "--seed", "1")
    assert fine.rc == 0 and "--seed 1" in fine.out


def test_vllm_args_from_environment_and_file_are_split_like_a_shell(tmp_path):
    dry = ("serve", "--model", LLAMA, *H100, "--max-model-len", "4k", "--dry-run", "--vllm", "/bin/true", "--json")
    result = run_main(*dry, env={"VLLM_LAUNCH_VLLM_EXTRA_ARGS": "--seed 1 --chat-template 'a b'"})
    assert json.loads(result.out)["command"][-4:] == ["--seed", "1", "--chat-template", "a b"]
    conf = tmp_path / "launch.toml"
    conf.write_text("vllm_extra_args = ['--seed 1']\n")
    assert json.loads(run_main(*dry, "--config", str(conf)).out)["command"][-2:] == ["--seed", "1"]
    notjson = run_main(*dry, env={"VLLM_LAUNCH_VLLM_EXTRA_ARGS": "notjson"})
    assert notjson.rc == 0 and json.loads(notjson.out)["command"][-1] == "notjson"


def test_budget_url_and_max_model_len_conflict():
    result = run_main(
        "budget", "--max-completion-length-per-turn", "10", "--turns", "2", "--max-model-len", "100", "--url", "http://127.0.0.1:9"
    )
    assert result.rc == 2 and "--max-model-len 100" in result.err and "--url http://127.0.0.1:9" in result.err


def test_budget_yaml_values_are_parsed_or_refused(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("env:\n  max_completion_length_per_turn: 4k\n  turns: 2\n")
    data = json.loads(run_main("budget", "--trajectory-config", str(good), "--json").out)
    assert data["max_tokens"] == 4000
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_completion_length_per_turn: lots\nturns: 2\n")
    result = run_main("budget", "--trajectory-config", str(bad))
    assert result.rc == 2 and "max_completion_length_per_turn" in result.err and "'lots'" in result.err


def test_budget_suggests_a_command_that_runs():
    result = run_main("budget", "--max-completion-length-per-turn", "4000", "--turns", "3")
    suggestion = result.out.split("`")[1]
    assert "--model MODEL" in suggestion and "--prompt 0" not in suggestion
    argv = suggestion.replace("MODEL", LLAMA).split()[1:] + ["--dry-run", *H100, "--vllm", "/bin/true"]
    assert run_main(*argv).rc == 0


def test_budget_with_many_turns_stays_readable():
    result = run_main("budget", "--max-completion-length-per-turn", "10", "--turns", "10000")
    assert result.rc == 0 and len(result.out.splitlines()) < 45 and "turns not shown" in result.out
    huge = run_main("budget", "--max-completion-length-per-turn", "10", "--turns", "1000000")
    assert huge.rc == 2 and "--turns" in huge.err


# --- values: syntax, units, and what vLLM would refuse -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total"),
    [("80G", 80 * 2**30), ("80GiB", 80 * 2**30), ("80GB", 80 * 10**9), ("80g", 80 * 10**9), ("85899345920", 85899345920), ("1e11", 10**11)],
)
def test_gpu_memory_sizes(value, total):
    result = run_main("plan", "--model", LLAMA, "--gpu-memory", value, "--gpus", "1", "--max-model-len", "4k", "--json")
    assert result.rc in (0, 1) and json.loads(result.out)["gpu"]["total_bytes"] == total


def test_gpu_memory_without_a_unit_is_not_taken_as_80_bytes():
    result = run_main("plan", "--model", LLAMA, "--gpu-memory", "80", "--gpus", "1", "--max-model-len", "4k")
    assert result.rc == 2 and "--gpu-memory 80G" in result.err and "free -0.51" not in result.out


def test_scientific_notation_is_a_number():
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "1e4", "--json")
    assert json.loads(result.out)["max_model_len"] == 10000


def test_block_size_vllm_would_refuse():
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "--block-size", "17")
    assert result.rc == 2 and "multiple of 16" in result.err and "vLLM would refuse" in result.err
    old = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "--block-size", "256", "--vllm-version", "0.10.1")
    assert old.rc == 2 and "takes --block-size 1, 8, 16, 32, 64, 128 only" in old.err
    assert run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "--block-size", "32").rc == 0


def test_utilization_ignored_by_vllm_next_to_an_explicit_kv_size_is_said():
    both = ("--kv-cache-memory-bytes", "4G", "--gpu-memory-utilization", "0.5")
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", *both)
    assert result.rc == 0 and "vLLM ignores --gpu-memory-utilization" in result.err


def test_vllm_version_newer_than_the_rules_know():
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "--vllm-version", "9.9")
    newest = ".".join(NEWEST_KNOWN.split(".")[:2])
    assert result.rc == 2 and f"0.1 to {newest}" in result.err


def test_vllm_spellings_of_flags():
    result = run_main("plan", "--model", LLAMA, "--gpu-memory", "24GiB", "--gpus", "2", "--max_model_len=8k", "-tp", "2", "--json")
    data = json.loads(result.out)
    assert data["max_model_len"] == 8000 and data["tensor_parallel_size"] == 2


def test_typo_in_a_flag_gets_a_suggestion_not_a_page_of_usage():
    result = run_main("plan", "--model", LLAMA, "--promt", "5")
    assert result.rc == 2 and "did you mean --prompt?" in result.err and len(result.err.splitlines()) <= 3


def test_model_config_with_bad_values_says_so(tmp_path):
    for value in ("32", -32):
        cfg = {**mc.catalog(LLAMA), "num_hidden_layers": value}
        model = write_model_dir(tmp_path / f"m{value}", cfg)
        result = run_main("plan", "--model", str(model), *H100, "--max-model-len", "4k")
        assert result.rc == 2 and f"`num_hidden_layers` is {value!r}, not a positive whole number" in result.err


def test_offline_model_not_in_the_catalog_lists_the_catalog():
    result = run_main("plan", "--model", "acme/not-in-the-catalog-7B", *H100, "--max-model-len", "4k")
    assert result.rc == 2 and LLAMA in result.err and "Qwen/Qwen3-8B" in result.err


# --- output ------------------------------------------------------------------------------------------------------


def test_output_dash_is_standard_output(tmp_path):
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "-o", "-", cwd=tmp_path)
    assert result.rc == 0 and "Verdict: FITS" in result.out and not (tmp_path / "-").exists()


def test_output_to_a_directory_is_an_error_even_with_force(tmp_path):
    result = run_main("plan", "--model", LLAMA, *H100, "--max-model-len", "4k", "-o", str(tmp_path), "--force")
    assert result.rc == 2 and "is a directory" in result.err and os.listdir(tmp_path) == []


# --- help ----------------------------------------------------------------------------------------------------------


def test_help_shows_value_syntax_not_python_types():
    text = run_main("plan", "--help").out
    assert "--gpu-memory SIZE" in text and "--max-model-len TOKENS" in text and "80GiB" in text and "32K (= 32768)" in text
    for python_type in (" int ", " str ", "list[str]", "Path", "Optional"):
        assert python_type not in text, python_type
    assert "Let -o/--output replace" in text and run_main("plan", "--output", "-", "--help").rc == 0


def test_help_does_not_import_pydantic():
    code = (
        "import sys\nfrom launcher.cli import main\n"
        "try:\n    sys.exit(main(['serve', '--help']))\nfinally:\n    assert 'pydantic' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "--max-model-len TOKENS" in result.stdout, result.stderr


# --- speed: the Hub ----------------------------------------------------------------------------------------------


def test_offline_catalog_plan_does_not_import_the_hub_client(tmp_path):
    code = (
        "import sys\nfrom launcher.cli import main\n"
        f"rc = main(['plan', '--model', '{LLAMA}', '--gpu', 'H100-80GB', '--max-model-len', '4k'])\n"
        "assert 'huggingface_hub.file_download' not in sys.modules\nsys.exit(rc)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "built-in catalog" in result.stdout, result.stderr


def test_an_unreachable_hub_is_asked_once_and_never_for_long(monkeypatch):
    import socket
    import time

    from launcher.model import reader

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("unreachable")

    monkeypatch.setattr(reader, "_HUB_REACHABLE", {})
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert not reader.hub_reachable() and not reader.hub_reachable() and len(calls) == 1
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")

    def hang(*args, **kwargs):  # a name lookup that hangs, whatever the socket timeout says
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert not reader.hub_reachable(timeout=0.2) and time.monotonic() - start < 1.5


@pytest.mark.parametrize("flag", ["--nodes", "--gpus-per-node", "--replicas", "--cpus-per-task"])
@pytest.mark.parametrize("value", ["1k", "1e1"])
def test_render_counts_are_whole_numbers_not_token_counts(flag, value):
    """`--cpus-per-task 1k` once wrote `#SBATCH --cpus-per-task=1000`: counts take no token suffixes."""
    result = run_main("render", "slurm", "--model", LLAMA, "--max-model-len", "8192", *H100, "--vllm-version", "0.32.0", flag, value)
    assert result.rc == 2 and f"{flag}: Input should be a valid integer" in result.err, result.err
    assert "#SBATCH" not in result.out
    assert f"{flag} N " in run_main("render", "--help").out


def plan_json(*args: str) -> dict:
    result = run_main("plan", *args, "--vllm-version", NEWEST_KNOWN, "--device", "cuda", "--json")
    assert result.rc == 0, result.err
    return json.loads(result.out)


def test_help_on_defaults_says_what_the_plan_does():
    """--block-size, --gpus and --gpus-per-node describe the defaults the code applies."""
    help_text = " ".join(run_main("plan", "--help").out.split())
    mla = ("--model", "deepseek-ai/DeepSeek-V3", "--max-model-len", "8192", "--gpus", "8")
    assert plan_json(*mla, "--gpu", "H200")["block_size"] == 16 and plan_json(*mla, "--gpu", "B200")["block_size"] == 32
    assert "16 on CUDA, MLA models 32 on Blackwell since 0.18" in help_text and "64 for MLA" not in help_text
    layout = ("--model", LLAMA, "--max-model-len", "8192", *H100, "-tp", "2", "--data-parallel-size", "2")
    assert plan_json(*layout)["gpu"]["count"] == 4 and "(default: tensor x pipeline x data parallel size;" in help_text
    job = run_main("render", "slurm", *layout, "--vllm-version", NEWEST_KNOWN, "--device", "cuda")
    assert job.rc == 0 and "#SBATCH --gres=gpu:4\n" in job.out, job.err
    assert "(default: tensor x pipeline x data parallel size on one node)" in " ".join(run_main("render", "--help").out.split())

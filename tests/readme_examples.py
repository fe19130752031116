"""Running README.md's examples as written (tests/test_readme.py, and tests/e2e/test_readme_live.py for those that
need a live server), and checking they do what the README says.

Each command line of each ```bash block (continuation lines joined) is one test, so examples added later are picked
up without touching this file. It runs through bash with the installed `vllm-launch` first on PATH, offline, in a
fresh folder holding `./my-model` (Llama-3.1-8B-Instruct's config, from the catalog) and `./tiny`. The stand-ins:
two H100 80GB behind NVML (tests/fake_nvml, the one hardware seam), tests/fake_vllm.py as `vllm` for commands that
start a server (through VLLM_LAUNCH_VLLM, on a free port through VLLM_LAUNCH_PORT), and the suite's real vLLM CPU
server for `check --url http://127.0.0.1:8000` (the URL is pointed at it). The exit status must be the one the line's
comment names (`# exit 1: ...`, `# exit 0 or 1: ...`), else 0; `--json` output must parse, `-o FILE` must exist
afterwards. A command that serves runs until it reports READY, then gets SIGTERM and must stop cleanly; its
`--ready-file FILE` must exist while it is ready and be gone after. ```python blocks run too, and `# -> VALUE`
comments are checked. A ```text block that starts with `$ vllm-launch ...` is a command and (an excerpt of) its
output: the command runs, and the lines shown must appear, in that order and together, in what it prints (spacing
aside), so the README's sample outputs never go stale.

Set-up lines are what this suite's own run does (tests/run.sh installs the project with pip, then runs the tests),
so `pip install .` and `bash tests/run.sh` are the only words not run here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import model_configs as mc
import yaml
from helpers import write_model_dir

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
SETUP = ("pip install .", "bash tests/run.sh")  # done by the run that runs this file
LIVE_SERVER_URL = "http://127.0.0.1:8000"  # the README's server; tests point it at the suite's real one
TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 1030,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 2048,
    "torch_dtype": "bfloat16",
}


def readme_examples(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, code): one per command line of the bash blocks, one per python block."""
    examples = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w+)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        lang, start, body = fence[1], i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        if lang == "python":
            examples.append((start + 1, "python", "\n".join(body)))
        elif lang == "text" and body and body[0].startswith("$ vllm-launch "):
            # A command with the output it shows: run it and find the shown lines in its output.
            examples.append((start + 1, "output", "\n".join(body)))
        elif lang in ("bash", "sh", "shell", "console"):
            j = 0
            while j < len(body):
                first, command = j, body[j]
                while command.rstrip().endswith("\\") and j + 1 < len(body):
                    j += 1
                    command = command.rstrip()[:-1] + " " + body[j].strip()
                j += 1
                if command.strip() and not command.lstrip().startswith("#"):
                    examples.append((start + first + 1, "bash", command.strip()))
    return examples


EXAMPLES = readme_examples(README.read_text())


def expected_status(command: str) -> set[int]:
    comment = command.split(" # ", 1)[1] if " # " in command else ""
    match = re.search(r"exit (\d)(?: or (\d))?", comment)
    return {int(g) for g in match.groups() if g} if match else {0}


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def serves(argv: list[str]) -> bool:
    """`vllm-launch [serve] ...` without --dry-run starts a server."""
    if "vllm-launch" not in argv:
        return False
    rest = argv[argv.index("vllm-launch") + 1 :]
    return bool(rest) and (rest[0] == "serve" or rest[0].startswith("-")) and "--dry-run" not in rest and "--help" not in rest


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workdir(tmp_path: Path) -> Path:
    """The folder the examples run in: ./my-model and ./tiny, as the README says."""
    write_model_dir(tmp_path / "my-model", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    write_model_dir(tmp_path / "tiny", TINY)
    return tmp_path


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_LAUNCH_", "HF_", "VLLM_API_KEY"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(tmp / "hf-home"),
            "PYTHONPATH": str(HERE / "fake_nvml"),
            "VLLM_LAUNCH_VLLM": str(HERE / "fake_vllm.py"),
            "VLLM_LAUNCH_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_serving(command: str, cwd: Path, env: dict[str, str], ready_file: Path | None = None) -> tuple[int, str, str]:
    """Start it, wait for READY, stop it with SIGTERM as a user would with Ctrl-C or systemd: it must exit 0. A
    --ready-file exists while the server is ready and is gone once it stopped."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=o, stderr=e, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while "READY in" not in err.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            ready = "READY in" in err.read_text()
            if ready and ready_file is not None:
                assert json.loads(ready_file.read_text())["url"].startswith("http://127.0.0.1:"), f"{ready_file.name} while ready"
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    stderr = err.read_text()
    assert ready, f"never READY:\n{stderr[-3000:]}"
    assert ready_file is None or not ready_file.exists(), f"{ready_file.name} is still there after the server stopped"
    return rc, out.read_text(), stderr


def check_outputs(argv: list[str], stdout: str, cwd: Path) -> None:
    """What the flags promise: --json parses, -o FILE exists, --format vllm-config is YAML (--ready-file: run_serving)."""
    if "--json" in argv and "-o" not in argv:
        json.loads(stdout)
    for flag in ("-o", "--output"):
        if flag in argv:
            path = cwd / argv[argv.index(flag) + 1]
            assert path.is_file(), f"{flag} {path.name} was not written"
            if path.suffix in (".yaml", ".yml"):
                assert list(yaml.safe_load_all(path.read_text()))


def run_example(lineno: int, code: str, cwd: Path, env: dict[str, str]) -> None:
    """Run one README command line and check it against what the README says."""
    parts = [p.strip() for p in code.split(" && ") if p.strip() not in SETUP]
    if not parts:  # only set-up words: this run did them
        assert (HERE / "run.sh").is_file() and (Path(sys.executable).parent / "vllm-launch").is_file()
        return
    command = " && ".join(parts)
    argv = words(command)
    if serves(argv):
        ready_file = cwd / argv[argv.index("--ready-file") + 1] if "--ready-file" in argv else None
        rc, stdout, stderr = run_serving(command, cwd, env, ready_file)
    else:
        result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        rc, stdout, stderr = result.returncode, result.stdout, result.stderr
    assert "Traceback" not in stdout + stderr, stderr
    assert rc in expected_status(code), f"README.md:{lineno} exited {rc}, expected {expected_status(code)}:\n{stderr[-3000:]}"
    if rc == 0:
        check_outputs(argv, stdout, cwd)

"""Launcher parts without a real server: readiness against a scripted HTTP server, diagnosis of verbatim vLLM logs,
sd_notify, and the refusals that happen before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import model_configs as mc
import pytest
from helpers import run_cli, write_model_dir
from inprocess import run_main

from launcher.commands.serve import HEALTH_POLL_S, write_ready_file
from launcher.http import request
from launcher.serve import readiness
from launcher.serve.diagnose import Diagnosis, diagnose, with_flag
from launcher.serve.logwatch import LogWatch
from launcher.serve.notify import sd_notify

FAKE_VLLM = Path(__file__).parent / "fake_vllm.py"


def scripted(routes: dict[str, tuple[int, object]]):
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, body = routes.get(self.path, (404, {"detail": "Not Found"}))
            self.send_response(status)
            self.end_headers()
            if body is not None:
                self.wfile.write(json.dumps(body).encode())

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def models(length: int, name: str = "tiny") -> dict:
    return {"object": "list", "data": [{"id": name, "max_model_len": length}]}


@pytest.mark.parametrize(
    ("routes", "stage", "detail"),
    [
        ({"/health": (503, None)}, "engine dead", "503"),
        ({"/health": (200, None), "/v1/models": (200, models(1024))}, "models", "max_model_len is 1024, not the planned 512"),
        ({"/health": (200, None), "/v1/models": (200, models(512, "other"))}, "models", "does not list 'tiny'"),
        ({"/health": (200, None), "/v1/models": (401, {"error": "Unauthorized"})}, "auth", "401 without a key"),
        ({"/health": (200, None), "/v1/models": (403, {"error": "Forbidden"})}, "auth", "403 without a key"),
        (
            {"/health": (200, None), "/v1/models": (200, models(512)), "/v1/completions": (500, {"error": {"message": "boom"}})},
            "completion",
            "answered 500",
        ),
        ({"/health": (200, None), "/v1/models": (200, models(512)), "/v1/completions": (200, {"choices": [{"text": "x"}]})}, "ready", ""),
    ],
)
def test_readiness_states(routes, stage, detail):
    server, base = scripted(routes)
    try:
        state = readiness.check(base, "tiny", 512, None)
    finally:
        server.shutdown()
    assert state.stage == stage and detail in state.detail and state.ready == (stage == "ready")
    assert state.fatal == (stage in ("engine dead", "auth", "completion") or "max_model_len is" in detail)


def test_a_slow_first_completion_is_not_yet():
    """No answer within the probe's time is "not yet" (the deadline decides), not a server to stop."""
    hold = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            if self.path == "/v1/models":
                self.wfile.write(json.dumps(models(512)).encode())

        def do_POST(self) -> None:
            hold.wait(10)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state = readiness.check(f"http://127.0.0.1:{server.server_port}", "tiny", 512, None, completion_timeout=0.5)
    finally:
        hold.set()
        server.shutdown()
    assert (state.ready, state.stage, state.fatal) == (False, "completion", False), state


def test_nothing_listening_means_starting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert readiness.check(f"http://127.0.0.1:{port}", "tiny", 512, None).stage == "starting"


@pytest.mark.parametrize(
    ("log", "what", "flag"),
    [
        ("OSError: [Errno 98] Address already in use", "port 8000 is already in use", ("--port", "8001")),
        (
            "(EngineCore pid=4962) ERROR [multiproc_executor.py:315] Worker proc VllmWorker-0 died unexpectedly (exit code: -4), "
            "shutting down executor.",
            "illegal instruction",
            ("--dtype", "float16"),
        ),
        (
            "ValueError: Available memory on node 0 (14.26/15.59 GiB) on startup is less than desired CPU memory utilization (0.92, "
            "14.34 GiB). On the CPU backend",
            "free memory (14.26/15.59 GiB) is below the budget",
            ("--gpu-memory-utilization", "0.91"),  # floor(14.26/15.59, 2 decimals): 0.91 x 15.59 = 14.19 GiB <= 14.26 free
        ),
        ("huggingface_hub.errors.GatedRepoError: 401 Client Error.", "gated or private", None),
        ("OSError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/models/does-not-exist'.", "could not find", None),
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "CUDA ran out of memory",
            ("--gpu-memory-utilization", "0.87"),
        ),
    ],
)
def test_diagnosis_of_verbatim_failures(log, what, flag):
    d = diagnose(log, 1, port=8000, max_model_len=512, gpu_memory_utilization=0.92)
    assert what in d.what and d.flag == flag


def test_unknown_failure_and_signals():
    assert "status 1" in diagnose("something else", 1, port=1, max_model_len=1, gpu_memory_utilization=0.9).what
    running = diagnose("something else", None, port=1, max_model_len=1, gpu_memory_utilization=0.9).what
    assert "engine died" in running and "status" not in running
    assert "signal 9" in diagnose("", -9, port=1, max_model_len=1, gpu_memory_utilization=0.9).what


def test_suggested_command_rewrites_the_users_flag():
    argv = ["--model", "m", "--max-model-len", "4096", "--", "--enforce-eager"]
    assert with_flag(argv, "--max-model-len", "2048") == ["--model", "m", "--max-model-len", "2048", "--", "--enforce-eager"]
    assert with_flag(["--port=1"], "--port", "2") == ["--port", "2"]
    assert with_flag(["-tp", "4", "--model", "m"], "--tensor-parallel-size", "2") == ["--model", "m", "--tensor-parallel-size", "2"]
    vllm_spelling = ["--max_model_len=9000", "--", "--seed", "1"]
    assert with_flag(vllm_spelling, "--max-model-len", "8192") == ["--max-model-len", "8192", "--", "--seed", "1"]


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        (["--prompt", "30000", "--completion=2000", "--buffer", "500"], ("--max-model-len", "8192")),
        (["--prompt=1000", "--completion", "500", "--turns", "4", "--observation=300"], ("--max-model-len", "4096")),
        (["--max_model_len", "9000", "-tp", "1"], ("--tensor-parallel-size", "1")),
        (["--max-model-len=9000", "-tp=1"], ("--max-model-len", "8192")),
    ],
)
def test_suggested_command_parses(model_dir, given, flag):
    """The `try:` line is a command the user can paste: fed back to the CLI, it is not refused as a conflict."""
    argv = ["serve", "--model", str(model_dir), "--gpu", "H100-80GB", *PINNED, "--dry-run", *given, "--", "--seed", "1"]
    command = Diagnosis("w", "y", "f", flag).command(argv)
    words = shlex.split(command)[1:]
    assert words.count(flag[0]) == 1 and "-tp" not in words and not any(w.startswith("-tp=") for w in words), command
    assert words[words.index(flag[0]) + 1] == flag[1] and words[-3:] == ["--", "--seed", "1"]
    result = run_main(*words)
    assert result.rc in (0, 1) and "both given" not in result.err, (command, result.err)


def test_engine_death_is_read_from_vllms_own_records_only():
    """A client's prompt that names the error (logged by --enable-log-requests) is not vLLM's engine dying."""
    watch = LogWatch()
    for line in [
        "(APIServer pid=7) INFO 01-02 03:04:05 [request_logger.py:55] Request cmpl-1 details: prompt: 'what does EngineDeadError mean?'",
        "(APIServer pid=7) INFO 01-02 03:04:05 [logger.py:39] Received request cmpl-2: prompt: 'engine core exited unexpectedly\\n"
        "vllm.v1.engine.exceptions.EngineDeadError: x'",
        "INFO 01-02 03:04:05 logger.py:39] Received request cmpl-3: prompt: 'ERROR 01-02 03:04:05 [core.py:1] EngineDeadError'",
    ]:
        watch.feed(line)
    assert watch.engine_deaths == 0
    for line in [
        "(EngineCore_DP0 pid=9) ERROR 01-02 03:04:05 [core.py:1512] EngineCore encountered a fatal error.",
        "(APIServer pid=7) ERROR 01-02 03:04:05 [async_llm.py:906] AsyncLLM output_handler failed.",
        "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.",
        "ERROR 01-02 03:04:05 multiproc_executor.py:316] Worker proc VllmWorker-0 died unexpectedly, shutting down executor.",
    ]:
        watch.feed(line)
    assert watch.engine_deaths == 4


def test_logwatch_phases_only_move_forward_and_read_capacity():
    watch = LogWatch()
    for line in [
        "INFO Using max model len 512",
        "INFO Initializing a V1 LLM engine (v0.32.0)",
        "INFO Model loading took 0.1 GiB",
        "(EngineCore pid=1) INFO CPU KV cache size: 131,072 tokens, Maximum concurrency for 512 tokens per request: 256.00x",
        "INFO Using max model len 512",
    ]:
        watch.feed(line)
    assert watch.phase == "KV cache allocated" and watch.kv_cache_tokens == 131072 and watch.max_concurrency == 256.0


def test_sd_notify(monkeypatch, tmp_path):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")


OFFLINE_4K = ("--gpu", "H100-80GB", "--max-model-len", "4096")
PINNED = ("--vllm-version", "0.32.0", "--device", "cuda")  # rules and backend fixed, whatever vLLM is installed


@pytest.fixture
def model_dir(tmp_path):
    return write_model_dir(tmp_path / "m", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--vllm", "/nonexistent/vllm"], "`vllm` is not installed"),
        (["--deadline", "5"], "--deadline"),
        (["--ready-file", "EXISTING"], "already exists"),
        (["--ready-file", "MISSING/ready.json"], "does not exist"),
        (["--ready-file", "EXISTING/ready.json"], "is not a folder"),
        (["--ready-file", "/proc/ready.json"], "cannot write in /proc"),  # os.access says yes there, to root
        (["--log-file", "/proc/vllm.log"], "--log-file /proc/vllm.log: cannot write in /proc"),
        (["--log-file", "/proc/new/vllm.log"], "cannot write in /proc"),
        (["--log-file", "EXISTING/vllm.log"], "is not a folder"),
        (["--log-file", "FOLDER"], "is a folder"),
    ],
)
def test_serve_refuses_before_starting(model_dir, tmp_path, args, needle):
    """Each refused before vLLM starts (/bin/true stands in: a started one would exit, and serve report a failure)."""
    existing = tmp_path / "ready.json"
    existing.write_text("{}")
    args = [
        a.replace("EXISTING", str(existing)).replace("MISSING", str(tmp_path / "missing")).replace("FOLDER", str(tmp_path)) for a in args
    ]
    if "--vllm" not in args:
        args += ["--vllm", "/bin/true"]
    result = run_cli(
        "--model",
        str(model_dir),
        *OFFLINE_4K,
        *PINNED,
        "--port",
        "1",
        *args,
    )
    assert result.returncode == 2 and needle in result.stderr, result.stderr
    assert "starting:" not in result.stderr


def test_a_failed_ready_file_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "ready.json"
    (target / "in-the-way").mkdir(parents=True)  # replace() onto a non-empty folder fails after the temporary file is written
    with pytest.raises(OSError):
        write_ready_file(target, {"url": "http://127.0.0.1:1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready.json"]


def test_ready_file_that_cannot_be_written_leaves_the_server_serving(model_dir, tmp_path):
    """Its folder goes away while the model loads: serve warns, and vLLM keeps serving until it is asked to stop."""
    folder = tmp_path / "run"
    folder.mkdir()
    vllm = tmp_path / "vllm"
    vllm.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"if sys.argv[1:2] == ['serve']:\n    os.rmdir({str(folder)!r})\n"
        f"os.execv(sys.executable, [sys.executable, {str(FAKE_VLLM)!r}, *sys.argv[1:]])\n"
    )
    vllm.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [
        "--model",
        str(model_dir),
        *OFFLINE_4K,
        *PINNED,
        "--vllm",
        str(vllm),
        "--port",
        str(port),
        "--ready-file",
        str(folder / "r.json"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LAUNCH_")} | {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    err = tmp_path / "stderr.txt"
    with err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", *argv], stderr=e, stdout=subprocess.DEVNULL, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while "could not write --ready-file" not in err.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2 * HEALTH_POLL_S)  # serve watches /health on this beat: still there after it
        assert proc.poll() is None, err.read_text()
        assert request(f"http://127.0.0.1:{port}", "/health", timeout=5).status == 200
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = err.read_text()
    assert "READY in" in text and f"vLLM keeps serving at http://127.0.0.1:{port}/v1" in text and "Traceback" not in text, text


def test_dry_run_prints_the_exact_command(model_dir):
    result = run_cli(
        "serve",
        "--model",
        str(model_dir),
        *OFFLINE_4K,
        "--dry-run",
        *PINNED,
        "--port",
        "8123",
        "--enforce-eager",
        "--",
        "--seed",
        "1",
    )
    assert result.returncode == 0
    assert f"serve {model_dir} --max-model-len 4096 --gpu-memory-utilization 0.92 --enforce-eager --port 8123 --seed 1" in result.stdout
    assert result.stdout.count(" --seed 1") == 1  # the command is printed once


@pytest.mark.parametrize(
    "secret", [["--api-key", "sk-SECRET"], ["--api_key=sk-SECRET"], ["--api-k", "sk-SECRET"], ["--hf-token", "sk-SECRET"]]
)
def test_serve_refuses_a_secret_after_dashdash(model_dir, secret):
    """vLLM would require the key the probe does not know, and the key would be printed and shown in `ps`."""
    result = run_cli("--model", str(model_dir), *OFFLINE_4K, *PINNED, "--vllm", "/bin/true", "--port", "1", "--", *secret)
    assert result.returncode == 2 and "refusing" in result.stderr and "in the environment" in result.stderr, result.stderr
    assert "sk-SECRET" not in result.stdout + result.stderr and "starting:" not in result.stderr


class Launcher:
    """`vllm-launch` serving tests/fake_vllm.py (behaviours chosen by its FAKE_VLLM_* variables), as a user runs it."""

    def __init__(self, tmp_path: Path, model_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        argv = ["--model", str(model_dir), *OFFLINE_4K, *PINNED, "--vllm", str(FAKE_VLLM), "--port", str(self.port), *args]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_LAUNCH_", "FAKE_VLLM_", "VLLM_API_KEY"))}
        full_env |= {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.err = tmp_path / f"stderr-{self.port}.txt"
        with self.err.open("w") as e:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "launcher", *argv, "--log-file", str(tmp_path / f"vllm-{self.port}.log")],
                stderr=e,
                stdout=subprocess.DEVNULL,
                env=full_env,
                start_new_session=True,
            )

    @property
    def text(self) -> str:
        return self.err.read_text()

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert needle in self.text, self.text

    def vllm_pid(self) -> int:
        import psutil

        return psutil.Process(self.proc.pid).children()[0].pid

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vllm-launch still running {timeout} s later:\n{self.text}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def launch(tmp_path, model_dir):
    started: list[Launcher] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Launcher:
        started.append(Launcher(tmp_path, model_dir, *args, env=env))
        return started[-1]

    yield start
    for launcher in started:
        launcher.close()


def test_a_key_vllm_has_and_the_probe_lacks_is_fatal_at_once(launch):
    """vLLM finds VLLM_API_KEY in its environment, the launcher reads --api-key-env OTHER (unset): 401 at once, no
    polling until --deadline, and the key is not printed."""
    served = launch("--api-key-env", "OTHER_KEY", "--deadline", "60", env={"VLLM_API_KEY": "sk-SECRET"})
    assert served.wait(30) == 1
    text = served.text
    assert "vLLM refuses the key: /v1/models answered 401 without a key" in text and "$OTHER_KEY is not set" in text, text
    assert "not ready" not in text and "sk-SECRET" not in text


def test_the_ready_file_exists_while_ready_only(launch, tmp_path):
    """Gone when vLLM is stopped (so a retry with the same --ready-file starts) and when vLLM dies."""
    ready = tmp_path / "endpoint.json"
    first = launch("--ready-file", str(ready))
    first.wait_for("READY in")
    assert json.loads(ready.read_text())["url"] == first.base
    os.killpg(first.proc.pid, signal.SIGTERM)
    assert first.wait(30) == 0 and not ready.exists(), first.text
    second = launch("--ready-file", str(ready))
    second.wait_for("READY in")
    assert ready.is_file()
    os.kill(second.vllm_pid(), signal.SIGKILL)
    assert second.wait(30) == 1 and not ready.exists(), second.text


def test_a_stop_while_the_probe_waits_is_not_ready(launch, tmp_path):
    """Ctrl-C while the 1-token completion is in flight: no READY, no sd_notify READY=1, no ready file; exit 0."""
    ready = tmp_path / "endpoint.json"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(0.1)
        env = {"FAKE_VLLM_SLOW_COMPLETION": "3", "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        served = launch("--ready-file", str(ready), env=env)
        served.wait_for("fake vllm: completion received")
        os.kill(served.proc.pid, signal.SIGINT)
        assert served.wait(10) == 0, served.text
        messages = []
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(sock.recv(1000).decode())
    assert "READY in" not in served.text and not ready.exists(), served.text
    assert not any("READY=1" in m for m in messages) and any("STOPPING=1" in m for m in messages), messages


def test_signals_are_answered_while_a_probe_waits(launch):
    """The first completion hangs and vLLM ignores SIGTERM: Ctrl-C starts the stop at once, a second Ctrl-C kills it at
    once, and a requested stop exits 0 however vLLM went (systemd would mark a normal stop failed)."""
    served = launch("--grace", "60", env={"FAKE_VLLM_SLOW_COMPLETION": "600", "FAKE_VLLM_IGNORE_SIGTERM": "1"})
    served.wait_for("fake vllm: completion received")
    vllm = served.vllm_pid()
    asked = time.monotonic()
    os.kill(served.proc.pid, signal.SIGINT)
    served.wait_for("stopping vLLM", timeout=5)
    time.sleep(0.5)
    os.kill(served.proc.pid, signal.SIGINT)
    assert served.wait(10) == 0, served.text
    assert time.monotonic() - asked < 10 and "killed" in served.text, served.text
    with pytest.raises(ProcessLookupError):
        os.kill(vllm, 0)


def test_a_group_stop_is_not_a_failure(launch):
    """systemd stops a unit by signalling every process in it: vLLM may exit before the launcher has stopped it."""
    served = launch()
    served.wait_for("READY in")
    vllm = served.vllm_pid()
    os.kill(served.proc.pid, signal.SIGTERM)
    os.kill(vllm, signal.SIGTERM)
    assert served.wait(30) == 0, served.text
    assert "FAILED" not in served.text and "without being asked" not in served.text


def test_a_prompt_naming_the_error_does_not_stop_the_server(launch):
    """With request logging the prompt is in vLLM's log; only vLLM's own records, confirmed by /health, stop it."""
    served = launch(env={"FAKE_VLLM_LOG_REQUESTS": "1", "FAKE_VLLM_DIE_ON": "die now"})
    served.wait_for("READY in")
    for prompt in ("what does EngineDeadError mean?", "vllm.v1.engine.exceptions.EngineDeadError: engine core exited unexpectedly"):
        answer = request(served.base, "/v1/completions", payload={"model": "m", "prompt": prompt, "max_tokens": 1}, timeout=5)
        assert answer.status == 200
    time.sleep(3 * HEALTH_POLL_S)
    assert served.proc.poll() is None, served.text
    request(served.base, "/v1/completions", payload={"model": "m", "prompt": "die now", "max_tokens": 1}, timeout=5)
    assert served.wait(30) == 1
    text = served.text
    assert "vLLM's engine died (/health: 503)" in text and "status None" not in text and "FAILED: vLLM's engine died" in text, text


def test_the_default_log_goes_elsewhere_when_the_current_folder_is_not_writable(model_dir, tmp_path):
    """A systemd unit without WorkingDirectory runs in /, which the service user cannot write: no traceback, the log
    goes to $XDG_STATE_HOME/vllm-launch and serve says so."""
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state), "STATE_DIRECTORY": ""}
    result = run_cli("--model", str(model_dir), *OFFLINE_4K, *PINNED, "--vllm", "/bin/true", "--port", "1", env=env, cwd=Path("/proc"))
    log = state / "vllm-launch" / "vllm-launch-1.log"
    assert "Traceback" not in result.stderr and f"vLLM's log goes to {log}" in result.stderr and log.is_file(), result.stderr

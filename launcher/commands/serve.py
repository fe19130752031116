"""`vllm-launch [serve]`: plan, start `vllm serve`, prove it is ready, supervise it, explain failures."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from launcher.commands.plan import build_plan, formatted
from launcher.errors import UserError
from launcher.http import Response, request
from launcher.inputs import check_serve, check_vllm_extra_args, secret_arg
from launcher.installed import find_vllm
from launcher.output import emit
from launcher.report import plan_text
from launcher.serve import preflight, readiness
from launcher.serve.diagnose import Diagnosis, diagnose
from launcher.serve.logwatch import LogWatch
from launcher.serve.notify import sd_notify
from launcher.serve.process import VllmProcess
from launcher.settings import ServeSettings
from launcher.sizing.plan import Plan

START_POLL_S = 0.2  # readiness probe while starting: ready is reported within this of vLLM answering
EXIT_POLL_S = 0.1  # process liveness: a dead vLLM is noticed within this
HEALTH_POLL_S = 0.5  # /health while serving (503 = engine dead)
HEALTH_TIMEOUT_S = 5.0  # a busy server answers /health late; a dead engine answers 503 at once


class Console:
    """vLLM's lines go through; on a terminal a status line stays below them, otherwise phases print as plain lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now, not at import: redirected streams (tests) are honoured
        self.tty = self.stream.isatty()
        self.lock = threading.Lock()
        self.status = ""
        self._last_phase = ""

    def line(self, text: str) -> None:
        with self.lock:
            if self.tty and self.status:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            if self.tty and self.status:
                self.stream.write(self.status)
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line(f"[vllm-launch] {text}")

    def progress(self, phase: str, elapsed: float, deadline: float) -> None:
        if self.tty:
            with self.lock:
                self.status = f"[vllm-launch] {phase} ... {elapsed:5.1f} s (deadline {deadline:.0f} s)"
                self.stream.write("\r\033[K" + self.status)
                self.stream.flush()
        elif phase != self._last_phase:
            self._last_phase = phase
            self.say(f"{phase} ({elapsed:.1f} s; deadline {deadline:.0f} s)")

    def clear_status(self) -> None:
        with self.lock:
            if self.tty and self.status:
                self.stream.write("\r\033[K")
                self.stream.flush()
            self.status = ""


def vllm_command(s: ServeSettings, plan: Plan, executable: str) -> list[str]:
    argv = [executable, "serve", *plan.vllm_args, "--port", str(s.port)]
    if s.host:
        argv += ["--host", s.host]
    return argv + s.vllm_extra_args


def launch_env(s: ServeSettings, plan: Plan) -> dict[str, str]:
    env = dict(os.environ)
    env.update(dict(plan.env))
    key = os.environ.get(s.api_key_env)
    if key:
        env["VLLM_API_KEY"] = key  # vLLM reads it from its environment: the key never shows in `ps`
    return env


class Supervisor:
    def __init__(self, s: ServeSettings, plan: Plan, console: Console) -> None:
        self.s, self.plan, self.console = s, plan, console
        self.stops = 0
        self.watch = LogWatch()
        self.served = s.served_model_name or s.model
        probe_host = s.host if s.host and s.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.base = f"http://{probe_host}:{s.port}"
        self.api_key = os.environ.get(s.api_key_env)
        self.ready_file_written: Path | None = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stops += 1
        if self.stops == 1:
            self.console.say(f"{signal.Signals(signum).name}: stopping vLLM (again to kill it at once)")

    def _on_line(self, line: str) -> None:
        self.watch.feed(line)
        self.console.line(line)

    def run(self, argv: list[str], env: dict[str, str], log_path: Path) -> int:
        """Supervise until vLLM stops. Every HTTP probe runs in the background (readiness.Pending), so a signal, the
        deadline and vLLM's exit are noticed within EXIT_POLL_S however long a probe waits."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        started = time.monotonic()
        self.console.say("starting: " + shlex.join(argv))
        self.console.say(f"log: {log_path}")
        proc = VllmProcess(argv, env, log_path, self._on_line)
        ready_at: float | None = None
        next_probe = next_health = 0.0
        probe: readiness.Pending[readiness.Readiness] | None = None
        health: readiness.Pending[Response] | None = None
        deaths_seen = 0  # engine-death lines of vLLM's log already checked against /health
        hinted = False  # the /health probe in flight was sent because of such a line
        try:
            while True:
                if self.stops:  # before vLLM's status: on a group signal (systemd's stop) vLLM may exit first
                    return self._stop(proc)
                rc = proc.poll()
                if rc is not None:
                    return self._failed(proc, rc)
                now = time.monotonic()
                if ready_at is None:
                    if now - started > self.s.deadline:
                        self.console.clear_status()
                        self.console.say(f"not ready after {self.s.deadline:.0f} s (last phase: {self.watch.phase}); stopping it")
                        self._stop(proc)
                        self._explain(
                            Diagnosis(
                                f"vLLM was not ready within --deadline {self.s.deadline:.0f} s",
                                f"it was still '{self.watch.phase}'",
                                "raise --deadline if loading is just slow",
                            ),
                            None,
                        )
                        return 1
                    self.console.progress(self.watch.phase, now - started, self.s.deadline)
                    if probe is None and now >= next_probe:
                        left = self.s.deadline - (now - started)
                        probe = readiness.Pending(readiness.check, self.base, self.served, self.plan.max_model_len, self.api_key, left)
                    elif probe is not None and probe.done():
                        state, probe, next_probe = probe.result, None, now + START_POLL_S
                        if state is None or self.stops:  # a stop asked while the probe waited wins over its answer
                            continue
                        if state.ready:
                            ready_at = time.monotonic()
                            self.console.clear_status()
                            self._report_ready(ready_at - started)
                        elif state.fatal:
                            return self._unusable(proc, state)
                elif health is None and (self.watch.engine_deaths > deaths_seen or now >= next_health):
                    hinted, deaths_seen = self.watch.engine_deaths > deaths_seen, self.watch.engine_deaths
                    health = readiness.Pending(request, self.base, "/health", timeout=HEALTH_TIMEOUT_S)
                elif health is not None and health.done():
                    status = health.result.status if health.result else None
                    health, next_health = None, now + HEALTH_POLL_S
                    # vLLM answers 503 once its engine is dead (0.32.0 entrypoints/serve/instrumentator/health.py); no
                    # answer counts only after vLLM's own log said so: a busy server can be slow to answer.
                    if (status == 503 or (status is None and hinted)) and not self.stops:
                        self.console.say(f"vLLM's engine died (/health: {status or 'no answer'}); stopping the server")
                        self._stop(proc)
                        self._explain(self._diagnosis(None), proc.log_path)
                        return 1
                time.sleep(EXIT_POLL_S)
        finally:
            if proc.poll() is None or proc.tree():
                proc.stop(0)
            self._withdraw_ready_file()

    def _unusable(self, proc: VllmProcess, state: readiness.Readiness) -> int:
        """The server answers, but not as planned: waiting will not change it."""
        self.console.clear_status()
        if state.stage != "auth":
            self.console.say(f"the server answers but is not usable: {state.detail}")
            self._stop(proc)
            return 1
        self.console.say(f"vLLM refuses the key: {state.detail}")
        self._stop(proc)
        given = f"the key in ${self.s.api_key_env}" if self.api_key else f"no key (${self.s.api_key_env} is not set)"
        self._explain(
            Diagnosis(
                f"vLLM refuses the key: {state.detail}",
                f"vLLM requires an API key (VLLM_API_KEY in its environment) and vllm-launch probed with {given}",
                f"set the key as {self.s.api_key_env} in vllm-launch's environment only: it hands it to vLLM as VLLM_API_KEY",
            ),
            proc.log_path,
        )
        return 1

    def _stop(self, proc: VllmProcess) -> int:
        """Stop vLLM. Asked to stop (a signal), the launcher exits 0 however vLLM went: a stop is not a failure, and
        systemd (Type=notify) would mark a normal stop failed otherwise."""
        self.console.clear_status()
        self._withdraw_ready_file()
        sd_notify("STOPPING=1")
        rc = proc.stop(self.s.grace, hurry=lambda: self.stops > 1)
        self.console.say(f"vLLM stopped ({how_it_ended(rc, self.s.grace)}); no process of it is left")
        return 0

    def _diagnosis(self, rc: int | None) -> Diagnosis:
        return diagnose(
            self.watch.text(),
            rc,
            port=self.s.port,
            max_model_len=self.plan.max_model_len,
            gpu_memory_utilization=self.plan.gpu_memory_utilization,
        )

    def _failed(self, proc: VllmProcess, rc: int) -> int:
        """vLLM exited on its own. Status 0 is a failure too: vLLM exits 0 when its engine dies."""
        self.console.clear_status()
        self._withdraw_ready_file()
        proc.stop(0)  # whatever the API server left behind (engine, workers); then its output is drained
        if rc == 0:
            self.console.say("vLLM exited with status 0 without being asked to stop: that is a failure")
        self._explain(self._diagnosis(rc), proc.log_path)
        return rc if rc > 0 else 1

    def _explain(self, d: Diagnosis, log_path: Path | None) -> None:
        say = self.console.say
        say(f"FAILED: {d.what}")
        say(f"  why: {d.why}")
        say(f"  what to do: {d.fix}")
        command = d.command(sys.argv[1:])
        if command:
            say(f"  try: {command}")
        tail = self.watch.tail(25)
        if tail:
            say("last lines of vLLM's log" + (f" ({log_path})" if log_path else "") + ":")
            for line in tail:
                self.console.line("    " + line)

    def _report_ready(self, elapsed: float) -> None:
        plan, w = self.plan, self.watch
        say = self.console.say
        say(f"READY in {elapsed:.1f} s: {self.base}/v1  model {self.served!r}  max_model_len {plan.max_model_len:,}")
        sd_notify(f"READY=1\nSTATUS=serving {self.served} at {self.base}/v1, max_model_len {plan.max_model_len}")
        if w.kv_cache_tokens is not None:
            diff = (w.kv_cache_tokens - plan.kv_cache_tokens) / max(1, plan.kv_cache_tokens) * 100
            say(
                f"KV cache: vLLM {w.kv_cache_tokens:,} tokens, {w.max_concurrency or 0:.2f}x; "
                f"planned {plan.kv_cache_tokens:,} tokens, {plan.max_concurrency:.2f}x ({diff:+.1f}%)"
            )
            if abs(diff) > 5:
                say("warning: vLLM's KV capacity differs from the plan by more than 5%")
        if self.s.ready_file:
            self._write_ready_file(
                {
                    "url": self.base,
                    "openai_base_url": self.base + "/v1",
                    "model": self.served,
                    "max_model_len": plan.max_model_len,
                    "kv_cache_tokens": w.kv_cache_tokens,
                    "max_concurrency": w.max_concurrency,
                    "planned_kv_cache_tokens": plan.kv_cache_tokens,
                    "planned_max_concurrency": round(plan.max_concurrency, 4),
                    "pid": os.getpid(),
                    "ready_after_s": round(elapsed, 2),
                }
            )

    def _write_ready_file(self, data: dict) -> None:
        """Checked before the start, yet the folder can go away while the model loads: a healthy server keeps serving."""
        path = self.s.ready_file
        try:
            write_ready_file(path, data)
            self.ready_file_written = path
        except OSError as exc:
            self.console.say(
                f"warning: could not write --ready-file {path} ({exc.strerror or exc}); vLLM keeps serving at {self.base}/v1, "
                "but whatever waits for that file will not see it"
            )

    def _withdraw_ready_file(self) -> None:
        """The ready file exists while the server is ready: gone once it stops, so a retry may use the same name."""
        path, self.ready_file_written = self.ready_file_written, None
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                self.console.say(f"warning: could not remove --ready-file {path} ({exc.strerror or exc}); it names a stopped server")


def how_it_ended(rc: int | None, grace: float) -> str:
    if rc is None:
        return "its main process did not report an exit status"
    if rc == -signal.SIGKILL:
        return f"killed: it had not exited {grace:g} s after SIGTERM, or a second signal asked to kill it"
    if rc < 0:
        try:
            return f"on signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"on signal {-rc}"
    return f"status {rc}"


def write_ready_file(path: Path, data: dict) -> None:
    """Whole or not at all: readers never see half a file, and a failed write leaves no temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def refuse_secrets(s: ServeSettings) -> None:
    """A key after `--` would show in `ps`, in the `starting:` line and its log, and the readiness probe would not know it."""
    found = secret_arg(s.vllm_extra_args)
    if found:
        written, secret = found
        spelling = "" if written == "--" + secret else f" (vLLM reads it as --{secret})"
        where = "HF_TOKEN" if secret == "hf-token" else s.api_key_env
        if where not in ("HF_TOKEN", "VLLM_API_KEY"):
            where += " (vllm-launch hands it to vLLM as VLLM_API_KEY)"
        raise UserError(
            f"refusing {written}{spelling} after `--`",
            "a secret on vLLM's command line shows in `ps`, in vllm-launch's output and logs"
            + (", and the readiness probe would not send it" if secret == "api-key" else ""),
            f"set it in the environment instead: {where}",
        )


def run(s: ServeSettings) -> int:
    check_serve(s)
    refuse_secrets(s)
    installed = find_vllm(s.vllm)
    plan = build_plan(s, installed)
    argv = vllm_command(s, plan, installed.executable or s.vllm)
    check_vllm_extra_args(s.vllm_extra_args, argv[2 : len(argv) - len(s.vllm_extra_args)])
    text = formatted(plan, "json" if s.json_output else s.format, argv)  # the plan with the exact command, once
    if s.dry_run and plan.fits:
        emit(text, s.output, s.force)
        return 0
    guessed = bool(plan.unverified) and not s.force
    if not plan.fits or guessed or s.dry_run:
        if s.output and str(s.output) != "-":
            sys.stderr.write(plan_text(plan, argv))
            print(f"vllm-launch serve: the plan does not fit, so {s.output} was not written", file=sys.stderr)
        else:
            sys.stdout.write(text)
        if not plan.fits:
            Console().say("not starting vLLM: the plan does not fit (see above); nothing was launched")
        else:
            Console().say("not starting vLLM: the KV-cache numbers for this model are unverified (see above); pass --force to start")
        return 1
    if plan.layout_reason:
        Console().say(plan.layout_reason)
    preflight.check_vllm(installed)
    preflight.check_port(s.host or "0.0.0.0", s.port)
    if s.ready_file:
        preflight.check_ready_file(s.ready_file)
    if s.log_file:
        preflight.check_log_file(s.log_file)
        log_path = s.log_file
    else:
        log_path, fallback = preflight.default_log_file(s.port)
        if fallback:
            Console().say(fallback)
    return Supervisor(s, plan, Console()).run(argv, launch_env(s, plan), log_path.resolve())

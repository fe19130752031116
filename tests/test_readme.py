"""Every example in README.md runs, as written, and does what the README says (see tests/readme_examples.py for how).
Examples that talk to a live server run in tests/e2e/test_readme_live.py, against the suite's real vLLM server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from readme_examples import EXAMPLES, LIVE_SERVER_URL, README, environment, run_example, workdir

OFFLINE = [e for e in EXAMPLES if e[1] == "bash" and LIVE_SERVER_URL not in e[2]]


@pytest.mark.parametrize(("lineno", "code"), [pytest.param(e[0], e[2], id=f"README.md:{e[0]}") for e in OFFLINE])
def test_readme_command(lineno: int, code: str, tmp_path: Path) -> None:
    cwd = workdir(tmp_path)
    run_example(lineno, code, cwd, environment(cwd))


@pytest.mark.parametrize(("lineno", "code"), [pytest.param(e[0], e[2], id=f"README.md:{e[0]}") for e in EXAMPLES if e[1] == "python"])
def test_readme_python(lineno: int, code: str) -> None:
    scope: dict = {}
    exec(compile(code, f"README.md:{lineno}", "exec"), scope)
    checked = 0
    for line in code.splitlines():
        match = re.match(r"^(\w+)\s*=.*#\s*->\s*(.+)$", line)
        if match:
            assert repr(scope[match[1]]) == match[2].strip(), line
            checked += 1
    assert checked or "# ->" not in code


@pytest.mark.parametrize(("lineno", "block"), [pytest.param(e[0], e[2], id=f"README.md:{e[0]}") for e in EXAMPLES if e[1] == "output"])
def test_readme_sample_output(lineno: int, block: str, tmp_path: Path) -> None:
    command, *shown = block.splitlines()
    cwd = workdir(tmp_path)
    result = subprocess.run(["bash", "-c", command[2:]], cwd=cwd, env=environment(cwd), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    printed = " ".join((result.stdout + result.stderr).split())
    assert " ".join(" ".join(shown).split()) in printed, f"README.md:{lineno}: the output shown is not what it prints:\n{result.stdout}"


def test_every_block_was_found() -> None:
    """The parser sees the README's examples (a README parsed into nothing would pass vacuously)."""
    bash = [e for e in EXAMPLES if e[1] == "bash"]
    assert len(bash) >= 15 and any(e[1] == "python" for e in EXAMPLES)
    assert any(line.rstrip().endswith("\\") for line in README.read_text().splitlines() if line.startswith("vllm-launch explain"))
    assert any(e[2].startswith("vllm-launch explain") and "--max-tokens 27000" in e[2] for e in bash)

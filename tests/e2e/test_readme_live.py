"""README.md's examples that talk to a live server (http://127.0.0.1:8000 there), against the suite's real vLLM server."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import API_KEY
from readme_examples import EXAMPLES, LIVE_SERVER_URL, environment, run_example, workdir

pytestmark = pytest.mark.e2e
LIVE = [e for e in EXAMPLES if e[1] == "bash" and LIVE_SERVER_URL in e[2]]


@pytest.mark.parametrize(("lineno", "code"), [pytest.param(e[0], e[2], id=f"README.md:{e[0]}") for e in LIVE])
def test_readme_command_against_the_real_server(lineno: int, code: str, served, tmp_path: Path) -> None:
    _, info = served
    cwd = workdir(tmp_path)
    env = environment(cwd)
    env["VLLM_API_KEY"] = API_KEY
    run_example(lineno, code.replace(LIVE_SERVER_URL, info["url"]), cwd, env)

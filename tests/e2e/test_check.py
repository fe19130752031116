"""`vllm-launch check --probe` against the real server (max_model_len 512): prediction and reality must agree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import API_KEY, launcher_env

pytestmark = pytest.mark.e2e


def check(info: dict, vllm_venv, prompt: int, max_tokens: int, key: str = API_KEY) -> tuple[int, dict | str]:
    env = launcher_env(vllm_venv, TEST_API_KEY=key)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher",
            "check",
            "--url",
            info["url"],
            "--api-key-env",
            "TEST_API_KEY",
            "--prompt-tokens",
            str(prompt),
            "--max-tokens",
            str(max_tokens),
            "--probe",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return result.returncode, (json.loads(result.stdout) if result.stdout else result.stderr)


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "outcome", "status", "finish", "completion"),
    [
        (100, 50, "fits", 200, "length", 50),
        (400, 200, "clamped", 200, "length", 112),  # 0.32 silently cuts max_tokens to 512 - 400
        (600, 10, "rejected", 400, None, None),  # the prompt alone is over the limit
        (10, 1000, "rejected", 400, None, None),  # max_tokens > max_model_len
        (512, 10, "rejected", 400, None, None),  # prompt exactly at the limit: "max_tokens must be at least 1"
        (511, 1, "fits", 200, "length", 1),
    ],
)
def test_probe_matches_the_real_server(served, vllm_venv, prompt, max_tokens, outcome, status, finish, completion):
    _, info = served
    rc, data = check(info, vllm_venv, prompt, max_tokens)
    assert isinstance(data, dict), data
    assert data["server"]["max_model_len"] == 512 and data["server"]["version"] == "0.32.0"
    assert data["outcome"] == outcome and rc == (0 if outcome == "fits" else 1)
    assert data["probe"]["status"] == status and data["probe"]["finish_reason"] == finish
    assert data["probe"]["completion_tokens"] == completion
    assert data["probe_matches_prediction"], data


def test_wrong_api_key_is_explained(served, vllm_venv):
    _, info = served
    rc, err = check(info, vllm_venv, 10, 5, key="wrong")
    assert rc == 2 and "401 Unauthorized" in err


def test_explain_decodes_the_real_servers_errors(served, vllm_venv):
    _, info = served
    _, data = check(info, vllm_venv, 600, 10)
    from launcher.budget.explain import explain

    e = explain(data["probe"]["error"])
    assert e.kind == "prompt_over_len" and "600 tokens" in e.what and "512" in e.what

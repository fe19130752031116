"""A rendered sbatch script on a real one-node Slurm (slurmctld, slurmd, munged), with a stand-in `vllm`."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import model_configs as mc
import pytest
from cluster import run, wait_for
from helpers import run_cli, write_model_dir

pytestmark = pytest.mark.slurm
HERE = Path(__file__).resolve().parent
FAKE_VLLM = HERE.parent / "fake_vllm.py"


def job_state(cluster, jobid: str) -> tuple[str, str]:
    fields = cluster.job(jobid)
    return fields.get("JobState", "?"), fields.get("ExitCode", "?")


@pytest.fixture
def script(tmp_path) -> Path:
    model = write_model_dir(tmp_path / "model", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    out = tmp_path / "vllm.sbatch"
    result = run_cli(
        "render",
        "slurm",
        "--model",
        str(model),
        "--served-model-name",
        'tiny "llamà"',  # quotes and non-ASCII: the readiness check compares them with vLLM's JSON
        "--max-model-len",
        "8192",
        "--gpu",
        "RTX-3090",
        "--vllm",
        str(FAKE_VLLM),
        "--vllm-version",
        "0.32.0",
        "--device",
        "cuda",
        "--cpus-per-task",
        "1",
        "--mem",
        "1G",
        "--time",
        "00:10:00",
        "--deadline",
        "60",
        "--grace",
        "5",
        "--endpoint-file",
        str(tmp_path / "endpoint-${SLURM_JOB_ID}.json"),
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_sbatch_test_only_accepts_the_script(slurm, script):
    result = run(["sbatch", "--test-only", str(script)], slurm.env, cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert "to start at" in result.stderr


def test_job_reaches_ready_writes_endpoint_and_stops_on_scancel(slurm, script):
    jobid = slurm.sbatch(script)
    endpoint = script.parent / f"endpoint-{jobid}.json"
    try:
        wait_for(endpoint.exists, 90, f"endpoint file of job {jobid}")
    except AssertionError:
        out = list(script.parent.glob("*.out"))
        raise AssertionError(f"state {job_state(slurm, jobid)}; output: {out[0].read_text() if out else '-'}") from None
    info = json.loads(endpoint.read_text())
    assert info["model"] == 'tiny "llamà"' and info["max_model_len"] == 8192 and info["job_id"] == jobid
    with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/health", timeout=5) as r:
        assert r.status == 200
    assert job_state(slurm, jobid)[0] == "RUNNING"

    assert run(["scancel", jobid], slurm.env).returncode == 0
    assert slurm.wait_end(jobid) == ("CANCELLED", "143:0")
    assert not endpoint.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/health", timeout=2)
    output = next(script.parent.glob("*.out")).read_text()
    assert "READY at http://" in output and "TERM received, stopping vLLM" in output

"""A rendered sbatch script on a real one-node Slurm (slurmctld, slurmd, munged), with a stand-in `vllm`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import model_configs as mc
import pytest
from helpers import missing_real_part, run_cli, write_model_dir

pytestmark = pytest.mark.slurm
HERE = Path(__file__).resolve().parent
FAKE_VLLM = HERE.parent / "fake_vllm.py"


def _run(cmd, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    missing = [t for t in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing or os.geteuid() != 0:
        missing_real_part(f"needs root and Debian's slurmctld slurmd slurm-client munge (missing: {missing or 'root'})")
    base = tmp_path_factory.mktemp("slurm")
    subprocess.run([str(HERE / "setup.sh"), str(base)], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, SLURM_CONF=f"{base}/etc/slurm.conf")
    host = _run(["hostname", "-s"]).stdout.strip()
    log = open(base / "log" / "daemons.stderr", "w")  # noqa: SIM115 - open for the daemons' lifetime
    procs = []
    try:
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run(
                "mungekey --create && chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key", shell=True, check=True
            )
        if _run("munge -n | unmunge", shell=True).returncode != 0:
            os.makedirs("/run/munge", exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            procs.append(
                subprocess.Popen(
                    ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "/usr/sbin/munged", "-F"], stdout=log, stderr=log
                )
            )
            for _ in range(100):
                if _run("munge -n | unmunge", shell=True).returncode == 0:
                    break
                time.sleep(0.05)
        procs.append(subprocess.Popen(["slurmctld", "-D"], env=env, stdout=log, stderr=log))
        procs.append(subprocess.Popen(["slurmd", "-D"], env=env, stdout=log, stderr=log))
        deadline = time.monotonic() + 30
        while _run(["sinfo", "-h", "-n", host, "-o", "%T"], env).stdout.strip() != "idle":
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("slurm did not come up; see " + str(base / "log"))
            time.sleep(0.2)
        yield {"base": base, "env": env}
    finally:
        ids = _run(["squeue", "-h", "-o", "%i"], env).stdout.split()
        if ids:
            _run(["scancel", "--full", *ids], env)
            for _ in range(150):
                if not _run(["squeue", "-h", "-o", "%i"], env).stdout.split():
                    break
                time.sleep(0.1)
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for line in _run(["ps", "-eo", "pid=,comm="]).stdout.splitlines():  # slurmstepd ignores SIGTERM
            pid, comm = line.split(None, 1)
            if comm.strip() == "slurmstepd":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)


def job_state(env, jobid: str) -> tuple[str, str]:
    out = _run(["scontrol", "show", "job", jobid], env).stdout
    fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    return fields.get("JobState", "?"), fields.get("ExitCode", "?")


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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
    result = _run(["sbatch", "--test-only", str(script)], slurm["env"], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert "to start at" in result.stderr


def test_job_reaches_ready_writes_endpoint_and_stops_on_scancel(slurm, script):
    env = slurm["env"]
    submitted = _run(["sbatch", "--parsable", str(script)], env, cwd=script.parent)
    assert submitted.returncode == 0, submitted.stderr
    jobid = submitted.stdout.strip().split(";")[0]
    endpoint = script.parent / f"endpoint-{jobid}.json"
    try:
        wait_for(endpoint.exists, 90, f"endpoint file of job {jobid}")
    except AssertionError:
        out = list(script.parent.glob("*.out"))
        raise AssertionError(f"state {job_state(env, jobid)}; output: {out[0].read_text() if out else '-'}") from None
    info = json.loads(endpoint.read_text())
    assert info["model"] == 'tiny "llamà"' and info["max_model_len"] == 8192 and info["job_id"] == jobid
    with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/health", timeout=5) as r:
        assert r.status == 200
    assert job_state(env, jobid)[0] == "RUNNING"

    assert _run(["scancel", jobid], env).returncode == 0

    def ended() -> tuple[str, str] | None:
        state = job_state(env, jobid)
        return None if state[0] in ("RUNNING", "COMPLETING", "PENDING") else state

    state, _ = wait_for(ended, 60, "the job to end")
    assert state == "CANCELLED"
    assert not endpoint.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/health", timeout=2)
    output = next(script.parent.glob("*.out")).read_text()
    assert "READY at http://" in output and "TERM received, stopping vLLM" in output

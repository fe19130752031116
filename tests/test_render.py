"""Rendered deployment files, checked by the real tools: shellcheck, systemd-analyze, Kubernetes schemas, yamllint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers import in_ci, require_tool, run_cli

from launcher.sizing.versions import DEFAULT_VERSION

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
BASE = [
    "--model",
    "meta-llama/Llama-3.1-8B-Instruct",
    "--prompt",
    "30000",
    "--completion",
    "27000",
    "--vllm-version",
    "0.32.0",
    "--device",
    "cuda",
]
OFFLINE_GPU = ["--gpu", "H100-80GB"]
YAMLLINT = (
    "{extends: default, rules: {line-length: {max: 160}, document-start: disable, braces: {max-spaces-inside: 1}, "
    "comments: {min-spaces-from-content: 1}}}"
)
CASES = {
    "command.sh": ["command", *BASE, *OFFLINE_GPU],
    "vllm-config.yaml": ["vllm-config", *BASE, *OFFLINE_GPU],
    "vllm.service": ["systemd", *BASE, *OFFLINE_GPU, "--vllm-launch", "/usr/local/bin/vllm-launch", "--user", "vllm"],
    "slurm.sbatch": ["slurm", *BASE, *OFFLINE_GPU, "--partition", "gpu", "--setup", "source ~/vllm-venv/bin/activate"],
    "slurm-ray.sbatch": ["slurm", *BASE, *OFFLINE_GPU, "--nodes", "2", "--gpus-per-node", "2"],
    "slurm-native.sbatch": ["slurm", *BASE, *OFFLINE_GPU, "--nodes", "2", "--gpus-per-node", "2", "--multinode-backend", "native"],
    "slurm-array.sbatch": ["slurm", *BASE, *OFFLINE_GPU, "--replicas", "4"],
    "k8s.yaml": ["k8s", *BASE, "--namespace", "llm"],
    "k8s-lws.yaml": ["k8s", *BASE, "--nodes", "2", "--gpus-per-node", "4", "--api-key-secret", "vllm-api-key", "--hf-cache-pvc", "hf"],
}


def render(*args: str) -> str:
    result = run_cli("render", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: render(*args) for name, args in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(rendered, name):
    """Each target against its reviewed golden file (UPDATE_GOLDEN=1 rewrites them)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") and not in_ci() and rendered[name] != path.read_text():
        path.write_text(rendered[name])
        pytest.fail(f"{path} rewritten: review the diff and run again without UPDATE_GOLDEN")
    assert rendered[name] == path.read_text()


@pytest.mark.real("shellcheck")
@pytest.mark.parametrize("name", [n for n in CASES if n.endswith((".sh", ".sbatch"))])
def test_shellcheck(rendered, name, tmp_path):
    script = tmp_path / name
    script.write_text(rendered[name])
    require_tool("shellcheck")
    result = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.real("systemd-analyze")
def test_systemd_analyze_verify(rendered, tmp_path):
    unit = tmp_path / "vllm-test.service"
    exe = tmp_path / "vllm-launch"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit.write_text(rendered["vllm.service"].replace("/usr/local/bin/vllm-launch", str(exe)).replace("User=vllm", "User=root"))
    require_tool("systemd-analyze")
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and "vllm-test.service" not in result.stderr, result.stderr
    text = rendered["vllm.service"]
    for needle in (
        "Type=notify",
        "Restart=on-failure",
        "KillMode=mixed",
        "EnvironmentFile=-/etc/vllm-launch/secrets.env",
        "TimeoutStartSec=1860",
    ):
        assert needle in text


@pytest.mark.parametrize("name", ["k8s.yaml", "k8s-lws.yaml", "vllm-config.yaml"])
@pytest.mark.real("validators")
def test_yamllint(rendered, name, tmp_path):
    path = tmp_path / name
    path.write_text(rendered[name])
    result = subprocess.run([sys.executable, "-m", "yamllint", "-d", YAMLLINT, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def kubernetes_validate(tmp_path: Path, docs: list[dict]) -> None:
    path = tmp_path / "docs.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    exe = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(exe), "--strict", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.real("validators")
def test_kubernetes_schemas_single_node(rendered, tmp_path):
    docs = list(yaml.safe_load_all(rendered["k8s.yaml"]))
    assert [d["kind"] for d in docs] == ["Service", "Deployment"]
    kubernetes_validate(tmp_path, docs)
    pod = docs[1]["spec"]["template"]["spec"]
    sizer = pod["initContainers"][0]
    assert sizer["command"][:2] == ["vllm-launch", "plan"] and "/config/vllm.yaml" in sizer["command"]
    assert "--gpu" not in sizer["command"]  # the init container sizes on the node's real GPUs
    main = pod["containers"][0]
    assert main["image"].startswith("vllm/vllm-openai") and main["args"][:2] == ["--config", "/config/vllm.yaml"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/v1/models" and main["livenessProbe"]["httpGet"]["path"] == "/health"
    assert main["startupProbe"]["failureThreshold"] * main["startupProbe"]["periodSeconds"] >= 1800
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}}} in main["env"]


@pytest.mark.real("validators")
def test_leaderworkerset_by_its_crd_schema(rendered, tmp_path):
    docs = list(yaml.safe_load_all(rendered["k8s-lws.yaml"]))
    service, lws = docs
    kubernetes_validate(tmp_path, [service])
    jsonschema.validate(lws, json.loads((HERE / "data" / "leaderworkerset-v1.schema.json").read_text()))
    templates = lws["spec"]["leaderWorkerTemplate"]
    kubernetes_validate(
        tmp_path,
        [
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"}, "template": templates[key]}
            for i, key in enumerate(("leaderTemplate", "workerTemplate"))
        ],
    )
    assert templates["size"] == 2
    plan_cmd = templates["leaderTemplate"]["spec"]["initContainers"][0]["command"]
    assert plan_cmd[plan_cmd.index("--tensor-parallel-size") + 1] == "4" and plan_cmd[plan_cmd.index("--pipeline-parallel-size") + 1] == "2"


# deploy/kubernetes/kustomization.yaml names this command in its header.
DEPLOY_ARGS = [
    "k8s",
    "--model",
    "meta-llama/Llama-3.1-8B-Instruct",
    "--prompt",
    "30000",
    "--completion",
    "27000",
    "--vllm-version",
    "0.32.0",
    "--name",
    "vllm",
]


def test_deploy_kustomize_base_is_in_sync():
    base = HERE.parent / "deploy" / "kubernetes"
    assert (base / "vllm.yaml").read_text() == render(*DEPLOY_ARGS), "regenerate deploy/kubernetes/vllm.yaml (see kustomization.yaml)"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["vllm.yaml"]
    assert " ".join(DEPLOY_ARGS) in (base / "kustomization.yaml").read_text()


NASTY = 'my model\'s "$HOME" `id` $(id)\nnew line'


def test_quoting_survives_bash(tmp_path):
    model = tmp_path / "weird dir $x"
    import model_configs as mc
    from helpers import write_model_dir

    write_model_dir(model, mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    script = tmp_path / "run.sh"
    argv_file = tmp_path / "argv.json"
    result = run_cli(
        "render",
        "command",
        "--model",
        str(model),
        "--served-model-name",
        NASTY,
        "--max-model-len",
        "8192",
        "--gpu",
        "H100-80GB",
        "--vllm",
        str(HERE / "fake_vllm.py"),
        "--vllm-version",
        "0.32.0",
        "--device",
        "cuda",
        "-o",
        str(script),
    )
    assert result.returncode == 0, result.stderr
    subprocess.run(["bash", str(script), "--extra", "a b"], check=True, env={**os.environ, "FAKE_VLLM_ARGV": str(argv_file)})
    argv = json.loads(argv_file.read_text())
    assert argv[:2] == ["serve", str(model)]
    assert argv[argv.index("--served-model-name") + 1] == NASTY
    assert argv[-2:] == ["--extra", "a b"]


def test_output_is_atomic_and_never_overwritten(tmp_path):
    out = tmp_path / "unit.service"
    assert run_cli("render", "systemd", *BASE, *OFFLINE_GPU, "-o", str(out)).returncode == 0
    before = out.read_text()
    again = run_cli("render", "systemd", *BASE, *OFFLINE_GPU, "--port", "9000", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and out.read_text() == before
    assert run_cli("render", "systemd", *BASE, *OFFLINE_GPU, "--port", "9000", "-o", str(out), "--force").returncode == 0
    assert '"9000"' in out.read_text() and [p.name for p in tmp_path.iterdir()] == ["unit.service"]


def test_plan_that_does_not_fit_writes_nothing(tmp_path):
    out = tmp_path / "job.sbatch"
    result = run_cli(
        "render",
        "slurm",
        "--model",
        "Qwen/Qwen2.5-32B-Instruct",
        "--prompt",
        "30000",
        "--completion",
        "27000",
        "--gpu",
        "L4",
        "-o",
        str(out),
    )
    assert result.returncode == 1 and "no slurm file was written" in result.stderr and not out.exists()


@pytest.mark.parametrize("target", ["systemd", "command", "slurm"])
def test_secret_on_the_command_line_is_refused(target):
    result = run_cli("render", target, *BASE, *OFFLINE_GPU, "--", "--api-key", "sk-secret-123")
    assert result.returncode == 2 and "refusing to write --api-key into" in result.stderr
    assert "sk-secret-123" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "written", "secret"),
    [
        (["--api_key", "sk-secret-123"], "--api_key", "--api-key"),
        (["--api_key=sk-secret-123"], "--api_key", "--api-key"),
        (["--hf_token", "hf_secret123"], "--hf_token", "--hf-token"),
        (["--hf_token=hf_secret123"], "--hf_token", "--hf-token"),
        (["--api-k", "sk-secret-123"], "--api-k", "--api-key"),  # argparse's unambiguous prefix
        (["--enforce-eager", "--hf-token=hf_secret123"], "--hf-token into", None),
    ],
)
def test_secret_in_any_spelling_vllm_accepts_is_refused(args, written, secret):
    """vLLM's parser reads `_` as `-` and takes prefixes: each of these spellings would put the secret in the file."""
    result = run_cli("render", "command", *BASE, *OFFLINE_GPU, "--", *args)
    assert result.returncode == 2 and f"refusing to write {written}" in result.stderr, result.stderr
    assert secret is None or f"vLLM reads it as {secret}" in result.stderr
    assert "secret123" not in result.stdout + result.stderr and "secret-123" not in result.stdout + result.stderr


def test_flags_that_only_share_a_prefix_with_a_secret_pass():
    result = run_cli("render", "command", *BASE, *OFFLINE_GPU, "--", "--api-server-count", "2", "--hf-config-path", "/cfg")
    assert result.returncode == 0, result.stderr
    assert "--api-server-count 2 --hf-config-path /cfg" in result.stdout


def test_invalid_kubernetes_name():
    result = run_cli("render", "k8s", *BASE, "--name", "My_Model")
    assert result.returncode == 2 and "not a valid Kubernetes name" in result.stderr and "--name my-model" in result.stderr


def test_kubernetes_name_is_sanitised_from_the_model():
    docs = list(yaml.safe_load_all(render("k8s", "--model", "Org/Weird_Model.V2", "--max-model-len", "4096")))
    assert docs[0]["metadata"]["name"] == "weird-model-v2"


def test_sbatch_directives(rendered):
    text = rendered["slurm.sbatch"]
    for needle in ("#SBATCH --gres=gpu:1", "#SBATCH --partition=gpu", "#SBATCH --signal=B:USR1@120", "source ~/vllm-venv/bin/activate"):
        assert needle in text
    assert "#SBATCH --array=0-3" in rendered["slurm-array.sbatch"]


@pytest.mark.real("curl")
def test_slurm_readiness_sends_the_api_key_but_never_in_argv(tmp_path):
    """The job's readiness requests pass the key to curl through its standard input: a curl wrapper records every
    command line, the stand-in vLLM answers /v1 only with the right key (quotes and backslashes included)."""
    import model_configs as mc
    from helpers import write_model_dir

    model = write_model_dir(tmp_path / "model", mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), index_total=16060522496)
    script = tmp_path / "job.sbatch"
    args = ["--model", str(model), "--max-model-len", "8192", "--gpu", "H100-80GB", "--vllm", str(HERE / "fake_vllm.py")]
    result = run_cli("render", "slurm", *args, "--vllm-version", "0.32.0", "--device", "cuda", "--api-key-env", "MY_KEY", "-o", str(script))
    assert result.returncode == 0, result.stderr
    bin_dir, argv_log = tmp_path / "bin", tmp_path / "curl-argv"
    bin_dir.mkdir()
    require_tool("curl")
    real_curl = shutil.which("curl")
    (bin_dir / "curl").write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >>{argv_log}\nexec {real_curl} "$@"\n')
    (bin_dir / "curl").chmod(0o755)
    key = 'sk-"quoted"\\back slash$HOME'
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7", "MY_KEY": key}
    env.pop("VLLM_API_KEY", None)
    job = subprocess.Popen(["bash", str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    endpoint = tmp_path / "vllm-endpoint-7.json"
    try:
        for _ in range(300):
            if endpoint.exists() or job.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        job.terminate()
        output = job.communicate(timeout=60)[0]
    assert "READY at" in output, output  # READY needs /v1/models, which answers only with the key
    calls = argv_log.read_text().splitlines()
    assert any("/v1/models" in call for call in calls) and all("sk-" not in call for call in calls), calls

    env["MY_KEY"] = "sk-two\nlines"
    refused = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "$MY_KEY holds a control character" in refused.stderr
    assert "sk-two" not in refused.stdout + refused.stderr


def k8s_serving(*args: str) -> tuple[str, list[str]]:
    """The serving container's image and the init container's command of `render k8s ARGS`."""
    pod = list(yaml.safe_load_all(render("k8s", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", *args)))[1]
    spec = pod["spec"]["template"]["spec"]
    return spec["containers"][0]["image"], spec["initContainers"][0]["command"]


def sized_with(command: list[str]) -> str:
    return command[command.index("--vllm-version") + 1]


@pytest.mark.parametrize(
    ("args", "image", "release"),
    [
        ([], f"vllm/vllm-openai:v{DEFAULT_VERSION}", DEFAULT_VERSION),  # the init container has no vLLM: name the rules
        (["--vllm-version", "0.30.0"], "vllm/vllm-openai:v0.30.0", "0.30.0"),
        (["--image", "vllm/vllm-openai:v0.31.0"], "vllm/vllm-openai:v0.31.0", "0.31.0"),
        (["--image", "registry.local:5000/vllm-openai:v0.29.0-cu128"], "registry.local:5000/vllm-openai:v0.29.0-cu128", "0.29.0"),
        (["--image", "my/vllm:latest", "--vllm-version", "0.32.0"], "my/vllm:latest", "0.32.0"),
    ],
)
def test_k8s_serves_and_sizes_with_one_release(args, image, release):
    served, command = k8s_serving(*args)
    assert served == image and sized_with(command) == release


def test_k8s_image_of_another_release_than_the_rules_is_refused():
    result = run_cli("render", "k8s", *BASE, "--image", "vllm/vllm-openai:v0.30.0")  # BASE sizes with 0.32.0
    assert result.returncode == 2 and "serves vLLM 0.30.0" in result.stderr and "--vllm-version 0.32.0" in result.stderr


def test_k8s_image_without_a_release_in_its_tag_says_which_rules_size_it():
    result = run_cli("render", "k8s", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "8192", "--image", "my/vllm:latest")
    assert result.returncode == 0 and f"names no vLLM release; sizing with vLLM {DEFAULT_VERSION}'s rules" in result.stderr


@pytest.fixture
def unverified_model(tmp_path) -> Path:
    import model_configs as mc
    from helpers import write_model_dir

    config = {**mc.catalog("meta-llama/Llama-3.1-8B-Instruct"), "kv_frobnication_window": 4096}
    return write_model_dir(tmp_path / "frob", config, index_total=16060522496)


@pytest.mark.parametrize("target", ["command", "vllm-config", "systemd", "slurm", "k8s"])
def test_render_warns_of_unverified_kv_numbers(unverified_model, target):
    args = ["--model", str(unverified_model), "--max-model-len", "8192", "--vllm-version", "0.32.0", "--device", "cuda"]
    args += [] if target == "k8s" else [*OFFLINE_GPU]
    args += ["--vllm-launch", "/usr/local/bin/vllm-launch", "--serve-force"] if target == "systemd" else []
    result = run_cli("render", target, *args)
    assert result.returncode == 0, result.stderr
    assert "warning: KV cache unverified for this model" in result.stderr and "kv_frobnication_window" in result.stderr


def test_systemd_unit_for_unverified_kv_numbers_needs_serve_force(unverified_model, tmp_path):
    args = ["--model", str(unverified_model), "--max-model-len", "8192", "--vllm-version", "0.32.0", "--device", "cuda", *OFFLINE_GPU]
    args += ["--vllm-launch", "/usr/local/bin/vllm-launch"]
    out = tmp_path / "vllm.service"
    refused = run_cli("render", "systemd", *args, "-o", str(out))
    assert refused.returncode == 1 and "pass --serve-force" in refused.stderr and not out.exists()
    forced = run_cli("render", "systemd", *args, "--serve-force", "-o", str(out))
    assert forced.returncode == 0, forced.stderr
    exec_start = next(line for line in out.read_text().splitlines() if line.startswith("ExecStart="))
    assert '"serve"' in exec_start and '"--force"' in exec_start
    assert '"--force"' not in render("systemd", *BASE, *OFFLINE_GPU, "--vllm-launch", "/usr/local/bin/vllm-launch")

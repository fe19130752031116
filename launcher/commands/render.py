"""`vllm-launch render TARGET`: deployment files from the plan, through the templates in templates/."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from launcher import __version__
from launcher import gpus as gpu_adapter
from launcher.commands.plan import build_plan, capacity_planning
from launcher.errors import UserError
from launcher.inputs import check_plan, check_render, check_vllm_extra_args, secret_arg
from launcher.output import emit
from launcher.render import args_to_options, render
from launcher.report import plan_text
from launcher.settings import PlanSettings, RenderSettings, ServeSettings
from launcher.sizing.plan import Plan
from launcher.sizing.versions import DEFAULT_VERSION, check_known, parse_version

K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Flags of `plan` that are about output, not about the server: never forwarded.
NOT_FORWARDED = {
    "config",
    "json_output",
    "format",
    "output",
    "force",
    "vllm_extra_args",
    "port",
    "host",
    "api_key_env",
    "deadline",
    "grace",
    "ready_file",
    "log_file",
    "dry_run",
}
# Offline hardware choices made for rendering: the unit or init container plans on the real GPUs instead.
ON_THE_NODE = {"gpus": None, "gpu": None, "gpu_memory": None}


def k8s_name(s: RenderSettings) -> str:
    """A DNS-1123 label: the --name as given (checked), or the model's last path part, lower-cased and sanitised."""
    if s.name is not None:
        if not K8S_NAME.match(s.name) or len(s.name) > 52:
            raise UserError(
                f"--name {s.name!r} is not a valid Kubernetes name",
                "names are lower-case letters, digits and '-', start and end alphanumeric, at most 52 characters here",
                "pass e.g. --name " + (sanitise(s.name) or "vllm"),
            )
        return s.name
    return sanitise(s.model.rstrip("/").split("/")[-1]) or "vllm"


def sanitise(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:52].rstrip("-")


def refuse_secrets(s: RenderSettings) -> None:
    found = secret_arg(s.vllm_extra_args)
    if found:
        written, secret = found
        spelling = "" if written == "--" + secret else f" (vLLM reads it as --{secret})"
        raise UserError(
            f"refusing to write {written}{spelling} into a {s.target} file",
            "files are copied, committed and shown in `ps`; a secret in them leaks",
            f"put the value in the {'EnvironmentFile' if s.target == 'systemd' else 'Secret / environment'} as "
            f"{s.api_key_env} (vLLM reads VLLM_API_KEY) or HF_TOKEN",
        )


def forwarded_flags(s: BaseSettings, model_cls: type[BaseSettings], overrides: dict[str, Any] | None = None) -> list[str]:
    """The non-default settings of `model_cls` as command-line flags, so a unit or init container re-plans the same way."""
    flags: list[str] = []
    values = {**{k: getattr(s, k) for k in model_cls.model_fields if hasattr(s, k)}, **(overrides or {})}
    for name, field in model_cls.model_fields.items():
        if name in NOT_FORWARDED or name not in values:
            continue
        value = values[name]
        if value == field.default or value is None:
            continue
        flag = "--" + (field.alias or name).replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: double-quoted with C escapes; % and $ doubled so systemd expands neither."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


SLURM_VARS = ("${SLURM_JOB_ID}", "${SLURM_ARRAY_JOB_ID}", "${SLURM_ARRAY_TASK_ID}")


def shell_path_with_slurm_vars(path: str) -> str:
    """Shell-quote a path, leaving only ${SLURM_JOB_ID}-style placeholders to expand at run time."""
    parts = re.split(r"(\$\{SLURM_(?:JOB_ID|ARRAY_JOB_ID|ARRAY_TASK_ID)\})", path)
    return "".join(f'"{p}"' if p in SLURM_VARS else shlex.quote(p) for p in parts if p)


def multinode_settings(s: RenderSettings) -> RenderSettings:
    """Many nodes: TP = GPUs per node and PP = nodes, vLLM's advice, unless the user chose TP/PP already."""
    if s.nodes == 1:
        return s
    if s.gpus_per_node is None:
        raise UserError(f"--nodes {s.nodes} needs --gpus-per-node", "TP = GPUs per node, PP = nodes", "pass --gpus-per-node N")
    if (s.tensor_parallel_size, s.pipeline_parallel_size) == (1, 1):
        return s.model_copy(update={"tensor_parallel_size": s.gpus_per_node, "pipeline_parallel_size": s.nodes})
    if s.tensor_parallel_size * s.pipeline_parallel_size != s.gpus_per_node * s.nodes:
        raise UserError(
            f"TP {s.tensor_parallel_size} x PP {s.pipeline_parallel_size} does not match {s.nodes} nodes x {s.gpus_per_node} GPUs",
            "vLLM needs one GPU per rank",
            "leave TP/PP unset for TP = GPUs per node and PP = nodes",
        )
    return s


def launcher_path(executable: str) -> str:
    """systemd runs an absolute ExecStart path: a bare name is looked up on PATH, then next to this Python (a venv's
    bin/, which is not on PATH unless the venv is activated)."""
    if "/" in executable:
        return os.path.abspath(os.path.expanduser(executable))
    sibling = Path(sys.executable).parent / executable
    found = shutil.which(executable) or (str(sibling) if os.access(sibling, os.X_OK) else None)
    if found is None:
        raise UserError(
            f"--vllm-launch {executable}: not on PATH, nor next to {sys.executable}",
            "the unit must name the vllm-launch it runs by its absolute path",
            "pass --vllm-launch /absolute/path/to/vllm-launch (the one on the server)",
        )
    return found


def local_gpus_known(s: RenderSettings) -> bool:
    """Whether a plan can be made here: hardware given by flags, or GPUs NVML can see."""
    if s.gpu or s.gpu_memory or s.device == "cpu":
        return True
    try:
        return bool(gpu_adapter.read_inventory().gpus)
    except gpu_adapter.NvmlUnavailable:
        return False


def warn_local_model(s: RenderSettings) -> None:
    if s.model.startswith("/"):
        print(
            f"vllm-launch render: warning: --model {s.model} is a path on this machine; the pods see it only if a volume "
            "mounts it there (the manifests mount the HF cache at /hf-cache, not this path). Use a Hub repo id, or add "
            "the volume to both containers.",
            file=sys.stderr,
        )


def pinned_layout(s: RenderSettings, plan: Plan) -> RenderSettings:
    """The file runs the layout the plan chose (a unit or init container re-planning would otherwise search again)."""
    update: dict[str, Any] = {
        "tensor_parallel_size": plan.tensor_parallel_size,
        "pipeline_parallel_size": plan.pipeline_parallel_size,
        "data_parallel_size": plan.data_parallel_size,
    }
    if plan.enable_expert_parallel != s.enable_expert_parallel:
        update["enable_expert_parallel"] = plan.enable_expert_parallel
    return s.model_copy(update=update)


def k8s_layout(s: RenderSettings, plan: Plan | None) -> tuple[RenderSettings, str]:
    """Kubernetes pods for the layout, and why. A dense model's data-parallel ranks are independent engines (vLLM treats
    them "like DP=1", v1/engine/core.py run_engine_core), so DP becomes replicas of a TP x PP pod: each schedules on any
    node with that many free GPUs, restarts alone, and the Service spreads requests over them. A MoE model's DP ranks
    shard the experts over TP x DP and synchronise every forward pass: one pod, one vLLM server, --data-parallel-size."""
    if plan is not None:
        s = pinned_layout(s, plan)
    dp = s.data_parallel_size
    if dp == 1:
        return s, ""
    pod = s.tensor_parallel_size * s.pipeline_parallel_size
    if not is_moe(s):
        split = s.model_copy(update={"data_parallel_size": 1, "replicas": s.replicas * dp, "min_concurrency": s.min_concurrency / dp})
        return split, (
            f"data parallel {dp} as {dp} replicas of a {pod}-GPU pod: a dense model's DP ranks are independent, so separate pods "
            f"schedule on any node with {pod} free GPU(s), restart alone, and the Service spreads requests over them"
        )
    return s, (
        f"data parallel {dp} in one {pod * dp}-GPU pod (--data-parallel-size {dp}): a MoE model's DP ranks shard the experts "
        "over TP x DP and synchronise every forward pass, so they must be one vLLM server"
    )


def image_release(image: str) -> str | None:
    """The vLLM release an image's tag names (`vllm/vllm-openai:v0.32.0` -> 0.32.0), or None (`latest`, a digest)."""
    name = image.split("@")[0].rsplit("/", 1)[-1]
    match = re.match(r"^v?(\d+\.\d+(?:\.\d+)*)(?:$|[-+])", name.partition(":")[2])
    return match[1] if match else None


def k8s_release(s: RenderSettings) -> RenderSettings:
    """The serving image and the sizing rules are one release: the image's tag sets the rules (here and in the init
    container, which has no vLLM to ask), and without --image the image is that of --vllm-version or the default rules."""
    tagged = image_release(s.image) if s.image else None
    if tagged and s.vllm_version and parse_version(tagged)[:2] != parse_version(s.vllm_version)[:2]:
        raise UserError(
            f"--image {s.image} serves vLLM {tagged}, and --vllm-version {s.vllm_version} would size it by another release's rules",
            "block sizes, memory defaults and limits differ between releases",
            "drop --vllm-version (the image's tag sets it), or pass the image of that release",
        )
    if tagged:
        try:
            check_known(tagged)
        except ValueError as exc:
            raise UserError(
                f"--image {s.image}: {exc}", "the plan must use the serving vLLM's rules", "pass an image of a known release"
            ) from exc
    release = (tagged or s.vllm_version or DEFAULT_VERSION).removeprefix("v").split("+")[0]
    if s.image and not tagged:
        print(
            f"vllm-launch render: warning: the tag of --image {s.image} names no vLLM release; sizing with vLLM {release}'s rules "
            "(pass --vllm-version with the image's release)",
            file=sys.stderr,
        )
    image = s.image or f"vllm/vllm-openai:v{release}{'.0' if release.count('.') == 1 else ''}"
    return s.model_copy(update={"vllm_version": release, "image": image})


def unverified_reasons(s: RenderSettings, plan: Plan | None) -> tuple[str, ...]:
    """Why the plan's KV numbers may be wrong for this model (the plan's, or the model reader's when nothing was planned;
    none when the model cannot be read here: the unit or init container reads it on the node and says so there)."""
    if plan is not None:
        return plan.unverified
    from launcher.model.reader import read_model

    try:
        spec = read_model(s.model, s.revision, s.hf_overrides)
    except UserError:
        return ()
    return tuple(f"KV cache unverified for this model: {reason}" for reason in spec.unverified)


def is_moe(s: RenderSettings) -> bool:
    from launcher.model.reader import read_model

    return read_model(s.model, s.revision, s.hf_overrides).is_moe


def context(s: RenderSettings, plan: Plan | None, layout_note: str = "") -> dict[str, Any]:
    gpus = s.gpus_per_node or s.tensor_parallel_size * s.pipeline_parallel_size * s.data_parallel_size
    served = s.served_model_name or s.model
    return {
        "s": s,
        "plan": plan,
        "version": __version__,
        "name": k8s_name(s),
        "served": served,
        "gpus_per_node": gpus,
        "vllm_args": list(plan.vllm_args) + s.vllm_extra_args if plan else [],
        "env": list(plan.env) if plan else [],
        "options": args_to_options(list(plan.vllm_args) + s.vllm_extra_args) if plan else {},
        "serve_argv": [
            launcher_path(s.vllm_launch) if s.target == "systemd" else s.vllm_launch,
            "serve",
            *forwarded_flags(s, ServeSettings, ON_THE_NODE),
            *(["--force"] if s.serve_force else []),
            "--port",
            str(s.port),
            *(["--host", s.host] if s.host else []),
            "--api-key-env",
            s.api_key_env,
            "--deadline",
            f"{s.deadline:g}",
            "--grace",
            f"{s.grace:g}",
            *(["--", *s.vllm_extra_args] if s.vllm_extra_args else []),
        ],
        "plan_argv": ["vllm-launch", "plan", *forwarded_flags(s, PlanSettings, {**ON_THE_NODE, "device": "cuda"})],
        "endpoint_file": shell_path_with_slurm_vars(s.endpoint_file),
        "startup_failures": math.ceil(s.deadline / 10),
        "mem_k8s": re.sub(r"([KMGT])$", r"\1i", s.mem.upper()) if re.match(r"^\d+[KMGTkmgt]$", s.mem) else s.mem,
        "systemd_quote": systemd_quote,
        "layout_note": layout_note,
    }


def run(s: RenderSettings) -> int:
    check_render(s)
    refuse_secrets(s)
    s = multinode_settings(s)
    if s.target == "k8s":
        s = k8s_release(s)
    plan = None
    # Kubernetes sizes on the node, in its init container (it plans here only to choose a layout for offline GPUs);
    # a systemd unit sizes on its machine when it starts.
    layout_wanted = s.nodes == 1 and bool(s.gpu or s.gpu_memory) and (s.gpus is not None or capacity_planning(s))
    if (s.target == "k8s" and not layout_wanted) or (s.target == "systemd" and not local_gpus_known(s)):
        for warning in check_plan(s, "cuda", s.vllm_version):
            print(f"vllm-launch render: warning: {warning}", file=sys.stderr)
        check_vllm_extra_args(s.vllm_extra_args, [])
        if s.target == "systemd":
            print(
                "vllm-launch render: note: no GPU here and no --gpu: the unit sizes the server on its machine when it starts "
                "(pass --gpu NAME to check the fit now)",
                file=sys.stderr,
            )
    else:
        plan = build_plan(s)
        check_vllm_extra_args(s.vllm_extra_args, list(plan.vllm_args))
        if not plan.fits:
            sys.stderr.write(plan_text(plan))
            print(f"vllm-launch render: the plan does not fit; no {s.target} file was written", file=sys.stderr)
            return 1
        if s.target == "vllm-config" and plan.env:
            print(f"vllm-launch render: note: vLLM needs {' '.join(f'{k}={v}' for k, v in plan.env)} in its environment", file=sys.stderr)
        if s.max_model_len == -1 and s.target != "k8s":  # the file carries the length auto resolved to, not a new search
            s = s.model_copy(update={"max_model_len": plan.max_model_len, "max_model_len_cap": None})
        if plan.layout_reason:
            print(f"vllm-launch render: {plan.layout_reason}", file=sys.stderr)
    reasons = unverified_reasons(s, plan)
    for reason in reasons:
        print(f"vllm-launch render: warning: {reason}", file=sys.stderr)
    if reasons and s.target == "systemd" and not s.serve_force:
        print(
            "vllm-launch render: the unit's `vllm-launch serve` would refuse to start vLLM on unverified KV numbers, so no "
            "systemd file was written; pass --serve-force to have it start anyway",
            file=sys.stderr,
        )
        return 1
    layout_note = ""
    if s.target == "k8s":
        warn_local_model(s)
        s, layout_note = k8s_layout(s, plan)
        if layout_note:
            print(f"vllm-launch render: {layout_note}", file=sys.stderr)
    elif plan is not None and plan.layouts:
        s = pinned_layout(s, plan)
    template = {
        "command": "command.sh.j2",
        "vllm-config": "vllm-config.yaml.j2",
        "systemd": "vllm.service.j2",
        "slurm": "slurm.sbatch.j2",
        "k8s": "k8s.yaml.j2",
    }[s.target]
    text = render(template, **context(s, plan, layout_note))
    emit(text, s.output, s.force, mode=0o755 if s.target in ("command", "slurm") else 0o644)
    return 0

"""Settings: one pydantic-settings model per command gives its flags, `VLLM_LAUNCH_*` environment
variables and the TOML config file (`--config`), with one precedence: flags > env > file > defaults.

Flags that mean what vLLM's mean carry vLLM's names; our own inputs are plain words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    CliPositionalArg,
    CliSuppress,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_HUMAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)\s*$")


def parse_human_int(value: Any) -> Any:
    """vLLM's `human_readable_int`: `32k` = 32000 (decimal), `32K` = 32768 (binary), `25.6k` = 25600."""
    if not isinstance(value, str):
        return value
    text = value.strip().replace("_", "")
    if text.lstrip("-").isdigit():
        return int(text)
    match = _HUMAN.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a number (use e.g. 58000, 32k = 32000 or 32K = 32768)")
    number, suffix = match.groups()
    if not suffix:
        raise ValueError(f"{value!r} is not a whole number")
    power = "kmgt".index(suffix.lower()) + 1
    if suffix.isupper():
        if "." in number:
            raise ValueError(f"Decimals are not allowed with binary suffixes like {suffix}. Did you mean {number}{suffix.lower()}?")
        return int(number) * 1024**power
    return int(float(number) * 1000**power)


HumanInt = Annotated[int, BeforeValidator(parse_human_int)]
PositiveInt = Annotated[int, BeforeValidator(parse_human_int), Field(gt=0)]


class LaunchSettings(BaseSettings):
    """Base of every command's settings."""

    model_config = SettingsConfigDict(
        env_prefix="VLLM_LAUNCH_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        use_attribute_docstrings=True,
        extra="ignore",
        toml_file=None,
    )

    config: Path | None = None
    """TOML file with defaults for any flag of this command (snake_case keys, e.g. max_model_len = 58000).
    Precedence: flags > VLLM_LAUNCH_* environment > this file > built-in defaults."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def for_command(cls: type[LaunchSettings], prog: str, config_file: Path | None) -> type[LaunchSettings]:
    """Point the command's settings class at its usage name and TOML file. Set on the class itself (the CLI runs one
    command per process) because building a pydantic subclass would cost more start-up time than the whole plan."""
    cls.model_config["cli_prog_name"] = prog
    cls.model_config["toml_file"] = config_file
    return cls


class ModelSettings(LaunchSettings):
    """Which model, and where its facts come from."""

    model: str = Field(..., min_length=1)
    """Model: a local directory, a path to its config.json, or a Hugging Face repo id (HF_TOKEN, the HF cache
    and HF_HUB_OFFLINE are honoured; a built-in catalog of popular models answers when the Hub is unreachable)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of --model."""
    hf_overrides: str | None = None
    """JSON merged into the model's config, exactly like vLLM's --hf-overrides (passed on to vLLM too)."""


class PlanSettings(ModelSettings):
    """Plan a vLLM server: context length, KV cache, memory, concurrency; and whether it fits."""

    prompt: PositiveInt | None = None
    """Longest prompt, in tokens (after the chat template)."""
    completion: PositiveInt | None = None
    """Longest completion (max_tokens), in tokens."""
    buffer: HumanInt = Field(1000, ge=0)
    """Spare tokens added to prompt + completion for --max-model-len."""
    turns: PositiveInt | None = None
    """Multi-turn episodes: --prompt is the first prompt, --completion the per-turn limit; size for the last turn's prompt."""
    observation: HumanInt = Field(0, ge=0)
    """Multi-turn episodes: tokens (tool results, user messages) added to the prompt after each turn."""
    max_model_len: PositiveInt | None = None
    """vLLM's --max-model-len, instead of --prompt/--completion (vLLM's syntax: 32k = 32000, 32K = 32768)."""
    gpu: str | None = None
    """Plan for this GPU instead of the local ones (presets: see `vllm-launch gpus --presets`)."""
    gpu_memory: HumanInt | None = Field(None, gt=0)
    """Total memory per GPU as CUDA reports it, in bytes (32G, 80G, 85899345920...), instead of --gpu."""
    gpus: PositiveInt | None = None
    """Number of GPUs with --gpu or --gpu-memory (default: tensor x pipeline parallel size)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Backend to plan for: cuda, cpu (vLLM's CPU build, host memory), or auto (cpu when the installed vLLM is a CPU build)."""
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    """vLLM's --gpu-memory-utilization (default: that vLLM version's default, 0.92 in 0.32)."""
    tensor_parallel_size: PositiveInt = 1
    """vLLM's --tensor-parallel-size."""
    pipeline_parallel_size: PositiveInt = 1
    """vLLM's --pipeline-parallel-size."""
    dtype: Literal["auto", "bfloat16", "float16", "half", "float32", "float"] = "auto"
    """vLLM's --dtype."""
    kv_cache_dtype: Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"] = "auto"
    """vLLM's --kv-cache-dtype."""
    block_size: PositiveInt | None = None
    """vLLM's --block-size (default: 16 on CUDA, 64 for MLA, 128 on CPU)."""
    max_num_batched_tokens: PositiveInt | None = None
    """vLLM's --max-num-batched-tokens (default: by GPU, as vLLM chooses)."""
    max_num_seqs: PositiveInt | None = None
    """vLLM's --max-num-seqs."""
    kv_cache_memory_bytes: HumanInt | None = Field(None, gt=0)
    """vLLM's --kv-cache-memory-bytes: KV cache size per GPU, bypassing the utilization budget."""
    min_concurrency: float = Field(1.0, gt=0)
    """Full-length requests that must fit in the KV cache at once for the plan to count as fitting."""
    enforce_eager: bool = False
    """vLLM's --enforce-eager (no CUDA graphs, so no graph memory)."""
    enable_prefix_caching: bool = True
    """vLLM's prefix caching (--no-enable-prefix-caching to turn it off)."""
    disable_hybrid_kv_cache_manager: bool = False
    """vLLM's --disable-hybrid-kv-cache-manager (sliding-window layers then store the whole context)."""
    allow_long_max_model_len: bool = False
    """Set VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 for vLLM: accept a --max-model-len above the model's limit (risky)."""
    vllm_version: str | None = None
    """vLLM version whose rules to apply (default: the installed vllm, else 0.32.0)."""
    vllm: str = "vllm"
    """The vllm executable (its version and build, CUDA or CPU, select the rules; `serve` runs it)."""
    served_model_name: str | None = None
    """vLLM's --served-model-name."""
    json_output: bool = Field(False, alias="json")
    """Print the plan as one JSON object (stable keys)."""
    format: Literal["text", "json", "args", "vllm-config"] = "text"
    """Output: text, json, args (vLLM's arguments only) or vllm-config (YAML for `vllm serve --config`)."""
    output: Annotated[Path | None, Field(alias="o")] = None
    """Write the output to this file (atomically: a temporary file, then a rename) instead of standard output."""
    force: bool = False
    """Let --output replace an existing file."""

    @field_validator("vllm_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^v?\d+\.\d+", value):
            raise ValueError(f"{value!r} is not a vLLM version (e.g. 0.32.0)")
        return value


class GpusSettings(LaunchSettings):
    """Show the GPUs vLLM would see (NVML), or the built-in presets."""

    json_output: bool = Field(False, alias="json")
    """Print JSON."""
    presets: bool = False
    """List the GPU presets usable with --gpu instead of the local GPUs."""


class ServeSettings(PlanSettings):
    """Plan, start `vllm serve`, prove it can answer, and supervise it. Arguments after `--` go to vLLM as they are."""

    host: str | None = None
    """vLLM's --host (default: vLLM's, all interfaces); readiness is probed on 127.0.0.1 unless a host is given."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """vLLM's --port."""
    api_key_env: str = "VLLM_API_KEY"
    """Name of the environment variable holding the API key; passed to vLLM through its environment, never on its command line."""
    deadline: Annotated[float, Field(ge=30)] = 1200
    """Seconds to wait for the server to be ready (downloads and weight loading included) before giving up."""
    grace: Annotated[float, Field(ge=0)] = 15
    """Seconds vLLM gets to exit after SIGTERM before the whole process tree is killed."""
    ready_file: Path | None = None
    """Write the endpoint, model, context and KV capacity here as JSON once ready (for scripts)."""
    log_file: Path | None = None
    """Where vLLM's output is written besides the terminal (default: ./vllm-launch-PORT.log)."""
    dry_run: bool = False
    """Print the plan and the exact command; start nothing."""
    vllm_extra_args: Annotated[list[str], CliSuppress] = Field(default_factory=list)
    """Arguments after `--`, passed to `vllm serve` unchanged."""


class ExplainSettings(LaunchSettings):
    """Explain a vLLM context-length or start-up error with the true numbers, and how to fix it."""

    # One argument taken verbatim (commas, quotes and newlines included): a list would be split at commas.
    text: CliPositionalArg[str | None] = None
    """The error text (quoted, as one argument), or a path to a log file; default: read standard input."""
    max_tokens: Annotated[int, BeforeValidator(parse_human_int), Field(ge=0)] | None = None
    """The max_tokens the failing request sent (needed to decode some older messages; 0 when the client sent 0)."""
    max_model_len: PositiveInt | None = None
    """The server's --max-model-len, if known."""
    prompt_tokens: PositiveInt | None = None
    """The request's prompt length in tokens, if known."""
    buffer: HumanInt = Field(1000, ge=0)
    """Spare tokens added to prompt + max_tokens in the suggested --max-model-len (the minimum is printed too)."""
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    """The server's --gpu-memory-utilization, if known (memory answers start from it)."""
    model: str | None = None
    """The model the server ran: memory answers are then re-planned through the sizing engine instead of estimated."""
    gpu: str | None = None
    """With --model: the GPU the server ran on (presets: `vllm-launch gpus --presets`; default: this machine's GPUs)."""
    gpus: PositiveInt | None = None
    """With --model: how many GPUs of --gpu."""
    tensor_parallel_size: PositiveInt = 1
    """With --model: the server's --tensor-parallel-size."""
    json_output: bool = Field(False, alias="json")
    """Print JSON."""


class CheckSettings(LaunchSettings):
    """Check a request shape against a running vLLM server: does it fit, and what does this server do if not."""

    url: str = Field(..., pattern=r"^https?://")
    """Server base URL, e.g. http://127.0.0.1:8000."""
    model: str | None = None
    """Served model name (default: the first one the server lists)."""
    prompt_tokens: Annotated[int, BeforeValidator(parse_human_int), Field(ge=0)]
    """Prompt length in tokens (after the chat template)."""
    max_tokens: PositiveInt
    """The max_tokens the client sends."""
    api_key_env: str = "VLLM_API_KEY"
    """Name of the environment variable holding the server's API key."""
    probe: bool = False
    """Also send one real request of that shape and report what vLLM returned."""
    json_output: bool = Field(False, alias="json")
    """Print JSON."""


class BudgetSettings(LaunchSettings):
    """Plan a multi-turn episode's token budget: prompt growth per turn, the max_model_len it needs, the max_tokens to send."""

    system_tokens: Annotated[int, BeforeValidator(parse_human_int), Field(ge=0)] = 0
    """Initial prompt (system + first user message) in tokens."""
    max_completion_length_per_turn: PositiveInt | None = None
    """Per-turn completion limit: the max_tokens each request sends."""
    observation_tokens_per_turn: Annotated[int, BeforeValidator(parse_human_int), Field(ge=0)] = 0
    """Tool results / user messages added to the prompt after each turn."""
    turns: PositiveInt | None = None
    """Number of turns in the episode."""
    total_max_prompt_length: PositiveInt | None = None
    """rl_env-style cap on the prompt over the whole trajectory."""
    total_max_completion_length: PositiveInt | None = None
    """rl_env-style cap on all completions of the trajectory together."""
    trajectory_config: Path | None = None
    """YAML or JSON file with the keys above (e.g. an rl_env config); flags override it."""
    buffer: HumanInt = Field(1000, ge=0)
    """Spare tokens added to the needed max_model_len."""
    max_model_len: PositiveInt | None = None
    """A server's max_model_len to check the episode against."""
    url: str | None = None
    """Read max_model_len from this running vLLM server instead."""
    api_key_env: str = "VLLM_API_KEY"
    """Name of the environment variable holding the server's API key (with --url)."""
    json_output: bool = Field(False, alias="json")
    """Print JSON."""


class RenderSettings(PlanSettings):
    """Render deployment files from the plan: command, vllm-config, systemd, slurm, k8s (stdout, or -o FILE)."""

    target: CliPositionalArg[Literal["command", "vllm-config", "systemd", "slurm", "k8s"]]
    """What to render: command (shell script), vllm-config (YAML), systemd (unit), slurm (sbatch script), k8s (manifests)."""
    name: str | None = None
    """Name of the service/job/Kubernetes objects (default: derived from the model, sanitised for Kubernetes)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """vLLM's --port (Slurm picks a free one at run time instead)."""
    host: str | None = None
    """vLLM's --host."""
    api_key_env: str = "VLLM_API_KEY"
    """Environment variable that holds the API key at run time (from an EnvironmentFile, a Secret, the job's environment)."""
    deadline: Annotated[float, Field(ge=30)] = 1800
    """Seconds allowed for downloading and loading the model before the start counts as failed."""
    grace: Annotated[float, Field(ge=0)] = 30
    """Seconds vLLM gets to stop after SIGTERM."""
    vllm_launch: str = "vllm-launch"
    """systemd: the vllm-launch executable the unit runs (a bare name is resolved on this machine's PATH)."""
    user: str | None = None
    """systemd: the user the service runs as."""
    working_directory: str | None = None
    """systemd: the service's working directory."""
    environment_file: str = "/etc/vllm-launch/secrets.env"
    """systemd: file with HF_TOKEN / VLLM_API_KEY for the service (the secrets never go into the unit)."""
    nodes: PositiveInt = 1
    """slurm/k8s: nodes; more than one gives TP = GPUs per node and PP = nodes (vLLM's advice)."""
    gpus_per_node: PositiveInt | None = None
    """slurm/k8s: GPUs per node (default: tensor x pipeline parallel size on one node)."""
    multinode_backend: Literal["ray", "native"] = "ray"
    """slurm: multi-node with a Ray cluster, or vLLM's own --nnodes/--node-rank/--headless."""
    replicas: PositiveInt = 1
    """slurm: data-parallel replicas as a job array (one server per array task); k8s: replicas."""
    cpus_per_task: PositiveInt = 8
    """slurm: CPUs per node; k8s: CPU request."""
    mem: str = "64G"
    """slurm: memory per node (sbatch --mem syntax); k8s: memory request (G -> Gi)."""
    time: str = "04:00:00"
    """slurm: time limit (sbatch --time)."""
    partition: str | None = None
    """slurm: partition."""
    account: str | None = None
    """slurm: account."""
    qos: str | None = None
    """slurm: QOS."""
    setup: str | None = None
    """slurm: shell lines run before vLLM (e.g. 'module load cuda; source ~/venv/bin/activate')."""
    endpoint_file: str = "vllm-endpoint-${SLURM_JOB_ID}.json"
    """slurm: where the job writes host, port, model and max_model_len once ready."""
    namespace: str | None = None
    """k8s: namespace of the objects."""
    image: str = "vllm/vllm-openai:v0.32.0"
    """k8s: the stock vLLM image that serves (left untouched)."""
    launcher_image: str = "ghcr.io/vllm-launch/vllm-launch:0.1.0"
    """k8s: the vllm-launch image of the init container that sizes on the node."""
    hf_token_secret: str = "hf-token"
    """k8s: Secret holding HF_TOKEN (key 'token'); optional at run time."""
    api_key_secret: str | None = None
    """k8s: Secret holding the API key (key 'key'); readiness then sends it."""
    hf_cache_pvc: str | None = None
    """k8s: PersistentVolumeClaim for the HF cache (default: an emptyDir, re-downloaded per pod)."""
    vllm_extra_args: Annotated[list[str], CliSuppress] = Field(default_factory=list)
    """Arguments after `--`, passed to `vllm serve` unchanged."""

"""Settings: one pydantic-settings model per command gives its flags, `VLLM_LAUNCH_*` environment
variables and the TOML config file (`--config`), with one precedence: flags > env > file > defaults.

Flags that mean what vLLM's mean carry vLLM's names; our own inputs are plain words. The value types below
(Tokens, Size, ...) carry their syntax in their names: `launcher.usage` shows them in `--help` without importing
pydantic.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AliasChoices, BeforeValidator, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliPositionalArg,
    CliSuppress,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from launcher.errors import UserError
from launcher.usage import SIZE_SYNTAX, TOKENS_SYNTAX

_NUMBER = re.compile(r"^([+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)$")
# vLLM's human_readable_int (engine/arg_utils.py): lower-case suffixes are decimal, upper-case ones binary.
_TOKEN_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# Sizes add the spelled-out units: KiB..TiB are binary, KB..TB decimal (SI), B is bytes; case-insensitive.
_SIZE_UNITS = {
    **_TOKEN_SUFFIXES,
    **{u + "b": 10 ** (3 * i) for i, u in enumerate("kmgt", 1)},
    **{u + "ib": 2 ** (10 * i) for i, u in enumerate("kmgt", 1)},
    **{u + "i": 2 ** (10 * i) for i, u in enumerate("kmgt", 1)},
    "b": 1,
}


def _number(value: Any, what: str, syntax: str) -> tuple[int | float, str]:
    """(number, suffix) from 58000, 58_000, 1e5, 25.6k, 80 GiB; ValueError naming the syntax otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not {what} (use e.g. {syntax})")
    if isinstance(value, (int, float)):
        return value, ""
    match = _NUMBER.match(value.strip().replace("_", ""))
    if not match:
        raise ValueError(f"{value!r} is not {what} (use e.g. {syntax})")
    number, suffix = match.groups()
    return (float(number) if any(c in number for c in ".eE") else int(number)), suffix


def _scaled(value: Any, number: int | float, suffix: str, scale: int, unit: str) -> int:
    if isinstance(number, float):
        if number != number or abs(number) == float("inf"):
            raise ValueError(f"{value!r} is not a number of {unit}")
        if suffix in ("K", "M", "G", "T") and number != int(number):  # vLLM's rule: binary suffixes take whole numbers
            hint = f"{str(value).strip()[:-1]}{suffix.lower()}"
            raise ValueError(f"Decimals are not allowed with binary suffixes like {suffix}. Did you mean {hint}?")
        exact = number * scale
        if exact != int(exact):
            raise ValueError(f"{value!r} is not a whole number of {unit}")
        return int(exact)
    return number * scale


def parse_tokens(value: Any) -> Any:
    """Token counts in vLLM's `human_readable_int` syntax (32k = 32000, 32K = 32768, 25.6k = 25600), plus 1e5."""
    number, suffix = _number(value, "a number of tokens", TOKENS_SYNTAX)
    if suffix not in _TOKEN_SUFFIXES:
        raise ValueError(f"{value!r}: unknown suffix {suffix!r} (use e.g. {TOKENS_SYNTAX})")
    return _scaled(value, number, suffix, _TOKEN_SUFFIXES[suffix], "tokens")


def parse_size(value: Any) -> Any:
    """Byte sizes: vLLM's suffixes (80G binary, 80g decimal), KiB..TiB, KB..TB (SI) or plain bytes."""
    number, suffix = _number(value, "a size", SIZE_SYNTAX)
    scale = _TOKEN_SUFFIXES.get(suffix) or _SIZE_UNITS.get(suffix.lower())
    if scale is None:
        raise ValueError(f"{value!r}: unknown unit {suffix!r} (use e.g. {SIZE_SYNTAX})")
    return _scaled(value, number, suffix, scale, "bytes")


def parse_tokens_or_auto(value: Any) -> Any:
    """vLLM's `human_readable_int_or_auto`: `auto` or -1 asks for the longest length that fits (-1 here)."""
    if value == -1 or isinstance(value, str) and value.strip().lower() in ("auto", "-1"):
        return -1
    value = parse_tokens(value)
    if isinstance(value, int) and value <= 0:
        raise ValueError(f"{value} is not a positive number of tokens or auto")
    return value


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\0" in value:
        raise ValueError("contains a NUL character")
    return value


def split_vllm_args(value: Any) -> Any:
    """vLLM arguments from a string (split like a shell would) or a list; `--flag value` in one list item is two words."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r} into arguments: {exc}") from exc
    if isinstance(value, (list, tuple)):
        words: list[Any] = []
        for item in value:
            match = re.match(r"^(--?[A-Za-z][\w-]*)\s+(.+)$", item, re.S) if isinstance(item, str) else None
            words += [match[1], match[2]] if match else [item]
        return words
    return value


# Value types. The names are the syntax `--help` shows (launcher.usage maps them); keep them when adding flags.
Tokens = Annotated[int, BeforeValidator(parse_tokens), Field(gt=0)]
TokensOrZero = Annotated[int, BeforeValidator(parse_tokens), Field(ge=0)]
TokensOrAuto = Annotated[int, BeforeValidator(parse_tokens_or_auto), Field(ge=-1)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
Count = Annotated[int, Field(gt=0)]
# An episode's turns: each one is a request, and the budget lists them all.
Turns = Annotated[int, Field(gt=0, le=100_000)]
Seconds = float
Port = Annotated[int, Field(ge=1, le=65535)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Text = Annotated[str, Field(min_length=1)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
VllmArgs = Annotated[list[str], NoDecode, BeforeValidator(split_vllm_args), CliSuppress]

# The config file's values for the command being run (set by the CLI per run; a context variable, so runs in one
# process, such as the tests', never see each other's).
CONFIG_VALUES: ContextVar[Mapping[str, Any] | None] = ContextVar("vllm_launch_config_values", default=None)


class ConfigFileSource(PydanticBaseSettingsSource):
    """The `--config` TOML file, already read and checked by `read_config_file`: the lowest source but defaults."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ hands over the checked values at once

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in (CONFIG_VALUES.get() or {}).items() if k in self.settings_cls.model_fields}


class LaunchSettings(BaseSettings):
    """Base of every command's settings."""

    model_config = SettingsConfigDict(
        env_prefix="VLLM_LAUNCH_",
        env_prefix_target="all",  # aliases too: VLLM_LAUNCH_JSON, VLLM_LAUNCH_O
        env_ignore_empty=True,  # an exported but empty variable means unset
        validate_by_name=True,
        validate_by_alias=True,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_exit_on_error=False,
        allow_inf_nan=False,
        defer_build=True,  # validators are built for the one command that runs, not for all seven at import
        extra="ignore",
    )

    config: Path | None = None
    """TOML file with defaults for any flag of this command (snake_case keys, e.g. max_model_len = 58000; a [COMMAND]
    section holds keys for one command only). Precedence: flags > VLLM_LAUNCH_* environment > this file > defaults."""

    @field_validator("*", mode="before")
    @classmethod
    def _strings_without_nul(cls, value: Any) -> Any:
        return _no_nul(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, ConfigFileSource(settings_cls)


def field_names(cls: type[BaseSettings], name: str) -> list[str]:
    """A field's spellings: its name, then its aliases (`json_output` -> json_output, json)."""
    alias = cls.model_fields[name].validation_alias
    choices = [a for a in alias.choices if isinstance(a, str)] if isinstance(alias, AliasChoices) else []
    return [name, *(c for c in choices if c != name)]


_POSITIONAL = get_args(CliPositionalArg[int])[1]  # the marker CliPositionalArg puts on a field


def cli_flags(cls: type[BaseSettings]) -> dict[str, str]:
    """Every flag the command accepts -> its field: kebab-case names and aliases, `--no-X` for switches."""
    flags: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        if any(m is CliSuppress or m is _POSITIONAL for m in info.metadata):  # no flag: after `--`, or positional
            continue
        for spelling in field_names(cls, name):
            flag = ("-" if len(spelling) == 1 else "--") + spelling.replace("_", "-")
            flags[flag] = name
            if info.annotation is bool and len(spelling) > 1:
                flags["--no-" + spelling.replace("_", "-")] = name
    return flags


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_environment(environ: Mapping[str, str], everyone: Iterable[type[BaseSettings]]) -> None:
    """A VLLM_LAUNCH_* variable no command knows is an error (a misspelt variable would otherwise be ignored without a
    word); one for another command is left alone."""
    known = {n.upper() for cls in everyone for f in cls.model_fields for n in field_names(cls, f)}
    for var, value in environ.items():
        if not var.upper().startswith("VLLM_LAUNCH_") or not value:
            continue
        name = var.upper().removeprefix("VLLM_LAUNCH_")
        if name not in known:
            raise UserError(
                f"unknown environment variable {var}" + did_you_mean(name, known).replace("; did you mean ", "; did you mean VLLM_LAUNCH_"),
                "VLLM_LAUNCH_<FLAG> variables set flags; a name no flag has would be ignored",
                "fix the name or unset it",
            )


def read_config_file(path: Path, command: str, own: type[BaseSettings], everyone: Mapping[str, type[BaseSettings]]) -> dict[str, Any]:
    """The TOML file's values for `command`: top-level keys any command knows (those of other commands are skipped,
    so one file can serve several), then its [command] section. Unknown keys and sections are errors."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror}", "the config file supplies defaults for the flags", "check the path") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(
            f"--config {path}: not UTF-8 (byte {raw[exc.start]:#04x} on line {line})", "TOML files are UTF-8", "save it as UTF-8"
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--config {path}: not valid TOML: {exc}", "", "fix the file (keys are snake_case: max_model_len = 58000)") from exc

    def canonical(cls: type[BaseSettings], key: str) -> str | None:
        key = key.replace("-", "_")
        return next((f for f in cls.model_fields if key in field_names(cls, f)), None)

    every_key = {n for cls in everyone.values() for f in cls.model_fields for n in field_names(cls, f)} - {"config"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in everyone:
                raise UserError(
                    f"--config {path}: unknown section [{key}]" + did_you_mean(key, everyone),
                    "sections are command names and hold keys for that command only",
                    f"use one of: {', '.join(f'[{c}]' for c in everyone)}, or put the keys at the top level",
                )
            for sub, sub_value in value.items():
                field = canonical(everyone[key], sub)
                if field is None or field == "config":
                    raise UserError(
                        f"--config {path}: [{key}] has an unknown key {sub!r}"
                        + did_you_mean(sub.replace("-", "_"), set(everyone[key].model_fields) - {"config"}),
                        f"keys are the flags of `vllm-launch {key}` in snake_case",
                        f"see `vllm-launch {key} --help`",
                    )
                if key == command:
                    values[field] = sub_value
            continue
        if key.replace("-", "_") == "config":
            raise UserError(f"--config {path}: a config file cannot name another config file", "", "remove the config key")
        if key.replace("-", "_") not in every_key:
            raise UserError(
                f"--config {path}: unknown key {key!r}" + did_you_mean(key.replace("-", "_"), every_key),
                "keys are the flags of the commands in snake_case",
                "fix the key (see `vllm-launch COMMAND --help`)",
            )
        field = canonical(own, key)
        if field is not None:
            values.setdefault(field, value)
    return values


def local_model(value: str) -> str:
    """A --model that names local files -> the absolute path of its directory, so vLLM is given, serves under and is
    probed for one and the same name (`./m`, `m/`, `a/./m` and `m/config.json` all become `/abs/m`)."""
    expanded = os.path.expanduser(value)
    if not (os.path.exists(expanded) or value.startswith((".", "/", "~"))):
        return value  # a Hub repo id
    path = os.path.abspath(expanded)
    if os.path.isfile(path):
        if os.path.basename(path) != "config.json":
            raise ValueError(f"{value!r} is a file, not a model directory or its config.json")
        path = os.path.dirname(path)
    return path


class ModelSettings(LaunchSettings):
    """Which model, and where its facts come from."""

    model: Text
    """Model: a local directory, a path to its config.json, or a Hugging Face repo id (HF_TOKEN, the HF cache
    and HF_HUB_OFFLINE are honoured; a built-in catalog of popular models answers when the Hub is unreachable)."""
    revision: Text | None = None
    """Hub revision (branch, tag or commit) of --model."""
    hf_overrides: Text | None = None
    """JSON merged into the model's config, exactly like vLLM's --hf-overrides (passed on to vLLM too)."""

    @field_validator("model")
    @classmethod
    def _local_model(cls, value: str) -> str:
        return local_model(value)


class PlanSettings(ModelSettings):
    """Plan a vLLM server: context length, KV cache, memory, concurrency; and whether it fits."""

    prompt: Tokens | None = None
    """Longest prompt, in tokens (after the chat template)."""
    completion: Tokens | None = None
    """Longest completion (max_tokens), in tokens."""
    buffer: TokensOrZero = 1000
    """Spare tokens added to prompt + completion for --max-model-len."""
    turns: Turns | None = None
    """Multi-turn episodes: --prompt is the first prompt, --completion the per-turn limit; size for the last turn's prompt."""
    observation: TokensOrZero = 0
    """Multi-turn episodes: tokens (tool results, user messages) added to the prompt after each turn."""
    max_model_len: TokensOrAuto | None = None
    """vLLM's --max-model-len, instead of --prompt/--completion (vLLM's syntax: 32k = 32000, 32K = 32768), or auto (-1):
    the longest length that holds --min-concurrency full-length requests (up to --max-model-len-cap)."""
    max_model_len_cap: Tokens | None = None
    """With --max-model-len auto: the longest length to choose (default: the model's own limit)."""
    gpu: Text | None = None
    """Plan for this GPU instead of the local ones (presets: see `vllm-launch gpus --presets`); several, comma-separated,
    or `all`, with --min-concurrency: how many of which GPU, in which layout (capacity planning)."""
    gpu_memory: Size | None = None
    """Total memory per GPU as CUDA reports it, instead of --gpu (e.g. 79.19GiB for an H100 80GB)."""
    gpus: Count | None = None
    """Number of GPUs with --gpu or --gpu-memory (default: tensor x pipeline x data parallel size; in capacity planning,
    several --gpu types or a --min-concurrency target, the layout search tries up to 8, one node)."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """Backend to plan for: cuda, cpu (vLLM's CPU build, host memory), or auto (cpu when the installed vLLM is a CPU build)."""
    gpu_memory_utilization: Fraction | None = None
    """vLLM's --gpu-memory-utilization (default: that vLLM version's default, 0.92 since 0.20)."""
    tensor_parallel_size: Count = 1
    """vLLM's --tensor-parallel-size (-tp)."""
    pipeline_parallel_size: Count = 1
    """vLLM's --pipeline-parallel-size (-pp)."""
    dtype: Literal["auto", "bfloat16", "float16", "half", "float32", "float"] = "auto"
    """vLLM's --dtype."""
    kv_cache_dtype: Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"] = "auto"
    """vLLM's --kv-cache-dtype."""
    block_size: Count | None = None
    """vLLM's --block-size (default: the vLLM release's: 16 on CUDA, MLA models 32 on Blackwell since 0.18 (64 on
    Hopper from 0.8 to 0.17, and on Blackwell 128 from 0.10, 64 from 0.16); 128 on CPU)."""
    max_num_batched_tokens: Tokens | None = None
    """vLLM's --max-num-batched-tokens (default: by GPU, as vLLM chooses)."""
    max_num_seqs: Count | None = None
    """vLLM's --max-num-seqs."""
    kv_cache_memory_bytes: Size | None = None
    """vLLM's --kv-cache-memory-bytes: KV cache size per GPU, bypassing the utilization budget."""
    min_concurrency: Annotated[float, Field(gt=0)] = 1.0
    """Full-length requests that must fit in the KV cache at once for the plan to count as fitting."""
    enforce_eager: bool = False
    """vLLM's --enforce-eager (no CUDA graphs, so no graph memory)."""
    enable_prefix_caching: bool = True
    """vLLM's prefix caching (--no-enable-prefix-caching to turn it off)."""
    disable_hybrid_kv_cache_manager: bool = False
    """vLLM's --disable-hybrid-kv-cache-manager (sliding-window layers then store the whole context)."""
    allow_long_max_model_len: bool = False
    """Set VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 for vLLM: accept a --max-model-len above the model's limit (risky)."""
    vllm_version: Text | None = None
    """vLLM version whose rules to apply (default: the installed vllm, else the newest release these rules know, 0.33.0)."""
    vllm: Text = "vllm"
    """The vllm executable (its version and build, CUDA or CPU, select the rules; `serve` runs it)."""
    served_model_name: Text | None = None
    """vLLM's --served-model-name."""
    data_parallel_size: Count = 1
    """vLLM's --data-parallel-size: replicas of the TP x PP engine, each with its own KV cache. Leave out TP, PP and DP
    on several GPUs to have the best layout chosen."""
    enable_expert_parallel: bool = False
    """vLLM's --enable-expert-parallel (MoE models; chosen with data parallelism unless set)."""
    json_output: bool = Field(False, validation_alias=AliasChoices("json", "json_output"))
    """Print the plan as one JSON object (stable keys)."""
    format: Literal["text", "json", "args", "vllm-config"] = "text"
    """Output: text, json, args (vLLM's arguments only) or vllm-config (YAML for `vllm serve --config`)."""
    output: Path | None = Field(None, validation_alias=AliasChoices("o", "output"))
    """Write the output to this file (atomically: a temporary file, then a rename) instead of standard output; - is standard output."""
    force: bool = False
    """Let -o/--output replace an existing file; `serve`: start vLLM even when the plan's KV numbers are unverified for this
    model."""

    @field_validator("vllm_version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        from launcher.sizing.versions import check_known

        if value is not None and not re.match(r"^v?\d+\.\d+(\.\d+)*([.+-]?[\w.]*)?$", value):
            raise ValueError(f"{value!r} is not a vLLM version (e.g. 0.32.0)")
        return value if value is None else check_known(value)


class GpusSettings(LaunchSettings):
    """Show the GPUs vLLM would see (NVML), or the built-in presets."""

    json_output: bool = Field(False, validation_alias=AliasChoices("json", "json_output"))
    """Print JSON."""
    presets: bool = False
    """List the GPU presets usable with --gpu instead of the local GPUs."""


class ServeSettings(PlanSettings):
    """Plan, start `vllm serve`, prove it can answer, and supervise it. Arguments after `--` go to vLLM as they are."""

    host: Text | None = None
    """vLLM's --host (default: vLLM's, all interfaces); readiness is probed on 127.0.0.1 unless a host is given."""
    port: Port = 8000
    """vLLM's --port."""
    api_key_env: Text = "VLLM_API_KEY"
    """Name of the environment variable holding the API key; passed to vLLM through its environment, never on its command line."""
    deadline: Annotated[Seconds, Field(ge=30)] = 1200
    """Seconds to wait for the server to be ready (downloads and weight loading included) before giving up."""
    grace: Annotated[Seconds, Field(ge=0)] = 15
    """Seconds vLLM gets to exit after SIGTERM before the whole process tree is killed."""
    ready_file: Path | None = None
    """Write the endpoint, model, context and KV capacity here as JSON once ready (for scripts); removed when it stops."""
    log_file: Path | None = None
    """Where vLLM's output is written besides the terminal (default: ./vllm-launch-PORT.log; where the current folder
    is not writable, $STATE_DIRECTORY, $XDG_STATE_HOME/vllm-launch or the temporary folder, as serve says)."""
    dry_run: bool = False
    """Print the plan and the exact command (--json, --format and -o apply); start nothing."""
    vllm_extra_args: VllmArgs = Field(default_factory=list)
    """Arguments after `--`, passed to `vllm serve` unchanged (in the environment or the file: one string, split like a shell)."""


class ExplainSettings(LaunchSettings):
    """Explain a vLLM context-length or start-up error with the true numbers, and how to fix it."""

    # One argument taken verbatim (commas, quotes and newlines included): a list would be split at commas.
    text: CliPositionalArg[str | None] = None
    """The error text (quoted, as one argument), or a path to a log file; default: read standard input."""
    max_tokens: TokensOrZero | None = None
    """The max_tokens the failing request sent (needed to decode some older messages; 0 when the client sent 0)."""
    max_model_len: Tokens | None = None
    """The server's --max-model-len, if known."""
    prompt_tokens: Tokens | None = None
    """The request's prompt length in tokens, if known."""
    buffer: TokensOrZero = 1000
    """Spare tokens added to prompt + max_tokens in the suggested --max-model-len (the minimum is printed too)."""
    gpu_memory_utilization: Fraction | None = None
    """The server's --gpu-memory-utilization, if known (memory answers start from it)."""
    model: Text | None = None
    """The model the server ran: memory answers are then re-planned through the sizing engine instead of estimated."""
    gpu: Text | None = None
    """With --model: the GPU the server ran on (presets: `vllm-launch gpus --presets`; default: this machine's GPUs)."""
    gpus: Count | None = None
    """With --model: how many GPUs of --gpu."""
    tensor_parallel_size: Count = 1
    """With --model: the server's --tensor-parallel-size."""
    json_output: bool = Field(False, validation_alias=AliasChoices("json", "json_output"))
    """Print JSON."""


class CheckSettings(LaunchSettings):
    """Check a request shape against a running vLLM server: does it fit, and what does this server do if not."""

    url: Url
    """Server base URL, e.g. http://127.0.0.1:8000."""
    model: Text | None = None
    """Served model name (default: the first one the server lists)."""
    prompt_tokens: TokensOrZero
    """Prompt length in tokens (after the chat template)."""
    max_tokens: Tokens
    """The max_tokens the client sends."""
    api_key_env: Text = "VLLM_API_KEY"
    """Name of the environment variable holding the server's API key."""
    probe: bool = False
    """Also send one real request of that shape and report what vLLM returned."""
    json_output: bool = Field(False, validation_alias=AliasChoices("json", "json_output"))
    """Print JSON."""


class BudgetSettings(LaunchSettings):
    """Plan a multi-turn episode's token budget: prompt growth per turn, the max_model_len it needs, the max_tokens to send."""

    system_tokens: TokensOrZero | None = None
    """Initial prompt (system + first user message) in tokens (default 0)."""
    max_completion_length_per_turn: Tokens | None = None
    """Per-turn completion limit: the max_tokens each request sends."""
    observation_tokens_per_turn: TokensOrZero | None = None
    """Tool results / user messages added to the prompt after each turn (default 0)."""
    turns: Turns | None = None
    """Number of turns in the episode."""
    total_max_prompt_length: Tokens | None = None
    """rl_env-style cap on the prompt over the whole trajectory."""
    total_max_completion_length: Tokens | None = None
    """rl_env-style cap on all completions of the trajectory together."""
    trajectory_config: Path | None = None
    """YAML or JSON file with the keys above (e.g. an rl_env config); flags override it."""
    buffer: TokensOrZero = 1000
    """Spare tokens added to the needed max_model_len."""
    max_model_len: Tokens | None = None
    """A server's max_model_len to check the episode against."""
    url: Url | None = None
    """Read max_model_len from this running vLLM server instead of --max-model-len."""
    api_key_env: Text = "VLLM_API_KEY"
    """Name of the environment variable holding the server's API key (with --url)."""
    json_output: bool = Field(False, validation_alias=AliasChoices("json", "json_output"))
    """Print JSON."""


class RenderSettings(PlanSettings):
    """Render deployment files from the plan: command, vllm-config, systemd, slurm, k8s (stdout, or -o FILE)."""

    target: CliPositionalArg[Literal["command", "vllm-config", "systemd", "slurm", "k8s"]]
    """What to render: command (shell script), vllm-config (YAML), systemd (unit), slurm (sbatch script), k8s (manifests)."""
    name: Text | None = None
    """Name of the service/job/Kubernetes objects (default: derived from the model, sanitised for Kubernetes)."""
    port: Port = 8000
    """vLLM's --port (Slurm picks a free one at run time instead)."""
    host: Text | None = None
    """vLLM's --host."""
    api_key_env: Text = "VLLM_API_KEY"
    """Environment variable that holds the API key at run time (from an EnvironmentFile, a Secret, the job's environment)."""
    deadline: Annotated[Seconds, Field(ge=30)] = 1800
    """Seconds allowed for downloading and loading the model before the start counts as failed."""
    grace: Annotated[Seconds, Field(ge=0)] = 30
    """Seconds vLLM gets to stop after SIGTERM."""
    vllm_launch: Text = "vllm-launch"
    """systemd: the vllm-launch executable the unit runs (a bare name is resolved on this machine's PATH, then next to
    this Python)."""
    user: str | None = None
    """systemd: the user the service runs as."""
    working_directory: str | None = None
    """systemd: the service's working directory."""
    environment_file: str = "/etc/vllm-launch/secrets.env"
    """systemd: file with HF_TOKEN / VLLM_API_KEY for the service (the secrets never go into the unit)."""
    serve_force: bool = False
    """systemd: the unit runs `vllm-launch serve --force`, which starts vLLM even when the plan's KV numbers are
    unverified for this model (without it, no unit is written for such a model: it could never start). --force is
    about -o."""
    nodes: Count = 1
    """slurm/k8s: nodes; more than one gives TP = GPUs per node and PP = nodes (vLLM's advice)."""
    gpus_per_node: Count | None = None
    """slurm/k8s: GPUs per node (default: tensor x pipeline x data parallel size on one node)."""
    multinode_backend: Literal["ray", "native"] = "ray"
    """slurm: multi-node with a Ray cluster, or vLLM's own --nnodes/--node-rank/--headless."""
    replicas: Count = 1
    """slurm: data-parallel replicas as a job array (one server per array task); k8s: replicas."""
    cpus_per_task: Count = 8
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
    image: str | None = None
    """k8s: the stock vLLM image that serves, left untouched (default: vllm/vllm-openai:v<--vllm-version, else the newest
    release these rules know, 0.33.0>). The plan and the init container size with its tag's release."""
    launcher_image: str = "ghcr.io/vllm-launch/vllm-launch:0.1.0"
    """k8s: the vllm-launch image of the init container that sizes on the node."""
    hf_token_secret: str = "hf-token"
    """k8s: Secret holding HF_TOKEN (key 'token'); optional at run time."""
    api_key_secret: str | None = None
    """k8s: Secret holding the API key (key 'key'); readiness then sends it."""
    hf_cache_pvc: str | None = None
    """k8s: PersistentVolumeClaim for the HF cache (default: an emptyDir, re-downloaded per pod)."""
    vllm_extra_args: VllmArgs = Field(default_factory=list)
    """Arguments after `--`, passed to `vllm serve` unchanged (in the environment or the file: one string, split like a shell)."""

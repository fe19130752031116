"""Renderers turn a plan into text through the jinja2 templates in `templates/` (shipped as
`launcher.templates`). No script text is assembled in Python."""

from __future__ import annotations

import json
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2


def _yaml_scalar(value: Any) -> str:
    """A YAML scalar that reads back as exactly this value (JSON strings are valid YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))


def _load(name: str) -> str:
    try:
        return resources.files("launcher.templates").joinpath(name).read_text()
    except ModuleNotFoundError:  # a source checkout that was not pip-installed: templates/ sits beside launcher/
        return (Path(__file__).resolve().parent.parent / "templates" / name).read_text()


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiling plan.txt.j2 costs ~50 ms, a sixth of a plan: keep the compiled code in jinja's per-user temp cache
    (keyed by the template's checksum, so an edited template is recompiled). Without a usable temp folder: no cache."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(_load),
    bytecode_cache=_bytecode_cache(),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
ENV.filters["shquote"] = shlex.quote
ENV.filters["yaml"] = _yaml_scalar
# Plain text (jinja's tojson is HTML-escaped), UTF-8 as is: vLLM's JSON answers carry names unescaped, and the Slurm
# readiness check compares the two.
ENV.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


NUMERIC_OPTIONS = {
    "max-model-len",
    "gpu-memory-utilization",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "data-parallel-size",
    "block-size",
    "max-num-batched-tokens",
    "max-num-seqs",
    "kv-cache-memory-bytes",
    "port",
}


def args_to_options(args: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """vLLM arguments (model first) -> the key/value form `vllm serve --config FILE` reads."""
    options: dict[str, Any] = {"model": args[0]}
    i = 1
    while i < len(args):
        key = args[i].removeprefix("--")
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            value: Any = args[i + 1]
            if key in NUMERIC_OPTIONS:
                value = float(value) if "." in value else int(value)
            options[key] = value
            i += 2
        else:
            options[key.removeprefix("no-")] = not key.startswith("no-")
            i += 1
    return options

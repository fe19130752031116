"""Entry point: `vllm-launch COMMAND [flags]`; the bare `vllm-launch --prompt N --completion N` serves.

Each command's flags come from its settings model (launcher.settings); this module only dispatches and
turns errors into messages and exit codes: 0 ok, 1 does not fit / failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import CliApp

from launcher import __version__
from launcher.errors import UserError

# name -> (settings class, module with run(settings) -> int, one-line summary)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "plan": ("PlanSettings", "launcher.commands.plan", "predict vLLM's context, KV cache and memory; say whether it fits"),
    "gpus": ("GpusSettings", "launcher.commands.gpus", "show the GPUs vLLM would see (NVML), or the presets"),
    "serve": ("ServeSettings", "launcher.commands.serve", "plan, start vLLM, prove it is ready, supervise it (the default command)"),
    "explain": ("ExplainSettings", "launcher.commands.explain", "explain a vLLM context-length or start-up error with the true numbers"),
    "check": ("CheckSettings", "launcher.commands.check", "check a request shape against a running server (--probe sends it)"),
    "budget": ("BudgetSettings", "launcher.commands.budget", "plan a multi-turn episode's token budget"),
    "render": ("RenderSettings", "launcher.commands.render", "write deployment files: command, vllm-config, systemd, slurm, k8s"),
}
DEFAULT_COMMAND = "serve"

USAGE = """usage: vllm-launch COMMAND [flags]      (vllm-launch COMMAND --help for its flags)

Size, start and prove ready vLLM servers.

commands:
{commands}

Flags can also come from VLLM_LAUNCH_<FLAG> environment variables and a TOML file (--config FILE);
precedence: flags > environment > file > defaults.
"""


def _config_path(argv: list[str]) -> Path | None:
    """Only --config is read ahead, so the settings model knows which file is its lowest source."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    raw = known.config or os.environ.get("VLLM_LAUNCH_CONFIG")
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise UserError(f"--config {raw}: no such file", "the config file supplies defaults for the flags", "check the path")
    return path


def _format_validation(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        flag = "--" + loc.replace("_", "-") if loc else "input"
        value = err.get("input")
        lines.append(f"{flag}: {err['msg']}" + (f" (got {value!r})" if isinstance(value, (str, int, float)) else ""))
    return "\n  ".join(lines)


def run_command(name: str, argv: list[str]) -> int:
    from launcher import settings as settings_module
    from launcher.settings import for_command

    class_name, module_name, _ = COMMANDS[name]
    extra: list[str] = []
    if "--" in argv:  # everything after `--` belongs to vLLM
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    cls = for_command(getattr(settings_module, class_name), f"vllm-launch {name}", _config_path(argv))
    try:
        settings = CliApp.run(cls, cli_args=argv)
        if extra:
            settings = settings.model_copy(update={"vllm_extra_args": extra})
    except ValidationError as exc:
        print(f"vllm-launch {name}: invalid input\n  {_format_validation(exc)}", file=sys.stderr)
        return 2
    return importlib.import_module(module_name).run(settings)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(len(n) for n in COMMANDS)
        print(USAGE.format(commands="\n".join(f"  {n:<{width}}  {c[2]}" for n, c in COMMANDS.items())))
        return 0 if argv else 2
    if argv and argv[0] == "--version":
        print(f"vllm-launch {__version__}")
        return 0
    if argv and argv[0] in COMMANDS:
        name, rest = argv[0], argv[1:]
    elif DEFAULT_COMMAND in COMMANDS and (not argv or argv[0].startswith("-")):
        name, rest = DEFAULT_COMMAND, argv
    else:
        print(f"vllm-launch: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return run_command(name, rest)
    except UserError as exc:
        print(f"vllm-launch {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

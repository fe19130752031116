"""Entry point: `vllm-launch COMMAND [flags]`; the bare `vllm-launch --prompt N --completion N` serves.

Each command's flags come from its settings model (launcher.settings); this module dispatches, answers `--help`
without importing pydantic (launcher.usage), accepts vLLM's spellings of flags, names unknown flags, variables and
config keys with a "did you mean", and turns errors into messages and exit codes: 0 ok, 1 does not fit / failed,
2 bad input. `main` takes argv and reads os.environ, so tests can drive it in-process.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from launcher import __version__
from launcher.errors import UserError

if TYPE_CHECKING:  # --help must not pay for pathlib and friends
    from pathlib import Path

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
# Commands whose arguments after `--` go to `vllm serve`; for the others `--` only ends the flags.
TAKES_VLLM_ARGS = ("serve", "render")
# vLLM's short spellings (vllm/engine/arg_utils.py in 0.32: "-tp", "-pp"); vLLM also accepts --max_model_len.
VLLM_SHORT_FLAGS = {"-tp": "--tensor-parallel-size", "-pp": "--pipeline-parallel-size"}

USAGE = """usage: vllm-launch COMMAND [flags]      (vllm-launch COMMAND --help for its flags)

Size, start and prove ready vLLM servers.

commands:
{commands}

Flags can also come from VLLM_LAUNCH_<FLAG> environment variables and a TOML file (--config FILE);
precedence: flags > environment > file > defaults.
"""


def _flags_part(argv: list[str]) -> list[str]:
    return argv[: argv.index("--")] if "--" in argv else argv


def vllm_spellings(argv: list[str]) -> list[str]:
    """vLLM's spellings of flags -> ours: --max_model_len[=N] -> --max-model-len[=N], -tp -> --tensor-parallel-size."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and len(arg) > 2:
            out.append(name.replace("_", "-") + eq + value)
        else:
            out.append(VLLM_SHORT_FLAGS.get(name, name) + eq + value if name in VLLM_SHORT_FLAGS else arg)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


def check_flags(command: str, argv: list[str], flags: dict[str, str], others: dict[str, dict[str, str]]) -> None:
    """Every flag in argv is one of this command's; otherwise say which command has it, or the closest match."""
    from launcher.settings import did_you_mean

    for arg in _flags_part(argv):
        if not arg.startswith("-") or arg == "-" or _is_number(arg):
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            continue
        if name == "--vllm-extra-args":
            raise UserError(f"{name} is not a flag", "vLLM's own arguments go after `--`", f"vllm-launch {command} [flags] -- --seed 1 ...")
        owners = [c for c, f in others.items() if name in f]
        if owners:
            raise UserError(
                f"{name} is not a flag of `vllm-launch {command}` (it is one of `{'`, `'.join(owners)}`)",
                "",
                f"see `vllm-launch {command} --help`",
            )
        raise UserError(f"unknown flag {name}" + did_you_mean(name, flags), "", f"see `vllm-launch {command} --help`")


def _config_path(argv: list[str]) -> Path | None:
    """--config is read ahead, so the settings model knows which file is its lowest source."""
    raw = None
    for i, arg in enumerate(_flags_part(argv)):
        if arg == "--config" and i + 1 < len(argv):
            raw = argv[i + 1]
        elif arg.startswith("--config="):
            raw = arg.split("=", 1)[1]
    raw = raw if raw is not None else os.environ.get("VLLM_LAUNCH_CONFIG") or None
    if raw is None:
        return None
    from pathlib import Path

    path = Path(raw).expanduser()
    if not path.is_file():
        raise UserError(
            f"--config {raw}: " + ("a directory, not a file" if path.is_dir() else "no such file"),
            "the config file supplies defaults for the flags",
            "check the path",
        )
    return path


class _Where:
    """Names where a setting's value came from (flag, variable or config file), for error messages."""

    def __init__(self, cls: type, argv: list[str], flags: dict[str, str], file_values: dict[str, Any], config: Path | None) -> None:
        self.cls, self.argv, self.flags, self.file_values, self.config = cls, argv, flags, file_values, config

    def field(self, loc: str) -> str | None:
        from launcher.settings import field_names

        return next((f for f in self.cls.model_fields if loc in field_names(self.cls, f)), None)

    def __call__(self, loc: str) -> str:
        from launcher.settings import field_names

        field = self.field(loc)
        if field is None:
            return loc or "input"
        given = [a.split("=", 1)[0] for a in _flags_part(self.argv)]
        for flag, name in self.flags.items():
            if name == field and flag in given:
                return flag
        for spelling in field_names(self.cls, field):
            var = "VLLM_LAUNCH_" + spelling.upper()
            if os.environ.get(var):
                return f"{var}={os.environ[var]!r}"
        if field in self.file_values:
            return f"{field} in {self.config}"
        if field in ("text", "target"):
            return field.upper()
        return next((f for f, n in self.flags.items() if n == field), "--" + field.replace("_", "-"))


def _format_validation(exc: Any, where: _Where) -> str:
    lines = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            field = where.field(loc) or loc
            flag = where(loc)
            also = f" (or VLLM_LAUNCH_{field.upper()}, or {field} = ... in the --config file)" if flag.startswith("-") else ""
            lines.append(f"{flag} is required{also}")
            continue
        value = err.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float)) and str(value) not in message else ""
        if err["type"] == "literal_error" and isinstance(value, str):
            import re

            from launcher.settings import did_you_mean

            shown += did_you_mean(value, re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", ""))))
        lines.append(f"{where(loc)}: {message}{shown}")
    return "\n  ".join(lines)


def _format_cli_error(command: str, text: str) -> str:
    """argparse's complaints, said plainly."""
    import re

    text = text.removeprefix("error parsing CLI: ").strip()
    if text.startswith("unrecognized arguments:"):
        extra = text.split(":", 1)[1].strip()
        if command == "explain":
            return f"unexpected argument(s) {extra!r}: explain takes ONE argument: the quoted error text, or a log file"
        return f"unexpected argument(s) {extra!r}; see `vllm-launch {command} --help`"
    if "the following arguments are required: target" in text.lower():
        return "which file to render? pass a TARGET: command, vllm-config, systemd, slurm or k8s"
    argument = re.match(r"argument ([^ :/]+)[^:]*: (.*)", text)
    if argument and argument[2].startswith("expected one argument"):
        return f"{argument[1]} needs a value; see `vllm-launch {command} --help`"
    if argument and argument[2].startswith("ignored explicit argument"):
        return f"{argument[1]} is a switch and takes no value (write {argument[1]} or --no-{argument[1].removeprefix('--')})"
    if "invalid choice" in text:
        from launcher.settings import did_you_mean

        bad = text.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'\"")
        choices = text.split("choose from", 1)[1].strip(" ()").replace("'", "").split(", ") if "choose from" in text else []
        return text + did_you_mean(bad, choices)
    return text + f"; see `vllm-launch {command} --help`"


def run_command(name: str, argv: list[str]) -> int:
    import importlib

    from pydantic import ValidationError
    from pydantic_settings import CliApp, SettingsError

    from launcher import settings as settings_module

    classes = {c: getattr(settings_module, spec[0]) for c, spec in COMMANDS.items()}
    cls = classes[name]
    extra: list[str] | None = None
    if name in TAKES_VLLM_ARGS and "--" in argv:  # everything after `--` belongs to vLLM
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    argv = vllm_spellings(argv)
    flags = settings_module.cli_flags(cls)
    check_flags(name, argv, flags, {c: settings_module.cli_flags(k) for c, k in classes.items() if c != name})
    settings_module.check_environment(os.environ, classes.values())
    config = _config_path(argv)
    file_values = settings_module.read_config_file(config, name, cls, classes) if config else {}
    token = settings_module.CONFIG_VALUES.set(file_values)
    try:
        settings = CliApp.run(cls, cli_args=argv, **({"vllm_extra_args": extra} if extra is not None else {}))
    except ValidationError as exc:
        where = _Where(cls, argv, flags, file_values, config)
        print(f"vllm-launch {name}: invalid input\n  {_format_validation(exc, where)}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"vllm-launch {name}: {_format_cli_error(name, str(exc))}", file=sys.stderr)
        return 2
    finally:
        settings_module.CONFIG_VALUES.reset(token)
    return importlib.import_module(COMMANDS[name][1]).run(settings)


def _print_help(argv: list[str]) -> int:
    """The whole tool's usage, or one command's flags (`vllm-launch --prompt 1 --help` is serve's)."""
    command = argv[0] if argv and argv[0] in COMMANDS else DEFAULT_COMMAND if argv and argv[0] not in ("-h", "--help") else None
    if command is not None:
        from launcher.usage import command_help

        sys.stdout.write(command_help(command, COMMANDS[command][0]))
        return 0
    width = max(len(n) for n in COMMANDS)
    print(USAGE.format(commands="\n".join(f"  {n:<{width}}  {c[2]}" for n, c in COMMANDS.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")  # file names that are not UTF-8 print back as the bytes they were
    if not argv:
        _print_help(argv)
        return 2
    if "-h" in _flags_part(argv) or "--help" in _flags_part(argv):
        return _print_help(argv)
    if argv[0] == "--version":
        print(f"vllm-launch {__version__}")
        return 0
    if argv[0] in COMMANDS:
        name, rest = argv[0], argv[1:]
    elif argv[0].startswith("-"):
        name, rest = DEFAULT_COMMAND, argv
    else:
        from launcher.settings import did_you_mean

        hint = did_you_mean(argv[0], COMMANDS).removeprefix("; ") or f"commands: {', '.join(COMMANDS)}"
        print(f"vllm-launch: unknown command {argv[0]!r}; {hint}", file=sys.stderr)
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

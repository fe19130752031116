"""`--help` is read from settings.py's source without pydantic (launcher.usage): it must say what the models accept."""

from __future__ import annotations

import pytest

from launcher import settings
from launcher.cli import COMMANDS
from launcher.usage import LEGEND, command_help, read_help

HELP = read_help()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_lists_exactly_the_flags_the_model_accepts(command):
    cls = getattr(settings, COMMANDS[command][0])
    accepted = settings.cli_flags(cls)
    shown = [f for f in HELP[cls.__name__].flags if not f.positional]
    assert {f.name for f in shown} == set(accepted.values())
    for flag in shown:
        field = cls.model_fields[flag.name]
        for spelling in flag.spellings:
            assert accepted[spelling] == flag.name, spelling
        assert flag.required == field.is_required(), flag.name
        if flag.default is not None:
            assert flag.default == str(field.default), flag.name
        assert flag.switch == (field.annotation is bool), flag.name
        assert flag.switch or flag.syntax.startswith("{") or flag.syntax in LEGEND, f"{flag.name}: no syntax for its type"
        assert flag.doc, f"{flag.name} has no docstring"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_positional_arguments_match(command):
    cls = getattr(settings, COMMANDS[command][0])
    positional = {f.name for f in HELP[cls.__name__].flags if f.positional}
    expected = {n for n, f in cls.model_fields.items() if settings._POSITIONAL in f.metadata}
    assert positional == expected
    text = command_help(command, cls.__name__)
    for name in positional:
        assert name.upper() in text.splitlines()[0]

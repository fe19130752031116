"""`--help` without importing pydantic (which alone costs more than the 0.1 s help may take): each command's flags,
their value syntax and meaning, read from the source of `launcher/settings.py`, the one place flags are declared.

A flag's syntax comes from the name of its value type there (Tokens, Size, Count, ...; see SYNTAX), its meaning from
the docstring under it, and its default from the assignment. tests/test_help.py checks this against the models.
"""

from __future__ import annotations

import ast
import os

TOKENS_SYNTAX = "58000, 58_000, 1e5, 32k (= 32000) or 32K (= 32768)"
SIZE_SYNTAX = "80G or 80GiB (= 80 x 2^30 bytes), 80g or 80GB (= 80 x 10^9), or bytes: 85899345920"
# Value type name in settings.py -> what --help shows, and how to write it.
SYNTAX = {
    "Tokens": "TOKENS",
    "TokensOrZero": "TOKENS",
    "TokensOrAuto": "TOKENS|auto",
    "Size": "SIZE",
    "Count": "N",
    "Turns": "N",
    "int": "N",
    "Fraction": "FRACTION",
    "float": "NUMBER",
    "Seconds": "SECONDS",
    "Port": "PORT",
    "Url": "URL",
    "Path": "FILE",
    "Text": "TEXT",
    "str": "TEXT",
}
LEGEND = {
    "TOKENS": TOKENS_SYNTAX,
    "TOKENS|auto": TOKENS_SYNTAX + "; or auto (= -1): the longest that fits",
    "SIZE": SIZE_SYNTAX,
    "N": "a whole number, e.g. 2",
    "FRACTION": "a number above 0 and at most 1, e.g. 0.9",
    "NUMBER": "e.g. 1.5",
    "SECONDS": "e.g. 1200 or 90.5",
    "PORT": "1 to 65535",
    "URL": "http://HOST:PORT or https://...",
    "FILE": "a path",
    "TEXT": "any text (quote it if it has spaces)",
}
SETTINGS_SOURCE = os.path.join(os.path.dirname(__file__), "settings.py")


class Flag:
    """One flag as --help shows it. (A plain class: dataclasses would import inspect, a tenth of help's time budget.)"""

    def __init__(
        self, name: str, spellings: tuple[str, ...], syntax: str, doc: str, default: str | None, required: bool, positional: bool, on: bool
    ) -> None:
        self.name = name  # field name, e.g. max_model_len
        self.spellings = spellings  # ("--max-model-len",); ("-o", "--output")
        self.syntax = syntax  # TOKENS, {a,b}; "" for a switch
        self.doc = doc
        self.default = default  # as written in the source; None: no default shown
        self.required = required
        self.positional = positional
        self.switch = not syntax
        self.on = on  # a switch that is on by default: shown as --x / --no-x


class CommandHelp:
    def __init__(self, doc: str, flags: tuple[Flag, ...]) -> None:
        self.doc = doc
        self.flags = flags


def _alias_choices(call: ast.expr | None) -> list[str]:
    if isinstance(call, ast.Call):
        for kw in call.keywords:
            if kw.arg == "validation_alias" and isinstance(kw.value, ast.Call):
                return [a.value for a in kw.value.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return []


def _default(value: ast.expr | None) -> tuple[str | None, bool]:
    """(default as written, required) from `= 8000`, `= Field(1000, ge=0)`, `= Field(default_factory=list)` or nothing."""
    if value is None:
        return None, True
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
        if not value.args:
            return None, False
        if isinstance(value.args[0], ast.Constant) and value.args[0].value is Ellipsis:
            return None, True
        value = value.args[0]
    if isinstance(value, ast.Constant):
        return (None if value.value is None or isinstance(value.value, bool) else str(value.value)), False
    return ast.unparse(value), False


def _names(node: ast.expr, aliases: dict[str, ast.expr]) -> list[str]:
    """Every name in an annotation, in order, with the module's type aliases expanded after their own name."""
    found: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.append(sub.id)
            if sub.id in aliases:
                found += _names(aliases[sub.id], {})
        elif isinstance(sub, ast.Attribute):
            found.append(sub.attr)
    return found


def _syntax(annotation: ast.expr, names: list[str]) -> str:
    for sub in ast.walk(annotation):
        if isinstance(sub, ast.Subscript) and getattr(sub.value, "id", "") == "Literal":
            items = sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]
            return "{" + ",".join(str(i.value) for i in items if isinstance(i, ast.Constant)) + "}"
    return next((SYNTAX[n] for n in names if n in SYNTAX), "VALUE")


def _fields(cls: ast.ClassDef, aliases: dict[str, ast.expr]) -> list[Flag]:
    flags = []
    body = cls.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        nxt = body[i + 1] if i + 1 < len(body) else None
        doc = nxt.value.value if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) else ""
        names = _names(stmt.annotation, aliases)
        default, required = _default(stmt.value)
        switch = "bool" in names
        on = switch and "True" in ast.unparse(stmt.value) if stmt.value is not None else False
        spellings = [name, *(a for a in _alias_choices(stmt.value) if a != name)]
        if len(spellings) > 1:  # aliases first: `--json` rather than `--json-output`, `-o` before `--output`
            spellings = [*spellings[1:], name]
            spellings = [s for s in spellings if len(s) == 1] + [s for s in spellings if len(s) > 1][:1]
        flags.append(
            Flag(
                name=name,
                spellings=tuple(("-" if len(s) == 1 else "--") + s.replace("_", "-") for s in spellings),
                syntax="" if switch else _syntax(stmt.annotation, names),
                doc=" ".join(str(doc).split()),
                default=default if default not in ("", "[]") else None,
                required=required and "None" not in names,
                positional="CliPositionalArg" in names,
                on=on,
            )
        )
        if "CliSuppress" in names:
            flags.pop()
    return flags


def read_help(path: str = SETTINGS_SOURCE) -> dict[str, CommandHelp]:
    """Settings class name -> its docstring and flags (inherited ones first, as pydantic orders them)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    aliases = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    result: dict[str, CommandHelp] = {}

    def build(name: str) -> CommandHelp:
        if name in result:
            return result[name]
        cls = classes[name]
        inherited: dict[str, Flag] = {}
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                inherited.update({f.name: f for f in build(base.id).flags})
        for flag in _fields(cls, aliases):
            inherited[flag.name] = flag
        result[name] = CommandHelp(" ".join((ast.get_docstring(cls) or "").split()), tuple(inherited.values()))
        return result[name]

    for name in classes:
        build(name)
    return result


def _wrap(text: str, width: int, indent: str) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [indent + x for x in [*lines, line] if x] or [indent]


def command_help(command: str, class_name: str) -> str:
    info = read_help()[class_name]
    positional = [f for f in info.flags if f.positional]
    flags = [f for f in info.flags if not f.positional]
    usage = f"usage: vllm-launch {command}"
    for p in positional:
        usage += f" {p.name.upper()}" if p.required else f" [{p.name.upper()}]"
    usage += "".join(f" {f.spellings[-1]} {f.syntax}" for f in flags if f.required) + " [flags]"
    if command in ("serve", "render"):
        usage += " [-- VLLM_ARGS...]"
    out = [usage, "", *_wrap(info.doc, 100, ""), ""]
    used: list[str] = []
    for title, group in (("arguments", positional), ("flags", flags)):
        if not group:
            continue
        out.append(f"{title}:")
        for f in group:
            if f.positional:
                head = f"  {f.name.upper()}" + (f" {f.syntax}" if f.syntax.startswith("{") else "")
            elif f.switch:
                head = "  " + ", ".join(f.spellings) + (f" / --no-{f.spellings[-1][2:]}" if f.on else "")
            else:
                head = "  " + ", ".join(f.spellings) + f" {f.syntax}"
            if f.syntax in LEGEND and f.syntax not in used:
                used.append(f.syntax)
            doc = f.doc
            if f.required and not f.positional:
                doc += " (required)"
            elif f.default is not None and not f.switch:
                doc += f" (default: {f.default})"
            elif f.on:
                doc += " (default: on)"
            if len(head) > 34:
                out.append(head)
                out += _wrap(doc, 84, " " * 36)
            else:
                wrapped = _wrap(doc, 84, " " * 36)
                out.append(head.ljust(36) + wrapped[0].lstrip())
                out += wrapped[1:]
        out.append("")
    if used:
        out.append("values:")
        out += [f"  {s:<10}{LEGEND[s]}" for s in used]
        out.append("")
    out += [
        "Every flag can also come from VLLM_LAUNCH_<FLAG> (e.g. VLLM_LAUNCH_MAX_MODEL_LEN=58000) or the --config TOML file",
        "(max_model_len = 58000); precedence: flags > environment > file > defaults. vLLM's spellings work too:",
        "--max_model_len, -tp, -pp.",
    ]
    return "\n".join(out) + "\n"

"""Message sites in vLLM's Python source, read with `ast`: every `raise X(msg)`, `create_error_response(msg)` and
logger error/warning call whose message is a string template, as a list of parts.

A part is a literal `str`, a `Field` (an f-string/%-format/`.format` placeholder, named by its source expression) or a
`Choice` between alternative part lists (a local variable assigned different strings on different paths, or an
`x if c else y` inside the message).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

LOG_METHODS = {"error", "warning", "warn", "exception", "critical", "warning_once", "error_once", "fatal", "info", "info_once"}
ERROR_RESPONSE_CALLS = {"create_error_response", "_create_error_response", "create_streaming_error_response"}
MAX_DEPTH = 4  # name-resolution depth (msg -> part -> sub-part)


@dataclass(frozen=True)
class Field:
    expr: str  # the placeholder's source expression, e.g. "self.max_model_len" or "len(prompt_ids)"
    spec: str = ""  # format spec, e.g. ".2f" or ","


@dataclass(frozen=True)
class Choice:
    options: tuple[tuple[object, ...], ...]


Parts = tuple[object, ...]


@dataclass
class Site:
    file: str  # relative to the package root, e.g. "vllm/config/model.py"
    line: int
    function: str
    call: str  # "raise ValueError", "log.warning", "create_error_response"
    parts: Parts
    severity: str = "error"  # "error" (raised / logged as error) or "warning"
    extra: dict = field(default_factory=dict)


def _merge(parts: list[object]) -> Parts:
    """Join adjacent literals; drop empty ones."""
    out: list[object] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        out.append(part)
    return tuple(out)


_PERCENT = re.compile(r"%(?:\((\w+)\))?([-+ #0]*\d*(?:\.\d+)?)([sdrifgeExXc%])")


class Renderer:
    """Turns an expression into message parts, resolving local string variables of the enclosing function."""

    def __init__(self, function: ast.AST | None, use_line: int) -> None:
        self.function = function
        self.use_line = use_line

    def render(self, node: ast.AST, depth: int = 0) -> Parts | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (node.value,)
        if isinstance(node, ast.JoinedStr):
            out: list[object] = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    out.append(str(value.value))
                    continue
                assert isinstance(value, ast.FormattedValue)
                spec = ast.unparse(value.format_spec)[2:-1] if value.format_spec else ""
                sub = self._inline(value.value, depth) if not spec else None
                out.extend(sub if sub is not None else (Field(ast.unparse(value.value), spec),))
            return _merge(out)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.render(node.left, depth), self.render(node.right, depth)
            return _merge([*left, *right]) if left is not None and right is not None else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            left = self.render(node.left, depth)
            if left is None:
                return None
            args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            return self.percent(left, args, depth)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            base = self.render(node.func.value, depth)
            return self.dot_format(base, node.args, node.keywords, depth) if base is not None else None
        if isinstance(node, ast.IfExp):
            body, orelse = self.render(node.body, depth), self.render(node.orelse, depth)
            if body is None or orelse is None:
                return None
            return (Choice((body, orelse)),)
        if isinstance(node, ast.Name):
            return self.resolve(node.id, depth)
        return None

    def _inline(self, node: ast.AST, depth: int) -> Parts | None:
        """A placeholder that is itself a string template (a local message piece or `"a" if c else "b"`)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (node.value,)
        if isinstance(node, (ast.Name, ast.IfExp)) and depth < MAX_DEPTH:
            return self.render(node, depth + 1)
        return None

    def resolve(self, name: str, depth: int) -> Parts | None:
        if self.function is None or depth >= MAX_DEPTH:
            return None
        assigned: list[tuple[int, ast.AST]] = []
        appended: list[tuple[int, ast.AST]] = []
        simple: set[int] = set()  # Name targets of plain `name = ...` / `name += ...` statements
        args = self.function.args  # type: ignore[attr-defined]
        if any(a.arg == name for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a):
            return None  # a parameter: its value comes from the caller
        for node in ast.walk(self.function):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == name
            ):
                simple.add(id(node.targets[0]))
                if node.lineno < self.use_line:
                    assigned.append((node.lineno, node.value))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name and node.value:
                simple.add(id(node.target))
                if node.lineno < self.use_line:
                    assigned.append((node.lineno, node.value))
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                if not isinstance(node.op, ast.Add):
                    return None
                simple.add(id(node.target))
                if node.lineno < self.use_line:
                    appended.append((node.lineno, node.value))
        for node in ast.walk(self.function):
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store) and id(node) not in simple:
                return None  # bound by a loop, a tuple, `with ... as`, `:=`: not a plain string
        if not assigned:
            return None
        options = []
        for _, value in sorted(assigned, key=lambda item: item[0]):
            rendered = self.render(value, depth + 1)
            if rendered is None:
                return None
            if rendered not in options:
                options.append(rendered)
        out: list[object] = list(options[0]) if len(options) == 1 else [Choice(tuple(options))]
        for _, value in sorted(appended, key=lambda item: item[0]):
            rendered = self.render(value, depth + 1)
            if rendered is None:
                return None
            out.append(Choice((rendered, ())))  # appended on some path: optional
        return _merge(out)

    def percent(self, template: Parts, args: list[ast.AST], depth: int) -> Parts | None:
        """`"... %s ... %d" % (a, b)` and logger calls' lazy %-formatting."""
        queue = list(args)
        out: list[object] = []
        for part in template:
            if not isinstance(part, str):
                out.append(part)
                continue
            pos = 0
            for m in _PERCENT.finditer(part):
                out.append(part[pos : m.start()])
                pos = m.end()
                if m.group(3) == "%":
                    out.append("%")
                    continue
                if not queue:
                    return None
                arg = queue.pop(0)
                spec = m.group(2) + (m.group(3) if m.group(3) in "fgeE" else "")
                if m.group(3) == "d":
                    spec = m.group(2) + "d"
                sub = self._inline(arg, depth) if m.group(3) == "s" else None
                out.extend(sub if sub is not None else (Field(ast.unparse(arg), spec),))
            out.append(part[pos:])
        return _merge(out)

    def dot_format(self, template: Parts, args: list[ast.AST], keywords: list[ast.keyword], depth: int) -> Parts | None:
        named = {k.arg: k.value for k in keywords if k.arg}
        index = 0
        out: list[object] = []
        for part in template:
            if not isinstance(part, str):
                out.append(part)
                continue
            pos = 0
            for m in re.finditer(r"\{(\w*)(?::([^}]*))?\}", part):
                out.append(part[pos : m.start()])
                pos = m.end()
                key = m.group(1)
                if key == "":
                    if index >= len(args):
                        return None
                    arg, index = args[index], index + 1
                elif key.isdigit():
                    if int(key) >= len(args):
                        return None
                    arg = args[int(key)]
                elif key in named:
                    arg = named[key]
                else:
                    return None
                sub = self._inline(arg, depth) if not m.group(2) else None
                out.extend(sub if sub is not None else (Field(ast.unparse(arg), m.group(2) or ""),))
            out.append(part[pos:])
        return _merge(out)


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _walk(tree: ast.AST):
    """Every node with its innermost enclosing function, parents before children."""
    stack: list[tuple[ast.AST, ast.AST | None]] = [(tree, None)]
    while stack:
        node, function = stack.pop()
        yield node, function
        inner = node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        stack.extend((child, inner) for child in reversed(list(ast.iter_child_nodes(node))))


def find_sites(source: str, file: str) -> list[Site]:
    """Every message site of one module."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    sites: list[Site] = []
    seen: set[int] = set()
    for node, function in _walk(tree):
        message: ast.AST | None = None
        lazy_args: list[ast.expr] = []
        kind = ""
        if isinstance(node, ast.Assert) and node.msg is not None:
            message, kind = node.msg, "assert"
        else:
            call: ast.Call | None = None
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                call, kind = node.exc, "raise " + _call_name(node.exc.func)
            elif isinstance(node, ast.Call):
                name = _call_name(node.func)
                if isinstance(node.func, ast.Attribute) and name in LOG_METHODS:
                    call, kind = node, "log." + name
                elif name in ERROR_RESPONSE_CALLS:
                    call, kind = node, name
                elif name.endswith(("Error", "Exception")):
                    call, kind = node, "raise " + name  # `err = ValueError(...)` built, then raised
            if call is None or id(call) in seen or not call.args:
                continue
            seen.add(id(call))
            message = next((a for a in call.args if not _is_status(a)), None)
            if kind.startswith("log."):
                lazy_args = list(call.args[1:])
        if message is None:
            continue
        renderer = Renderer(function, node.lineno)
        parts = renderer.render(message)
        if parts is not None and lazy_args:
            parts = renderer.percent(parts, lazy_args, 0)
        if parts is None:
            continue
        severity = (
            "warning" if kind in ("log.warning", "log.warn", "log.warning_once") else "info" if kind.startswith("log.info") else "error"
        )
        sites.append(Site(file, node.lineno, getattr(function, "name", "<module>"), kind, parts, severity))
    return sites


def _is_status(node: ast.AST) -> bool:
    """HTTPStatus.BAD_REQUEST and friends, which come before the message in create_error_response."""
    text = ast.unparse(node)
    return text.startswith("HTTPStatus.") or (isinstance(node, ast.Constant) and isinstance(node.value, int))


def display(parts: Parts) -> str:
    """One-line form for matching families and for review: fields as {expr}, choices as [a|b]."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Field):
            out.append("{" + part.expr + "}")
        else:
            assert isinstance(part, Choice)
            out.append("[" + "|".join(display(option) for option in part.options) + "]")
    return "".join(out)

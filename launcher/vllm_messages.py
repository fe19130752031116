"""Every vLLM message vllm-launch recognises, across releases, in one place.

The catalog `launcher/data/vllm_messages.json` is generated from vLLM's own source, every minor release 0.2 to 0.33
(`tools/vllm_messages/extract.py`): each message's regex with named fields, its kind, and the first and last release
that emits it. Request-time errors (budget doctor, `check --probe`) and start-up failures (`serve`'s diagnosis,
`explain`) are matched against it; the catalog is read and compiled on first use only.

Texts are read the way users paste them: any whitespace between words (line breaks, CRLF, double spaces), thousands
separators, JSON or Python-repr wrapping with escaped quotes, HTML entities, ANSI colours, and per-line log prefixes
(`(APIServer pid=1)`, `[rank1]:`, Ray's `(pid=1, ip=10.0.0.1)`, docker compose's `vllm-1  | `).
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

CATALOG = Path(__file__).with_name("data") / "vllm_messages.json"

# Kinds that only say that something failed (the specific cause is elsewhere in the log).
GENERIC_KINDS = frozenset({"engine_init_failed", "engine_dead", "worker_died"})


@dataclass(frozen=True, eq=False)  # hashed by identity: compiled once per entry
class Entry:
    """One catalogued message: a vLLM message site (or an OS/PyTorch/Hub message vLLM passes on)."""

    id: str
    kind: str
    phase: str  # "request", "startup", "runtime" or "fact" (a log line that carries sizes)
    severity: str  # "error", "warning" or "info"
    pattern: str
    fields: dict[str, str]  # field name -> "int", "float", "word", "text"
    first: str | None  # first and last vLLM release (of those catalogued) that emits it; None: not vLLM's own text
    last: str | None
    source: str  # "vllm/config/model.py:2020" in the last release, or where an external message comes from
    anchor: str  # a lower-case word every match contains (cheap pre-check)
    flags: int = 0
    span: int = 0  # how many catalogued releases emit it (ties between phrasings go to the longer-lived one)

    @property
    def releases(self) -> str:
        if self.first is None:
            return self.source
        span = self.first if self.first == self.last else f"{self.first} to {self.last}"
        return f"vLLM {span} ({self.source})"


@functools.cache
def entries() -> tuple[Entry, ...]:
    data = json.loads(CATALOG.read_text())
    out = []
    for e in data["messages"]:
        source = f"{e['file']}:{e['line']}"
        out.append(
            Entry(
                e["id"],
                e["kind"],
                e["phase"],
                e["severity"],
                e["pattern"],
                e["fields"],
                e["first"],
                e["last"],
                source,
                e["anchor"],
                0,
                len(e["releases"]),
            )
        )
    for e in data["external"]:
        flags = re.I if "i" in e.get("flags", "") else 0
        out.append(Entry(e["id"], e["kind"], e["phase"], "error", e["pattern"], e["fields"], None, None, e["origin"], e["anchor"], flags))
    return tuple(out)


@functools.cache
def _compiled(entry: Entry) -> re.Pattern[str]:
    return re.compile(entry.pattern, entry.flags)


@dataclass(frozen=True)
class Match:
    kind: str
    fields: dict[str, str]  # the named groups that matched, as printed
    text: str
    entry: Entry | None = None
    start: int = 0

    def number(self, name: str) -> int | None:
        """An integer field (`4,096` and `2048.0` read as 4096 and 2048); None when absent or not a number."""
        value = self.value(name)
        return int(value) if value is not None else None

    def value(self, name: str) -> float | None:
        raw = self.fields.get(name)
        if raw is None:
            return None
        try:
            value = float(raw.replace(",", "").replace("_", ""))
        except ValueError:
            return None
        return value if value == value and abs(value) != float("inf") else None

    @property
    def phase(self) -> str:
        return self.entry.phase if self.entry else ""


# ------------------------------------------------------------------------------------------------ reading ------------
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|(?<![\w\]])\[(?:\d{1,3};)*\d{1,3}m")
_ESCAPED = re.compile(r"\\+(?:r\\+n|n|r|t)|\\+([\"'])|\\+u([0-9a-fA-F]{4})")
_LINE_PREFIX = re.compile(
    r"^(?:\s*(?:"
    r"\[rank\d+\]:"  # torchrun
    r"|\((?:[\w.\-]+\s+)?pid=\d+(?:,\s*ip=[^)]*)?\)"  # (APIServer pid=1), (EngineCore_DP0 pid=1), Ray's (pid=1, ip=...)
    r"|[\w.\-]+\s+\|(?=\s)"  # docker compose: "vllm-1  | "
    r"|\|(?=\s)"  # CI column
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?"  # kubectl --timestamps
    r"|(?:INFO|WARNING|ERROR|DEBUG|CRITICAL)\s+\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?\s+(?:\[[^\]]*\]|[\w.]+:\d+\])"  # vLLM logger
    r"))+\s?",
    re.M,
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def normalise(text: str) -> str:
    """The text as vLLM printed it, from however it was pasted."""
    text = _ANSI.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    for _ in range(3):  # JSON inside JSON inside a log line: undo each level
        if "\\" not in text:
            break
        text = _ESCAPED.sub(_unescape, text)
    text = text.translate(_QUOTES).replace("\r\n", "\n").replace("\r", "\n")
    return _LINE_PREFIX.sub("", _unwrap(text))


_NEW_RECORD = re.compile(r"^(?:\s|\(|\[|\d{4}-|INFO|WARNING|ERROR|DEBUG|CRITICAL|Traceback|File |[A-Z]\w*(?:Error|Exception)\b)")


def _unwrap(text: str) -> str:
    """Undo a terminal's hard wrap: lines cut at the same width (mid-word) continue on lines that start no new record."""
    lines = text.split("\n")
    widths = [len(line) for line in lines if len(line) >= 60]
    width = max(set(widths), key=widths.count) if widths else 0
    if not width or widths.count(width) < 2:
        return text
    out = [lines[0]]
    for prev, line in zip(lines, lines[1:], strict=False):
        if len(prev) == width and line and not _NEW_RECORD.match(line):
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _unescape(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1)
    if m.group(2):
        return chr(int(m.group(2), 16))
    return " "


# ------------------------------------------------------------------------------------------------ matching -----------
def find_all(text: str) -> list[Match]:
    """Every known message in `text` (an error body, a log line or a whole log), the most telling first: specific errors
    before generic ones ("Engine core initialization failed"), errors before the log lines that only carry sizes, and
    earlier before later. Where several catalogued phrasings match at one place, the one that explains most of it wins."""
    clean = normalise(text)
    lowered = clean.lower()
    best: dict[int, tuple[int, int, int, Match]] = {}  # start -> (length, numbers, releases, match)
    for entry in entries():
        if entry.anchor and entry.anchor not in lowered:
            continue
        for m in _compiled(entry).finditer(clean):
            found = Match(entry.kind, {k: v for k, v in m.groupdict().items() if v is not None}, m.group(0), entry, m.start())
            numeric = sum(1 for k in found.fields if entry.fields.get(k) in ("int", "float"))
            score = (m.end() - m.start(), numeric, entry.span)
            if m.start() not in best or score > best[m.start()][:3]:
                best[m.start()] = (*score, found)
    matches = sorted((item[3] for item in best.values()), key=lambda f: (_rank(f), f.start))
    seen, out = set(), []
    for found in matches:  # the same message repeated by every rank or retry counts once
        key = (found.kind, tuple(sorted(found.fields.items())))
        if key not in seen:
            seen.add(key)
            out.append(found)
    return out


def _rank(found: Match) -> int:
    if found.phase == "fact":
        return 3
    if found.kind in GENERIC_KINDS:
        return 2
    return 0 if found.entry is None or found.entry.severity == "error" or found.phase == "request" else 1


def find(text: str) -> Match | None:
    """The message that best explains `text`."""
    matches = find_all(text)
    return matches[0] if matches else None


# ------------------------------------------------------------------------------------------------ start-up progress --
# Start-up progress, in order (0.32 log texts; older texts where they differ).
PHASES: list[tuple[str, re.Pattern[str]]] = [
    ("checking config", re.compile(r"Using max model len|non-default args")),
    ("starting engine", re.compile(r"Initializing a V1 LLM engine")),
    ("loading weights", re.compile(r"Loading weights|Starting to load model|Loading safetensors|Model loading took")),
    (
        "profiling memory",
        re.compile(r"Memory profiling|Available KV cache memory|Auto set \(|Explicitly set \(|determine_available_memory"),
    ),
    ("KV cache allocated", re.compile(r"KV cache size: [\d,]+ tokens|# GPU blocks")),
    ("compiling / capturing graphs", re.compile(r"torch\.compile takes|Compiling a graph|Capturing CUDA graph|Capturing cudagraph")),
    ("engine ready", re.compile(r"init engine \(profile, create kv cache, warmup model\) took")),
    ("API server up", re.compile(r"Starting vLLM server on|Application startup complete|Uvicorn running on")),
]
KV_SIZE = re.compile(r"KV cache size: ([\d,]+) tokens")
CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")


def phase_of(line: str) -> int | None:
    """Index into PHASES of the start-up step this line announces."""
    for index, (_, pattern) in enumerate(PHASES):
        if pattern.search(line):
            return index
    return None


# ------------------------------------------------------------------------------------------------ the port -----------
_PORT_HINTS = [
    re.compile(r"bind on address \('[^']*', (\d+)\)"),
    re.compile(r"--port[= ](\d+)"),
    re.compile(r"'port': (\d+)"),
    re.compile(r"\bport=(\d+)"),
    re.compile(r"(?:Starting vLLM (?:API )?server on|Uvicorn running on) https?://[^\s:/]+:(\d+)"),
]
# Binds that are not the API port: an ephemeral port for the internal rendezvous, or torch.distributed's store.
INTERNAL_PORT = re.compile(r"get_open_port|bind\(\(\"\",\s*0\)\)|TCPStore|_create_c10d_store|MASTER_PORT|EADDRINUSE")


@dataclass(frozen=True)
class PortFacts:
    port: int | None  # the API port that is taken, when the text names it
    internal: bool  # the bind that failed is vLLM's / torch's internal one, not --port
    holder: str | None = None  # "psutil.Process(pid=..., name=...)" when vLLM logged who holds it


def port_facts(text: str) -> PortFacts:
    """Which port a "address already in use" text is about: named by the message, an internal one, or a flag in the log."""
    clean = normalise(text)
    for found in find_all(clean):
        if found.kind == "port_in_use_by":
            return PortFacts(found.number("port"), False, found.fields.get("process"))
        if found.kind == "address_in_use" and found.number("port") is not None:
            return PortFacts(found.number("port"), False)
    if INTERNAL_PORT.search(clean):
        return PortFacts(None, True)
    for hint in _PORT_HINTS:
        m = hint.search(clean)
        if m and int(m.group(1)) > 0:
            return PortFacts(int(m.group(1)), False)
    return PortFacts(None, False)

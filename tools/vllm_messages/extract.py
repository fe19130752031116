"""Generate launcher/data/vllm_messages.json: every vLLM message vllm-launch explains, from vLLM's own source, every release.

For each release (the last patch of every minor release, 0.2 to 0.33) the script reads `vllm/**/*.py`, finds the message
sites with `ast` (raise / error response / logger / assert; `sites.py`), keeps the sites of the families in `families.py`,
turns each f-string into a regex with named fields, and merges identical messages across releases (first and last release
that emit it, file and line in each).

Sources: `--src DIR` holds `vllm-<version>/vllm/...` trees (the layout /work/wt/fetch_vllm_src.sh writes); a release that is
not there is downloaded from PyPI (`pip download vllm==X --no-deps`, the wheel read as a zip, nothing installed) into
`--cache`. Only that download needs the network.

    python tools/vllm_messages/extract.py --src /work/vllm-src               # regenerate the catalog
    python tools/vllm_messages/extract.py --src /work/vllm-src --review      # also list unclaimed candidate messages
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from families import COMMON_FIELDS, EXTERNAL, FAMILIES, FIELD_TYPES, TYPE_REGEX, Family  # noqa: E402
from sites import Choice, Field, Parts, Site, display, find_sites  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "launcher" / "data" / "vllm_messages.json"

# The last patch release of every minor release on PyPI (https://pypi.org/project/vllm/#history).
RELEASES = [
    "0.2.7", "0.3.3", "0.4.3", "0.5.5", "0.6.6.post1", "0.7.3", "0.8.5.post1", "0.9.2", "0.10.2", "0.11.2", "0.12.0",
    "0.13.0", "0.14.1", "0.15.1", "0.16.0", "0.17.1", "0.18.1", "0.19.1", "0.20.2", "0.21.0", "0.22.1", "0.23.0",
    "0.24.0", "0.25.1", "0.26.0", "0.27.1", "0.28.0", "0.29.0", "0.30.0", "0.31.0", "0.32.0", "0.33.0",
]  # fmt: skip

# A module is parsed only if its text has the longest word of some family's message (`--full-scan` checks it loses nothing).
HINT = re.compile("|".join(sorted({max(re.findall(r"[A-Za-z_]{4,}", f.shape), key=len) for f in FAMILIES})))
SKIP = re.compile(r"(^|/)(tests?|benchmarks|third_party|examples)/")


# ------------------------------------------------------------------------------------------------------- sources -----
def release_files(version: str, src: Path | None, cache: Path) -> Iterator[tuple[str, str]]:
    """(path under the package root, text) of every vllm/**/*.py of one release."""
    tree = src / f"vllm-{version}" if src else None
    if tree and (tree / "vllm").is_dir():
        for path in sorted((tree / "vllm").rglob("*.py")):
            yield str(path.relative_to(tree)), path.read_text(errors="replace")
        return
    wheel = download(version, cache)
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith("vllm/") and name.endswith(".py"):
                yield name, io.TextIOWrapper(zf.open(name), errors="replace").read()


def download(version: str, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"vllm-{version}-*.whl"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", f"vllm=={version}", "-d", tmp]
        subprocess.run(cmd, check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        return wheel.rename(cache / wheel.name)


def cached_sites(text: str, file: str, digest: str, cache: Path) -> list[Site]:
    """Sites of one module, cached on disk by its content and by this tool's parser (re-runs take seconds)."""
    parser = hashlib.sha1(Path(__file__).with_name("sites.py").read_bytes()).hexdigest()[:12]
    path = cache / "sites" / parser / f"{digest}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    sites = find_sites(text, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(sites))
    return sites


# ------------------------------------------------------------------------------------------------------- families ----
class Unmapped(Exception):
    pass


def canonical(expr: str, family: Family) -> str:
    for pattern, name in [*family.fields, *COMMON_FIELDS]:
        if re.fullmatch(pattern, expr):
            return name
    raise Unmapped(expr)


def canonical_parts(parts: Parts, family: Family) -> list:
    """Parts with each Field replaced by {"f": canonical name} and each Choice by {"c": [...], "name": ...}."""
    out: list = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Field):
            out.append({"f": canonical(part.expr, family)})
        else:
            assert isinstance(part, Choice)
            options = [canonical_parts(option, family) for option in part.options]
            choice: dict = {"c": options}
            literal = [o for o in options if all(isinstance(p, str) for p in o)]
            if len(literal) == len(options):
                for text, name in family.choices.items():
                    if any(text in "".join(o) for o in options):
                        choice["name"] = name
            out.append(choice)
    return out


def variants(parts: Parts, limit: int = 16) -> list[Parts]:
    """A message whose pieces differ by branch (`msg = a if x else b`, an optional sentence with its own numbers) as one
    message per branch; choices between plain words ("at least " or nothing) stay inside one pattern."""
    out: list[list[object]] = [[]]
    for part in parts:
        if isinstance(part, Choice) and any(_has_field(option) for option in part.options):
            out = [[*head, *option] for head in out for option in part.options][:limit]
        else:
            out = [[*head, part] for head in out]
    return [tuple(v) for v in out]


def _has_field(parts: Parts) -> bool:
    return any(isinstance(p, Field) or (isinstance(p, Choice) and any(_has_field(o) for o in p.options)) for p in parts)


def claim(site: Site) -> Family | None:
    text = display(site.parts)
    for family in FAMILIES:
        if family.files and not re.search(family.files, site.file):
            continue
        if family.matcher().search(text):
            return family
    return None


# ------------------------------------------------------------------------------------------------------- patterns ----
# Characters users lose when they copy or re-wrap a message (markdown eats backticks; people drop brackets and commas).
OPTIONAL_CHARS = {"`": r"`?", ",": r",?", "(": r"\(?", ")": r"\)?"}


def literal_regex(text: str, at_start: bool, at_end: bool) -> str:
    """Whitespace-tolerant literal: any whitespace run between words; backticks, commas and brackets optional."""
    out = []
    for i, piece in enumerate(re.split(r"(\s+)", text)):
        if i % 2:
            out.append(r"\s+")
        else:
            out.append("".join(OPTIONAL_CHARS.get(ch) or re.escape(ch) for ch in piece))
    regex = "".join(out)
    if regex.startswith(r"\s+"):
        regex = r"\s*" + regex[3:] if not at_start else regex[3:]
    if regex.endswith(r"\s+"):
        regex = regex[:-3] + (r"\s*" if not at_end else "")
    return regex


def _first_literal(parts: list) -> str | None:
    for part in parts:
        if isinstance(part, str):
            return part
        if "c" in part:
            options = [o for o in part["c"] if o]
            return _first_literal(options[0]) if options else None
        return None
    return None


class PatternBuilder:
    def __init__(self, family: Family, template: list) -> None:
        self.family = family
        self.used: set[str] = set()
        self.next_literal: dict[int, str | None] = {}
        self._index(template, None)

    def _index(self, parts: list, after: str | None) -> None:
        """For each free-text field, the literal that follows it (it stops there, or at the end of the line)."""
        for i, part in enumerate(parts):
            if isinstance(part, str):
                continue
            following = _first_literal(parts[i + 1 :]) if i + 1 < len(parts) else after
            if "f" in part:
                self.next_literal[id(part)] = following
            else:
                for option in part["c"]:
                    self._index(option, following)

    def field(self, part: dict) -> str:
        name = part["f"]
        value = self.family.field_regex.get(name) or TYPE_REGEX[FIELD_TYPES[name]]
        if FIELD_TYPES[name] == "text":
            following = self.next_literal.get(id(part))
            words = following.split()[:2] if following else []
            stop = r"\s*" + r"\s+".join(re.escape(w) for w in words) if words else None  # exactly, brackets included
            # up to the words that follow it, the end of the line, or the end of a quoted body
            value = r"[^\n\"]*?(?=" + (stop + "|" if stop else "") + r"\n|\"|$)"
        if name in self.used:
            return f"(?:{value})"
        self.used.add(name)
        return f"(?P<{name}>{value})"

    def parts(self, parts: list, at_start: bool, at_end: bool) -> str:
        out = []
        for i, part in enumerate(parts):
            first, last = at_start and i == 0, at_end and i == len(parts) - 1
            if isinstance(part, str):
                out.append(literal_regex(part, first, last))
            elif "f" in part:
                out.append(self.field(part))
            else:
                options = [self.parts(option, False, False) for option in part["c"]]
                if part.get("name") and part["name"] not in self.used:
                    self.used.add(part["name"])
                    nonempty = [o for o in options if o]
                    out.append(f"(?P<{part['name']}>{'|'.join(nonempty)})" + ("?" if len(nonempty) < len(options) else ""))
                else:
                    out.append("(?:" + "|".join(options) + ")")
        return "".join(out)


def _chunks(text: str) -> list[str]:
    """A literal in pieces of a few words, each ending at punctuation or after four words (with its leading space)."""
    words = re.findall(r"\s*\S+|\s+$", text)
    out: list[str] = []
    count = 0
    for word in words:
        if out and count < 4 and not re.search(r"[.,;:)!?]$", out[-1]):
            out[-1] += word
            count += 1
        else:
            out.append(word)
            count = 1
    return out


MIN_REQUIRED_TEXT = 20  # characters of the message's own words every match must contain


def build_pattern(parts: list, family: Family) -> tuple[str, str]:
    """Regex of one message. Only the start is required: the text up to the first field, the field and the words after
    it (for a message without fields, its first sentence). The rest is optional, a few words at a time, so a text cut
    off by the user's paste or an issue title still matches with every field it shows. Also returns the anchor: the longest
    word of the required literal text (lower-cased), which every match contains (a cheap pre-check before the regex)."""
    builder = PatternBuilder(family, parts)
    items: list[str] = []
    is_field: list[bool] = []
    literal: list[str] = []  # each item's literal text ("" for fields and choices)
    for i, part in enumerate(parts):
        if not isinstance(part, str):
            items.append(builder.parts([part], False, False))
            is_field.append(True)
            literal.append("")
            continue
        chunks = _chunks(part)
        for j, chunk in enumerate(chunks):
            first = i == 0 and j == 0
            last = i == len(parts) - 1 and j == len(chunks) - 1
            regex = literal_regex(chunk, at_start=first, at_end=last)
            if j > 0 and regex.startswith(r"\s*"):  # a space between two words of the same literal is not optional
                regex = r"\s+" + regex[3:]
            items.append(regex)
            is_field.append(False)
            literal.append(chunk)
    sentence_ends = [k for k, part in enumerate(items) if not is_field[k] and part.endswith(r"\.")]
    first_sentence = max(sentence_ends[0] + 1 if sentence_ends else len(items), min(3, len(items)))
    if any(is_field) and is_field.index(True) < first_sentence:
        first_field = is_field.index(True)
        required = first_field + 1 + (first_field + 1 < len(items) and not is_field[first_field + 1])
    else:  # no field in the first sentence: that sentence is the start every match needs
        required = first_sentence
    while required < len(items) and len("".join(literal[:required]).strip()) < MIN_REQUIRED_TEXT:
        required += 1  # "max_tokens=" alone is in every SamplingParams log line: require words that only the error has
    pattern = "".join(items[:required])
    tail = ""
    for regex in reversed(items[required:]):
        tail = f"(?:{regex}{tail})?"
    words = re.findall(r"(?<![\w`])[A-Za-z][A-Za-z_]{3,}(?![\w`])", " ".join(literal[:required]))
    return pattern + tail, max(words, key=len).lower() if words else ""


# ------------------------------------------------------------------------------------------------------- catalog -----
def extract(src: Path | None, cache: Path, releases: list[str], full_scan: bool, review: bool) -> dict:
    entries: dict[tuple[str, str], dict] = {}
    unclaimed: dict[str, tuple[str, str, int]] = {}
    errors: list[str] = []
    memo: dict[tuple[str, int], list[Site]] = {}
    for version in releases:
        count = 0
        for file, text in release_files(version, src, cache):
            if SKIP.search(file) or (not full_scan and not HINT.search(text)):
                continue
            key = (file, hashlib.sha1(text.encode()).hexdigest())
            if key not in memo:
                memo[key] = cached_sites(text, file, key[1], cache)
            for site in (replace(s, parts=v) for s in memo[key] for v in variants(s.parts)):
                family = claim(site)
                if family is None:
                    if review and HINT.search(display(site.parts)):
                        unclaimed.setdefault(display(site.parts), (version, site.file, site.line))
                    continue
                try:
                    parts = canonical_parts(site.parts, family)
                except Unmapped as exc:
                    errors.append(
                        f"{version} {site.file}:{site.line} {family.kind}: no canonical name for {{{exc}}} in {display(site.parts)!r}"
                    )
                    continue
                pattern, anchor = build_pattern(parts, family)
                entry = entries.setdefault(
                    (family.kind, pattern),
                    {
                        "kind": family.kind,
                        "phase": family.phase,
                        "severity": site.severity,
                        "template": parts,
                        "pattern": pattern,
                        "anchor": anchor,
                        "fields": {},
                        "releases": [],
                        "sources": {},
                    },
                )
                if version not in entry["releases"]:
                    entry["releases"].append(version)
                    entry["sources"][version] = f"{site.file}:{site.line}"
                count += 1
        print(f"vLLM {version}: {count} message sites", file=sys.stderr)
    if errors:
        raise SystemExit("unmapped placeholders (add them to families.py):\n" + "\n".join(sorted(set(errors))))
    if review:
        for text, (version, file, line) in sorted(unclaimed.items(), key=lambda kv: kv[1]):
            print(f"unclaimed [{version}] {file}:{line}: {text[:240]!r}", file=sys.stderr)
    messages = []
    for entry in entries.values():
        names = re.findall(r"\(\?P<(\w+)>", entry["pattern"])
        entry["fields"] = {n: FIELD_TYPES.get(n, "word") for n in names}
        values = {n: entry_values(entry["kind"], n) for n in names}
        entry["values"] = {n: v for n, v in values.items() if v}
        first, last = entry["releases"][0], entry["releases"][-1]
        entry.update(first=first, last=last, file=entry["sources"][last].split(":")[0], line=int(entry["sources"][last].split(":")[1]))
        messages.append(entry)
    order = {f.kind: i for i, f in enumerate(FAMILIES)}
    messages.sort(key=lambda e: (order[e["kind"]], RELEASES.index(e["first"]) if e["first"] in RELEASES else 0, e["pattern"]))
    for i, entry in enumerate(messages):
        entry["id"] = f"{entry['kind']}#{sum(1 for e in messages[:i] if e['kind'] == entry['kind']) + 1}"
    external = [{**e, "id": f"{e['kind']}#ext{i + 1}", "first": None, "last": None} for i, e in enumerate(EXTERNAL)]
    return {
        "about": "vLLM messages vllm-launch explains, generated by tools/vllm_messages/extract.py from vLLM's own source; do not edit.",
        "releases": releases,
        "field_types": FIELD_TYPES,
        "messages": [reorder(e) for e in messages],
        "external": external,
    }


def entry_values(kind: str, name: str) -> list[str]:
    """The values a field with a fixed vocabulary can take (the test renders samples from them)."""
    for family in FAMILIES:
        if family.kind == kind and name in family.field_regex:
            return family.field_regex[name].split("|")
    return []


def reorder(entry: dict) -> dict:
    keys = [
        "id",
        "kind",
        "phase",
        "severity",
        "first",
        "last",
        "file",
        "line",
        "anchor",
        "fields",
        "values",
        "pattern",
        "template",
        "releases",
        "sources",
    ]
    return {k: entry[k] for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, help="directory with vllm-<version>/vllm/ trees (e.g. /work/vllm-src)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "vllm-launch" / "vllm-wheels", help="wheel download cache")
    parser.add_argument("--releases", nargs="*", default=RELEASES)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--full-scan", action="store_true", help="parse every module, not only those with a hint word")
    parser.add_argument("--review", action="store_true", help="list candidate messages no family claims")
    args = parser.parse_args()
    catalog = extract(args.src, args.cache, args.releases, args.full_scan, args.review)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(
        f"{len(catalog['messages'])} messages from {len(args.releases)} releases (+{len(catalog['external'])} external) -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

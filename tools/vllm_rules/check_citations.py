"""Check every citation in launcher/sizing/versions.py TABLE against the releases' extracted source.

A citation reads "<release> <file>:<function>:<line> ..." (also "<file>:<line>" or "<file>:<function>"); for each
one this checks that the file exists in /work/vllm-src/vllm-<release>/ and, when given, that the line lies inside
a definition of that function (or, for a bare line, that the line exists). Several citations may be joined by ";".

    .venv/bin/python tools/vllm_rules/check_citations.py [--src-root /work/vllm-src]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from launcher.sizing.versions import TABLE  # noqa: E402

CITATION = re.compile(r"(\d+\.\d+\.\d+(?:\.post\d+)?) (vllm/[\w/{},.]+\.py)(?::([\w.]+))?(?::(\d+)(?:-\d+)?)?")


def check(text: str, root: Path) -> list[str]:
    problems = []
    for release, path, func, line in CITATION.findall(text):
        if "{" in path:
            continue  # a set of files ("models/{a,b}.py"), not checkable line by line
        file = root / f"vllm-{release}" / path
        if not file.is_file():
            problems.append(f"{release} {path}: no such file")
            continue
        if not func and not line:
            continue
        source = file.read_text()
        if func and func.isdigit():
            func, line = "", func
        if func:
            name = func.split(".")[-1]
            spans = [
                (n.lineno, n.end_lineno or n.lineno)
                for n in ast.walk(ast.parse(source))
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
            ]
            if not spans:
                problems.append(f"{release} {path}: no function {func}")
            elif line and not any(a <= int(line) <= b for a, b in spans):
                problems.append(f"{release} {path}:{func}:{line}: line outside {func} {spans}")
        elif line and int(line) > len(source.splitlines()):
            problems.append(f"{release} {path}:{line}: past the end of the file")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src-root", type=Path, default=Path("/work/vllm-src"))
    args = parser.parse_args()
    count, bad = 0, 0
    for rule, history in TABLE.items():
        for since in history:
            count += len(CITATION.findall(since.source))
            for problem in check(since.source, args.src_root):
                bad += 1
                print(f"{rule} (since {since.release}): {problem}")
    print(f"{count} citations checked, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

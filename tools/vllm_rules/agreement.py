"""Print, per release, how many golden cases the engine matches exactly, and the differences.

.venv/bin/python tools/vllm_rules/agreement.py [-v]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as golden_cases  # noqa: E402


def main() -> int:
    verbose = "-v" in sys.argv
    tables = sorted(
        (golden_cases.ROOT / "tests" / "data" / "golden_kv").glob("*.json"), key=lambda p: [int(x) for x in p.stem.split(".")[:3]]
    )
    total = agreed = 0
    for path in tables:
        table = json.loads(path.read_text())
        rows = [(case["name"], golden_cases.compare(table, case)) for case in table["cases"] if "vllm" in case]
        refused = [case["name"] for case in table["cases"] if "vllm" not in case]
        ok = sum(1 for _, diffs in rows if not diffs)
        total, agreed = total + len(rows), agreed + ok
        note = f"  (not modelled, refused with a clear error: {', '.join(refused)})" if refused else ""
        print(f"{table['release']:<12} {ok:>3}/{len(rows):<3} exact{note}")
        for name, diffs in rows:
            if diffs and verbose:
                print(f"    {name}: {'; '.join(diffs)}")
    print(f"all releases: {agreed}/{total}")
    return 0 if agreed == total else 1


if __name__ == "__main__":
    sys.exit(main())

"""The engine, with each release's rules, against that release's own KV-cache code (golden tables).

tests/data/golden_kv/<release>.json holds, per case, the model config, the requirements, the layer specs the engine
built for vLLM, and what the release's code answered (tools/vllm_rules/golden.py writes them; the release, the
wheel and every stub are recorded in each file). This test re-plans every case and asks for exact agreement:
blocks, KV tokens as logged, maximum concurrency, fit or not, the estimated maximum length, the number of groups.
It also checks that the engine still builds the same inputs, so a table never silently goes stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools" / "vllm_rules"))

import cases as golden_cases  # noqa: E402

from launcher.sizing.versions import RELEASES  # noqa: E402

TABLES = sorted((ROOT / "tests" / "data" / "golden_kv").glob("*.json"), key=lambda p: tuple(int(x) for x in p.stem.split(".")[:3]))
ENTRIES = [(path, case["name"]) for path in TABLES for case in json.loads(path.read_text())["cases"]]


def _load(path: Path, name: str) -> tuple[dict, dict]:
    table = json.loads(path.read_text())
    return table, next(c for c in table["cases"] if c["name"] == name)


def test_every_release_has_a_table() -> None:
    assert {p.stem for p in TABLES} == set(RELEASES.values())


def test_tables_record_their_origin() -> None:
    for path in TABLES:
        table = json.loads(path.read_text())
        assert table["release"] == path.stem
        assert table["produced_by"].startswith(f"vLLM {path.stem}'s own code")
        assert "stubs" in table and table["cases"]


@pytest.mark.parametrize(("path", "name"), ENTRIES, ids=[f"{p.stem}-{n}" for p, n in ENTRIES])
def test_engine_matches_release(path: Path, name: str) -> None:
    table, case = _load(path, name)
    assert golden_cases.compare(table, case) == []

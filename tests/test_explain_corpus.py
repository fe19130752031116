"""`explain` on real vLLM errors users posted (tests/data/error_corpus.json: text, source URL, the numbers a correct
answer states). Every text is recognised and answered with its numbers, the same whichever way it is given."""

import io
import json
import sys
from pathlib import Path

import pytest

from launcher import cli
from launcher.budget.explain import explain

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from explain_corpus import KINDS, flags_for, judge  # noqa: E402

CORPUS = json.loads((Path(__file__).parent / "data" / "error_corpus.json").read_text())["entries"]
IDS = [e["id"] for e in CORPUS]


def cli_flags(entry: dict) -> list[str]:
    out = []
    for key, value in flags_for(entry).items():
        out += ["--" + key.replace("_", "-"), str(value)]
    return out


def run(argv: list[str], capsys, stdin: str | None = None) -> tuple[int, str]:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin) if stdin is not None else old
    try:
        rc = cli.main(argv)
    finally:
        sys.stdin = old
    return rc, capsys.readouterr().out


def test_corpus_is_real_and_large_enough():
    assert len(CORPUS) >= 60
    assert all(e["source_url"].startswith("https://") and e["text"].strip() for e in CORPUS)
    assert {e["family"] for e in CORPUS} == {"request", "startup"}


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_recognised_and_answered_with_the_numbers(entry):
    recognised, answered, misses, e = judge(entry)
    assert recognised, f"recognised as {e.kind!r}, expected one of {KINDS.get(entry['kind'])}"
    assert answered, misses


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_argument_stdin_and_file_give_the_same_answer(entry, capsys, tmp_path):
    flags = [*cli_flags(entry), "--json"]
    log = tmp_path / "vllm.log"
    log.write_text(entry["text"])
    by_argument = run(["explain", entry["text"], *flags], capsys)
    by_stdin = run(["explain", *flags], capsys, stdin=entry["text"])
    by_file = run(["explain", str(log), *flags], capsys)
    assert by_argument[0] == 0 and json.loads(by_argument[1])["recognised"]
    assert by_argument == by_stdin == by_file


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_line_breaks_and_no_exception_prefix_change_nothing(entry):
    flags = flags_for(entry)
    plain = explain(entry["text"], **flags)
    head, dot, tail = entry["text"].rpartition(". ")  # a line break where a sentence ends, as log viewers wrap it
    text = head + ".\n" + tail if dot else entry["text"]
    rewrapped = explain(text.removeprefix("ValueError: "), **flags)  # pasted without the exception's name
    assert (rewrapped.kind, rewrapped.numbers) == (plain.kind, plain.numbers)

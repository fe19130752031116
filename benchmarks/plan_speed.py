"""Wall time of `vllm-launch plan` on a local model directory, next to `python -c pass` (median of N runs).

Target: median under 0.3 s on the 2-core CI machines. Run: python benchmarks/plan_speed.py [N]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATALOG = Path(__file__).resolve().parent.parent / "launcher" / "data" / "catalog.json"


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    entry = json.loads(CATALOG.read_text())["meta-llama/Llama-3.1-8B-Instruct"]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "llama"
        model.mkdir()
        (model / "config.json").write_text(json.dumps(entry["config"]))
        (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": entry["weights_bytes"]}}))
        baseline = median_wall([sys.executable, "-c", "pass"], runs)
        for label, extra in (("text", []), ("json", ["--json"])):
            plan = median_wall(
                [
                    sys.executable,
                    "-m",
                    "launcher",
                    "plan",
                    "--model",
                    str(model),
                    "--gpu",
                    "H100-80GB",
                    "--prompt",
                    "30000",
                    "--completion",
                    "27000",
                    *extra,
                ],
                runs,
            )
            print(f"vllm-launch plan ({label}): median {plan:.3f} s over {runs} runs")
        print(f"python -c pass:           median {baseline:.3f} s")
        floor = median_wall([sys.executable, "-c", "import pydantic_settings"], runs)
        print(f"import pydantic_settings: median {floor:.3f} s (the settings library alone)")
    layout_timing(runs)
    return 0


def layout_timing(runs: int) -> None:
    """The layout search in process (every TP x PP x DP of an 8-GPU node; every preset up to 8 GPUs each), and the
    command that prints it. Target: well under a second for ranking a node and every preset."""
    sys.path.insert(0, str(CATALOG.parent.parent.parent))
    from launcher.hardware import GPU_PRESETS, inventory_from_preset
    from launcher.model.config import spec_from_config
    from launcher.sizing import layouts
    from launcher.sizing.plan import AUTO, Requirements

    catalog = json.loads(CATALOG.read_text())
    node = inventory_from_preset("H100-80GB", 8)
    presets = [inventory_from_preset(name, 8) for name in GPU_PRESETS]

    def every_preset(spec, req):
        return [layouts.search(spec, inv, req, layouts.Fixed(), exact=True) for inv in presets]

    for repo in ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-32B-Instruct", "openai/gpt-oss-20b", "deepseek-ai/DeepSeek-V2-Lite"):
        entry = catalog[repo]
        spec = spec_from_config(entry["config"], repo, weights_bytes=entry["weights_bytes"], weights_source="catalog")
        for label, req in (
            ("20k+8k", Requirements(prompt=20000, completion=8000, min_concurrency=16)),
            ("auto", Requirements(max_model_len=AUTO, min_concurrency=16)),
        ):
            count = len(layouts.search(spec, node, req, layouts.Fixed()))
            one = median_call(runs, layouts.search, spec, node, req, layouts.Fixed())
            every = median_call(max(3, runs // 3), every_preset, spec, req)
            print(
                f"layouts {repo} {label}: 8 x H100 ({count} layouts) median {one * 1000:.0f} ms; "
                f"all {len(presets)} presets x up to 8 GPUs median {every * 1000:.0f} ms"
            )
    os.environ["HF_HUB_OFFLINE"] = "1"  # the built-in catalog answers: no network wait in the timing
    base = [sys.executable, "-m", "launcher", "plan", "--model", "Qwen/Qwen2.5-32B-Instruct", "--prompt", "20000", "--completion", "8000"]
    for label, extra in (("--gpu H100-80GB --gpus 8", ["--gpu", "H100-80GB", "--gpus", "8"]), ("--gpu all", ["--gpu", "all"])):
        wall = median_wall([*base, *extra, "--min-concurrency", "16", "--json"], runs)
        print(f"vllm-launch plan {label} --min-concurrency 16 --json: median {wall:.3f} s (process start and imports included)")


def median_call(runs: int, fn, *args) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())

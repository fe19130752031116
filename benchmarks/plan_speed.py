"""Wall time of `vllm-launch plan` on a local model directory, next to `python -c pass` (median of N runs).

Target: median under 0.3 s on the 2-core CI machines. Run: python benchmarks/plan_speed.py [N]
"""

from __future__ import annotations

import json
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
    return 0


if __name__ == "__main__":
    sys.exit(main())

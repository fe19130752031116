"""Wall time of `vllm-launch --help`, `plan` on a local model directory and `plan` on a catalog model offline, next to
`python -c pass` (median of N runs each, interleaved so that a busy machine slows all of them alike). The CPU time
(user + system) of the same runs is shown too: on a machine shared with other work it moves less than wall time.

Targets on the 2-core CI machines: --help under 0.1 s, both plans under 0.3 s.
Run: python benchmarks/plan_speed.py [N]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATALOG = Path(__file__).resolve().parent.parent / "launcher" / "data" / "catalog.json"
TARGETS = {"--help": 0.1, "plan --help": 0.1, "plan (local)": 0.3, "plan (catalog, offline)": 0.3, "plan --json (local)": 0.3}


def launcher() -> list[str]:
    """The installed console script when there is one (what users run), else `python -m launcher`."""
    script = Path(sys.executable).parent / "vllm-launch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "launcher"]


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    entry = json.loads(CATALOG.read_text())["meta-llama/Llama-3.1-8B-Instruct"]
    sizes = ["--gpu", "H100-80GB", "--prompt", "30000", "--completion", "27000"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LAUNCH_")}
    env["HF_HUB_OFFLINE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "llama"
        model.mkdir()
        (model / "config.json").write_text(json.dumps(entry["config"]))
        (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": entry["weights_bytes"]}}))
        env["HF_HOME"] = str(Path(tmp) / "hf")  # an empty HF cache: the catalog answers
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [*launcher(), "--help"],
            "plan --help": [*launcher(), "plan", "--help"],
            "plan (local)": [*launcher(), "plan", "--model", str(model), *sizes],
            "plan --json (local)": [*launcher(), "plan", "--model", str(model), *sizes, "--json"],
            "plan (catalog, offline)": [*launcher(), "plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", *sizes],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
                times[name].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                if result.returncode not in (0, 1):
                    raise SystemExit(f"{name} failed: {result.stderr.decode()[-2000:]}")
    load = os.getloadavg()[0]
    print(f"median wall time over {runs} runs (load average {load:.1f} on {os.cpu_count()} CPUs):")
    baseline = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  target < {target:.1f} s: {'met' if median < target else 'MISSED'}"
        print(
            f"  {name:<26} {median:6.3f} s  (+{median - baseline:.3f} s over python -c pass; CPU {statistics.median(cpu[name]):.3f} s)"
            + verdict
        )
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


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_call(runs: int, fn, *args) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())

"""Busy-GPU check on a real NVIDIA GPU (run it on a GPU machine with torch; not part of the test suite).

1. NVML against CUDA: vllm-launch's total (NVML total - reserved) equals cudaMemGetInfo's total, and its free memory
   (NVML free - vLLM's own CUDA context) equals what a fresh CUDA context reports as free.
2. Another process holds memory: `plan` reports vLLM's free-memory check failing, names the pid, and offers the largest
   --gpu-memory-utilization free memory allows; a fresh CUDA context confirms that value passes vLLM's check
   (ceil(total x u) <= free) and u + 0.01 does not. `serve --dry-run` says the same and starts nothing.
3. Another process holds almost everything: `plan` says how many GiB must be freed, and by whom.
Prints one line per check and writes the raw outputs to $OUT (or the current directory).
Run: HF_HUB_OFFLINE=1 python benchmarks/gpu_busy_check.py
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

GiB = 1 << 30
MODEL = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "32768"]
OUT = Path(os.environ.get("OUT", "."))
PROBE = "import torch, json; torch.cuda.init(); f, t = torch.cuda.mem_get_info(); print(json.dumps([f, t]))"
HOLD = (
    "import sys, time, torch; x = torch.empty(int(sys.argv[1]), dtype=torch.uint8, device='cuda'); "
    "print('held', flush=True); time.sleep(900)"
)


def launcher(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, timeout=120)


def cuda_view() -> tuple[int, int]:
    free, total = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout)
    return free, total


def hold(nbytes: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(nbytes)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    time.sleep(1)
    return proc


def report(name: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return ok


def main() -> int:
    results = []
    gpus = json.loads(launcher("gpus", "--json").stdout)
    (OUT / "gpus-idle.json").write_text(json.dumps(gpus, indent=2))
    g = gpus["gpus"][0]
    free_cuda, total_cuda = cuda_view()
    results.append(
        report("CUDA total", g["total_bytes"] == total_cuda, f"NVML-derived {g['total_bytes']:,} vs cudaMemGetInfo {total_cuda:,}")
    )
    diff = g["free_for_vllm_bytes"] - free_cuda
    results.append(
        report(
            "free after vLLM's context",
            abs(diff) < 64 << 20,
            f"predicted {g['free_for_vllm_bytes']:,} vs CUDA {free_cuda:,} ({diff / 2**20:+.0f} MiB)",
        )
    )

    for held_gib, expect in ((60, "lower utilization"), (int(total_cuda / GiB) - 14, "memory to free")):
        holder = hold(held_gib * GiB)
        try:
            free_now, _ = cuda_view()
            out = launcher("plan", *MODEL, "--json")
            (OUT / f"plan-held-{held_gib}.json").write_text(out.stdout + out.stderr)
            plan = json.loads(out.stdout)
            problem = next((p for p in plan["problems"] if "Free memory on device" in p), "")
            results.append(report(f"{held_gib} GiB held: free-memory problem names pid", f"pid {holder.pid}" in problem, problem[:160]))
            if expect == "lower utilization":
                remedy = next((r for r in plan["remedies"] if r["title"].startswith("--gpu-memory-utilization")), None)
                u = float(remedy["vllm_args"][1]) if remedy else 0.0
                passes = math.ceil(total_cuda * u) <= free_now
                next_fails = math.ceil(total_cuda * (u + 0.01)) > free_now
                results.append(
                    report("offered utilization passes vLLM's check", bool(remedy) and passes, f"u={u} free={free_now / GiB:.2f} GiB")
                )
                results.append(report("u + 0.01 would not pass (it is the largest)", next_fails, f"ceil(total x {u + 0.01:.2f})"))
                fitted = launcher("plan", *MODEL, "--gpu-memory-utilization", f"{u:g}", "--json")
                results.append(report("re-planned at that utilization fits", fitted.returncode == 0, remedy["detail"] if remedy else ""))
                dry = launcher("serve", *MODEL, "--dry-run")
                (OUT / "serve-dry-run.txt").write_text(dry.stdout + dry.stderr)
                results.append(
                    report(
                        "serve --dry-run refuses and offers it", dry.returncode == 1 and f"--gpu-memory-utilization {u:g}" in dry.stdout, ""
                    )
                )
            else:
                remedy = next((r for r in plan["remedies"] if r["title"].startswith("free ")), None)
                results.append(
                    report(
                        "says how much to free, and who holds it",
                        bool(remedy) and f"pid {holder.pid}" in remedy["detail"],
                        remedy["title"] if remedy else out.stdout[-300:],
                    )
                )
        finally:
            holder.kill()
            holder.wait()
    print(f"\n{sum(results)}/{len(results)} checks passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

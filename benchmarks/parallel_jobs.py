"""The train stage with its jobs one at a time vs on worker processes, on real MNIST: wall time,
the speed-up as a ratio within this run, and the peak memory of the whole process tree.

Each measurement runs `bnlab train <experiment>` against a scratch MLflow store (so no job is
restored from an earlier run: every job trains), with BNLAB_WORKERS set. Peak memory is the
largest sum of the stage's and its workers' PSS (proportional set size: shared libraries counted
once across the processes), sampled every 0.2 s. The outputs are the same bytes as DVC's (the
pipeline is deterministic), so `dvc status` stays clean.

    python benchmarks/parallel_jobs.py [--experiment notebook] [--workers 1 2] [--repeat 3]   # after `make run`
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def tree_pss(process: psutil.Process) -> int:
    """Bytes of PSS of a process and its children (RSS where PSS cannot be read)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            info = member.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(experiment: str, workers: int) -> tuple[float, int]:
    """Wall seconds and peak PSS bytes of one train stage."""
    scratch = Path(tempfile.mkdtemp(prefix="bnlab-bench-"))
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{scratch / 'mlflow.db'}", BNLAB_WORKERS=str(workers))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started = time.perf_counter()
    stage = subprocess.Popen(["bnlab", "train", experiment], env=env, stdout=subprocess.DEVNULL)
    watched, peak = psutil.Process(stage.pid), 0
    while stage.poll() is None:
        peak = max(peak, tree_pss(watched))
        time.sleep(0.2)
    if stage.returncode != 0:
        raise SystemExit(f"bnlab train {experiment} failed with BNLAB_WORKERS={workers}")
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each round measures every worker count")
    args = parser.parse_args()
    results: dict[int, list[tuple[float, int]]] = {workers: [] for workers in args.workers}
    for round_ in range(args.repeat):  # alternating: a slow spell of the machine hits every count
        for workers in args.workers:
            seconds, peak = measure(args.experiment, workers)
            results[workers].append((seconds, peak))
            print(f"round {round_ + 1}: {workers} worker(s): {seconds:6.1f} s, peak {peak / 2**30:.2f} GiB", flush=True)
    base = args.workers[0]
    print(f"\ntrain@{args.experiment}; machine: {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}; {args.repeat} rounds")
    print(f"| workers | wall s (median) | wall s (best) | speed-up vs {base} (median of the rounds' ratios) "
          f"| peak memory, largest of the rounds (PSS) |\n|---|---|---|---|---|")
    for workers, runs in results.items():
        walls = [seconds for seconds, _ in runs]
        ratios = [b[0] / r[0] for b, r in zip(results[base], runs)]
        peak = max(peak for _, peak in runs)
        print(f"| {workers} | {statistics.median(walls):.1f} | {min(walls):.1f} | {statistics.median(ratios):.2f}x "
              f"| {peak / 2**30:.2f} GiB = {peak / 1e9:.2f} GB |")


if __name__ == "__main__":
    main()

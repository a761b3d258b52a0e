"""The train stage with its jobs one at a time vs on worker processes, on real MNIST: wall time,
the speed-up as a ratio within this run, and the peak memory of the whole process tree.

Each measurement runs `bnlab train <experiment>` against a scratch MLflow store (so no job is
restored from an earlier run: every job trains), with BNLAB_WORKERS set. Peak memory is the
largest sum of the stage's and its workers' PSS (proportional set size: shared libraries counted
once across the processes), sampled every 0.2 s. The outputs are the same bytes as DVC's (the
pipeline is deterministic), so `dvc status` stays clean.

    python benchmarks/parallel_jobs.py [--experiment notebook] [--workers 1 2]   # after `make run`
"""

from __future__ import annotations

import argparse
import os
import platform
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
    args = parser.parse_args()
    results = {}
    for workers in args.workers:
        results[workers] = measure(args.experiment, workers)
        seconds, peak = results[workers]
        print(f"{workers} worker(s): {seconds:6.1f} s, peak {peak / 2**30:.2f} GiB", flush=True)
    base = results[args.workers[0]][0]
    print(f"\ntrain@{args.experiment}; machine: {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}")
    print(f"| workers | wall s | speed-up vs {args.workers[0]} | peak memory (PSS, GiB) |\n|---|---|---|---|")
    for workers, (seconds, peak) in results.items():
        print(f"| {workers} | {seconds:.1f} | {base / seconds:.2f}x | {peak / 2**30:.2f} |")


if __name__ == "__main__":
    main()

"""The default experiment's train stage at an earlier commit against this tree, both with the
same workers, from an empty MLflow store and an empty XLA program cache, alternating.

    python benchmarks/train_speedup.py --against 6105c61 [--experiment notebook] [--workers 2] [--repeat 2]
    # after `make run` (the prepared splits); the earlier commit must train with this venv's packages

The earlier commit is checked out in a git worktree (removed afterwards) and run with its own
source first on PYTHONPATH; both read this tree's data/prepared. The speed-up is the median of
the rounds' ratios: a slow spell of the machine hits both arms of a round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
from alternating import ROOT, earlier_tree, machine, scratch_store
from parallel_jobs import tree_pss


def train_stage(tree: Path, experiment: str, workers: int, watch_memory: bool = False) -> tuple[float, int]:
    """Wall seconds (and peak PSS bytes, when watched) of ``bnlab train`` run from ``tree``."""
    scratch, store = scratch_store("bnlab-speedup-")
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=store,
        BNLAB_WORKERS=str(workers),
        BNLAB_XLA_CACHE=str(scratch / "xla-cache"),
        PYTHONPATH=str(tree / "src"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    started = time.perf_counter()
    stage = subprocess.Popen(
        [sys.executable, "-m", "bnlab.pipeline.stages.train", experiment], cwd=tree, env=env, stdout=subprocess.DEVNULL
    )
    peak = 0
    while watch_memory and stage.poll() is None:
        peak = max(peak, tree_pss(psutil.Process(stage.pid)))
        time.sleep(0.2)
    if stage.wait() != 0:
        raise SystemExit(f"bnlab train {experiment} failed in {tree}")
    wall = time.perf_counter() - started
    shutil.rmtree(scratch)
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with earlier_tree(args.against) as earlier:
        walls: dict[str, list[float]] = {"earlier": [], "this tree": []}
        for round_ in range(args.repeat):
            for arm, tree in (("earlier", earlier), ("this tree", ROOT)):
                walls[arm].append(train_stage(tree, args.experiment, args.workers)[0])
                print(f"round {round_ + 1}: {arm:9s} {walls[arm][-1]:6.1f} s", flush=True)
        peak = train_stage(ROOT, args.experiment, args.workers, watch_memory=True)[1]
    ratios = [old / new for old, new in zip(walls["earlier"], walls["this tree"])]
    print(f"\ntrain@{args.experiment}, {args.workers} worker(s); {machine()}")
    print(f"| {args.against} s (median) | this tree s (median) | speed-up (median of rounds; least-most) |")
    print("|---|---|---|")
    print(
        f"| {statistics.median(walls['earlier']):.1f} | {statistics.median(walls['this tree']):.1f} | "
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
    print(f"peak memory of this tree's stage (PSS, a separate run): {peak / 1e9:.2f} GB")


if __name__ == "__main__":
    main()

"""The default experiment's train stage at an earlier commit against this tree, both with the
same workers, from an empty MLflow store and an empty XLA program cache, alternating.

    python benchmarks/train_speedup.py --against 6105c61 [--experiment notebook] [--workers 2] [--repeat 2]
    # after `make run` (the prepared splits); the earlier commit must train with this venv's packages

The earlier commit is checked out in a git worktree (removed afterwards) and run with its own
source first on PYTHONPATH; both read this tree's data/prepared. The speed-up is the median of
the rounds' ratios: a slow spell of the machine hits both arms of a round. With 1 worker the
jobs run in the stage's own process, and the script reports its CPU seconds, split into user and
kernel ("sys") time; with more, the workers' are not counted (their forkserver reaps them, and
the stage never waits for it), so none are reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
from alternating import ROOT, earlier_tree, machine, print_speedup, remove_scratch, scratch_store
from parallel_jobs import tree_pss


def train_stage(tree: Path, experiment: str, workers: int, watch_memory: bool = False) -> tuple[float, int, dict]:
    """Wall seconds, peak PSS bytes (when watched) and user and sys CPU seconds of ``bnlab
    train`` run from ``tree``."""
    scratch, store = scratch_store("bnlab-speedup-")
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=store,
        BNLAB_WORKERS=str(workers),
        BNLAB_XLA_CACHE=str(scratch / "xla-cache"),
        PYTHONPATH=str(tree / "src"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    stage = subprocess.Popen(
        [sys.executable, "-m", "bnlab.pipeline.stages.train", experiment], cwd=tree, env=env, stdout=subprocess.DEVNULL
    )
    peak = 0
    while watch_memory and stage.poll() is None:
        peak = max(peak, tree_pss(psutil.Process(stage.pid)))
        time.sleep(0.2)
    if stage.wait() != 0:
        raise SystemExit(f"bnlab train {experiment} failed in {tree}")
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    remove_scratch(scratch)
    return wall, peak, {"user": after.ru_utime - cpu.ru_utime, "sys": after.ru_stime - cpu.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with earlier_tree(args.against) as earlier:
        walls: dict[str, list[float]] = {"earlier": [], "this tree": []}
        cpus: dict[str, list[dict]] = {"earlier": [], "this tree": []}
        for round_ in range(args.repeat):
            for arm, tree in (("earlier", earlier), ("this tree", ROOT)):
                wall, _, cpu = train_stage(tree, args.experiment, args.workers)
                walls[arm].append(wall)
                cpus[arm].append(cpu)
                print(
                    f"round {round_ + 1}: {arm:9s} {wall:6.1f} s (user {cpu['user']:.1f} s, sys {cpu['sys']:.1f} s)",
                    flush=True,
                )
        peaks = {
            arm: train_stage(tree, args.experiment, args.workers, watch_memory=True)[1]
            for arm, tree in (("earlier", earlier), ("this tree", ROOT))
        }
    print(f"\ntrain@{args.experiment}, {args.workers} worker(s); {machine()}")
    # with workers, their CPU time is not the stage's (the module's docstring)
    print_speedup(args.against, walls, cpus if args.workers == 1 else None)
    print(
        f"peak memory (PSS, a separate run each): {args.against} {peaks['earlier'] / 1e9:.2f} GB, "
        f"this tree {peaks['this tree'] / 1e9:.2f} GB"
    )


if __name__ == "__main__":
    main()

"""A train stage of many tiny jobs, the kind the tests run, at an earlier commit against this
tree, alternating: the project of tests/test_why_experiments.py (1,200 images, networks of 8
units, one epoch), each run from an empty MLflow store, both arms with one warm XLA program
cache, so that what is timed is each job's fixed cost (its run, its logging, its tracing, its
clean-up) rather than compiling.

    python benchmarks/tiny_jobs.py --against HEAD [--experiment small_batches] [--workers 1] [--repeat 3]

The earlier commit is checked out in a git worktree and run with its own source first on
PYTHONPATH. With 1 worker the jobs run in the stage's own process and its CPU seconds are
reported; with more, the workers' are not counted (benchmarks/train_speedup.py says why).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alternating import ROOT, earlier_tree, machine, print_speedup, remove_scratch

sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers and project
from test_why_experiments import why_project  # noqa: E402

from helpers import run  # noqa: E402

RUN_FOLDERS = ("mlartifacts", "models")  # what a run leaves in the project, besides mlflow.db


def train_stage(tree: Path, project: Path, experiment: str, workers: int, cache: Path) -> tuple[float, dict]:
    """Wall seconds and the stage's user and sys CPU seconds of the train stage run from ``tree``
    in ``project``, from an empty store."""
    for name in RUN_FOLDERS:
        shutil.rmtree(project / name, ignore_errors=True)
    (project / "mlflow.db").unlink(missing_ok=True)
    env = dict(
        os.environ,
        BNLAB_WORKERS=str(workers),
        BNLAB_XLA_CACHE=str(cache),
        PYTHONPATH=str(tree / "src"),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "bnlab.pipeline.stages.train", experiment]
    if subprocess.run(command, cwd=project, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        raise SystemExit(f"bnlab train {experiment} failed with the code of {tree}")
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, {"user": after.ru_utime - cpu.ru_utime, "sys": after.ru_stime - cpu.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--experiment", default="small_batches")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bnlab-tiny-jobs-"))
    try:
        project = why_project(scratch / "proj")
        run(["dvc", "repro", "split"], project)  # with this venv's commands on PATH
        with earlier_tree(args.against) as earlier:
            arms = {"earlier": earlier, "this tree": ROOT}
            for tree in arms.values():  # not timed: fills the program cache both arms read
                train_stage(tree, project, args.experiment, args.workers, scratch / "xla-cache")
            walls: dict[str, list[float]] = {arm: [] for arm in arms}
            cpus: dict[str, list[dict]] = {arm: [] for arm in arms}
            for round_ in range(args.repeat):
                for arm, tree in arms.items():
                    wall, cpu = train_stage(tree, project, args.experiment, args.workers, scratch / "xla-cache")
                    walls[arm].append(wall)
                    cpus[arm].append(cpu)
                    print(f"round {round_ + 1}: {arm:9s} {wall:6.1f} s (user {cpu['user']:.1f} s)", flush=True)
    finally:
        remove_scratch(scratch)
    print(f"\ntrain@{args.experiment} on tiny data, {args.workers} worker(s); {machine()}")
    print_speedup(args.against, walls, cpus if args.workers == 1 else None)


if __name__ == "__main__":
    main()

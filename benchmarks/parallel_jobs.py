"""The train stage with its jobs one at a time vs on worker processes, on real MNIST: wall time,
the speed-up as a ratio within this run, and the peak memory of the whole process tree.

Each measurement runs `bnlab train <experiment>` against a scratch MLflow store (so no job is
restored from an earlier run: every job trains) and an empty XLA program cache, with
BNLAB_WORKERS set. Wall times come from
runs that nobody watches; peak memory from separate runs, as reading a process's memory costs
CPU (about 0.09 s a reading of the whole tree, some 30% of a core at 0.2 s intervals: taken from
the workers, it cut the measured speed-up from ~1.9x to ~1.7x). Peak memory is the largest sum
of the stage's and its workers' PSS (proportional set size: shared pages counted once across the
processes), sampled every 0.2 s. PSS splits a page shared with any other process, so measure on
an otherwise idle machine (another TensorFlow process halves the libraries' share). The outputs
are the same bytes as DVC's (the pipeline is deterministic), so `dvc status` stays clean.

Where a timed stage's wall time goes, from its job runs' own start and end times in the scratch
store (MLflow's, in ms; the worker is the run's ``bnlab.pid`` tag): the start-up before the first
job run opens, the span while job runs are open, the tail after the last one ends, and within
the span each worker's share of time with no job run open (between jobs, and waiting at the end).

    python benchmarks/parallel_jobs.py [--experiment notebook] [--workers 1 2] [--repeat 3] [--memory-rounds 1]
    # after `make run`; --warm-program-cache: every round reads one XLA program cache, filled first
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from alternating import machine, remove_scratch, scratch_store

from bnlab.tracking.runs import PARENT_RUN_ID, PID_TAG, PROVENANCE_TAG, TRAINED


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


def breakdown(store: Path, started: float, ended: float, workers: int) -> dict[str, float]:
    """Seconds of one stage (epoch ``started`` .. ``ended``): start-up, span of the job runs,
    tail, and the workers' idle seconds within the span (summed over workers)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    trained = client.search_runs(experiments, f"tags.`{PROVENANCE_TAG}` = '{TRAINED}'", max_results=10_000)
    runs = [r for r in trained if PARENT_RUN_ID in r.data.tags]  # the jobs' runs, not the stage's parent run
    opened = min(r.info.start_time for r in runs) / 1000
    closed = max(r.info.end_time for r in runs) / 1000
    busy: dict[str, float] = {}
    for r in runs:
        pid = r.data.tags.get(PID_TAG, "?")
        busy[pid] = busy.get(pid, 0.0) + (r.info.end_time - r.info.start_time) / 1000
    span = closed - opened
    return {
        "start_up": opened - started,
        "span": span,
        "tail": ended - closed,
        "idle": workers * span - sum(busy.values()),
        "jobs": len(runs),
    }


def measure(
    experiment: str, workers: int, watch_memory: bool, program_cache: Path | None = None
) -> tuple[float, int, dict]:
    """Wall seconds, (when watched) peak PSS bytes and the :func:`breakdown` of one train stage;
    ``program_cache``: the XLA program cache to use, else an empty one."""
    scratch, store = scratch_store("bnlab-bench-")
    env = dict(os.environ, MLFLOW_TRACKING_URI=store, BNLAB_WORKERS=str(workers))
    # By default a machine that has compiled nothing yet: an empty XLA program cache too (bnlab.ml.xla_cache)
    env["BNLAB_XLA_CACHE"] = str(program_cache or scratch / "xla-cache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    started, epoch_started = time.perf_counter(), time.time()
    stage = subprocess.Popen(["bnlab", "train", experiment], env=env, stdout=subprocess.DEVNULL)
    watched, peak = psutil.Process(stage.pid), 0
    while watch_memory and stage.poll() is None:
        peak = max(peak, tree_pss(watched))
        time.sleep(0.2)
    stage.wait()
    if stage.returncode != 0:
        raise SystemExit(f"bnlab train {experiment} failed with BNLAB_WORKERS={workers}")
    wall = time.perf_counter() - started
    split = breakdown(scratch / "mlflow.db", epoch_started, epoch_started + wall, workers)
    remove_scratch(scratch)
    return wall, peak, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds; each measures every worker count")
    parser.add_argument("--memory-rounds", type=int, default=1, help="rounds with memory watched, after the timed ones")
    parser.add_argument(
        "--warm-program-cache",
        action="store_true",
        help="every round reads one XLA program cache, filled by an untimed stage first (a machine that has "
        "compiled these configurations once); the store stays empty",
    )
    args = parser.parse_args()
    program_cache = None
    if args.warm_program_cache:
        program_cache = Path(tempfile.mkdtemp(prefix="bnlab-bench-programs-"))
        measure(args.experiment, max(args.workers), watch_memory=False, program_cache=program_cache)
    walls: dict[int, list[float]] = {workers: [] for workers in args.workers}
    parts: dict[int, list[dict]] = {workers: [] for workers in args.workers}
    peaks: dict[int, list[int]] = {workers: [] for workers in args.workers}
    for round_ in range(args.repeat):  # alternating: a slow spell of the machine hits every count
        for workers in args.workers:
            wall, _, split = measure(args.experiment, workers, watch_memory=False, program_cache=program_cache)
            walls[workers].append(wall)
            parts[workers].append(split)
            print(f"timed round {round_ + 1}: {workers} worker(s): {walls[workers][-1]:6.1f} s", flush=True)
    for round_ in range(args.memory_rounds):
        for workers in args.workers:
            peaks[workers].append(measure(args.experiment, workers, watch_memory=True, program_cache=program_cache)[1])
            print(
                f"memory round {round_ + 1}: {workers} worker(s): peak {peaks[workers][-1] / 2**30:.2f} GiB", flush=True
            )
    if program_cache:
        shutil.rmtree(program_cache)
    base = args.workers[0]
    cache = "one warm XLA program cache" if program_cache else "an empty XLA program cache each"
    print(
        f"\ntrain@{args.experiment}; {machine()}; {args.repeat} timed rounds, "
        f"{args.memory_rounds} memory round(s), {cache}"
    )
    print(
        f"| workers | wall s (median) | wall s (best) | speed-up vs {base} (median of the rounds' ratios) "
        f"| peak memory, largest of the rounds (PSS) |\n|---|---|---|---|---|"
    )
    for workers in args.workers:
        ratios = [b / w for b, w in zip(walls[base], walls[workers])]
        peak = max(peaks[workers], default=0)
        print(
            f"| {workers} | {statistics.median(walls[workers]):.1f} | {min(walls[workers]):.1f} "
            f"| {statistics.median(ratios):.2f}x | {peak / 2**30:.2f} GiB = {peak / 1e9:.2f} GB |"
        )
    print(
        "\nWhere the wall time goes (medians of the timed rounds, seconds)\n\n"
        "| workers | start-up | job runs' span | tail | workers' idle seconds in the span | job runs |\n"
        "|---|---|---|---|---|---|"
    )
    for workers in args.workers:
        median = {key: statistics.median(split[key] for split in parts[workers]) for key in parts[workers][0]}
        print(
            f"| {workers} | {median['start_up']:.1f} | {median['span']:.1f} | {median['tail']:.1f} "
            f"| {median['idle']:.1f} | {median['jobs']:.0f} |"
        )


if __name__ == "__main__":
    main()

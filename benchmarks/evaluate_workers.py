"""One experiment's evaluate stage on 1 worker against 2, alternating, each round on a fresh copy
of the project's MLflow store (so that every run finds the same runs) and the project's XLA
program cache as it is.

    python benchmarks/evaluate_workers.py [--experiment notebook] [--repeat 3]
    # after `make run` (or `make run-all` for another experiment): its models and runs

The stage writes eval/<experiment>/, the same bytes on every run (a test checks 1 against 2
workers), so `dvc status` stays clean. The speed-up is the median of the rounds' ratios.
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

from alternating import machine

ROOT = Path(__file__).resolve().parents[1]


def evaluate_stage(experiment: str, workers: int) -> float:
    """Wall seconds of ``bnlab evaluate`` on a copy of the project's store."""
    from bnlab.core.layout import STORE_DB

    scratch = Path(tempfile.mkdtemp(prefix="bnlab-evaluate-"))
    try:
        shutil.copy(ROOT / STORE_DB, scratch / STORE_DB)
        env = dict(
            os.environ,
            MLFLOW_TRACKING_URI=f"sqlite:///{scratch / STORE_DB}",
            BNLAB_WORKERS=str(workers),
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        started = time.perf_counter()
        command = [sys.executable, "-m", "bnlab.pipeline.stages.evaluate", experiment]
        subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine(), flush=True)
    ratios = []
    for round_ in range(1, args.repeat + 1):
        one, two = evaluate_stage(args.experiment, 1), evaluate_stage(args.experiment, 2)
        ratios.append(one / two)
        print(f"round {round_}: 1 worker {one:.1f} s, 2 workers {two:.1f} s, {one / two:.2f}x", flush=True)
    print(f"evaluate@{args.experiment}: 2 workers {statistics.median(ratios):.2f}x one (median of {len(ratios)})")


if __name__ == "__main__":
    main()

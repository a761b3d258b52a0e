"""Time per pipeline stage of one experiment on real MNIST, and the share of the run spent
outside model training.

Runs each stage's command in order (as `dvc repro --force` would), each in its own process,
against a scratch MLflow store, then reads each model's `fit_seconds` from that store. The
outputs are the same bytes as DVC's (the pipeline is deterministic), so `dvc status` stays clean.

    python benchmarks/pipeline_stages.py [--experiment notebook]   # after `make run`
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from alternating import scratch_store

STAGES = ["download", "split", "train", "evaluate", "report"]
PER_EXPERIMENT = {"train", "evaluate", "report"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="notebook")
    experiment = parser.parse_args().experiment
    scratch, store = scratch_store("bnlab-bench-")
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["BNLAB_WORKERS"] = "1"  # fits one after another, so that their seconds add up to the stage's
    seconds = {}
    for stage in STAGES:
        start = time.perf_counter()
        command = ["bnlab", stage, *([experiment] if stage in PER_EXPERIMENT else [])]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds[stage] = time.perf_counter() - start
        print(f"{stage:9s} {seconds[stage]:6.1f} s", flush=True)

    from mlflow import MlflowClient

    from bnlab.tracking.store import DEFAULT_MLFLOW_EXPERIMENT

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    store = client.get_experiment_by_name(DEFAULT_MLFLOW_EXPERIMENT)
    runs = client.search_runs([store.experiment_id], f"tags.variant != '' and tags.experiment = '{experiment}'")
    fit = sum(r.data.metrics["fit_seconds"] for r in runs)
    total = sum(seconds.values())
    print(f"\n{experiment}; machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| stage | s |\n|---|---|")
    for stage, value in seconds.items():
        print(f"| {stage} | {value:.1f} |")
    print(f"| **total** | **{total:.1f}** |")
    outside_stage = total - seconds["train"]
    print(f"\noutside the train stage: {outside_stage:.1f} s = {100 * outside_stage / total:.0f}% of the run")
    print(
        f"outside fit() ({len(runs)} models, per-epoch evaluation included, {fit:.1f} s): "
        f"{total - fit:.1f} s = {100 * (total - fit) / total:.0f}% of the run"
    )


if __name__ == "__main__":
    main()

"""What MLflow's system metrics cost a fit: the default experiment's BN network trained with and
without the monitor every training run has (bnlab.tracking.logged.system_metrics: a sample
every 0.5 s into a run of a SQLite store), as a ratio measured in the same run.

Each fit runs in a fresh process with a fresh store, alternating between the two so that a
noisy neighbour hurts both alike; the fit includes the per-epoch evaluation, as in the pipeline.

    python benchmarks/system_metrics.py [--repeats 3]   # needs `dvc repro split` first
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time

from alternating import alternate, machine


def child(monitored: bool) -> dict:
    from bnlab.core.layout import SPLITS, split_file
    from bnlab.data.splits import flat_pixels, load_split
    from bnlab.execution.training import make_estimator
    from bnlab.experiments.jobs import Job
    from bnlab.experiments.params import load_params
    from bnlab.tracking import logged
    from bnlab.tracking.runs import MlflowClient

    splits = {name: load_split(split_file(stem)) for stem, name in SPLITS.items()}
    estimator = make_estimator(load_params().experiment("notebook"), Job("notebook", "batchnorm", 0))
    (x, y), (x_val, y_val) = splits["train"], splits["validation"]
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/mlflow.db"
        client = MlflowClient(store)
        run_id = client.create_run(client.create_experiment("benchmark")).info.run_id
        recording = logged.system_metrics(store, run_id) if monitored else contextlib.nullcontext()
        start = time.perf_counter()
        with recording:
            estimator.fit(flat_pixels(x), y, validation_data=(flat_pixels(x_val), y_val))
        seconds = time.perf_counter() - start
        samples = len(client.get_metric_history(run_id, "system/cpu_utilization_percentage"))
    return {"seconds": seconds, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["plain", "monitored"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "monitored")))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/system_metrics.py: run `dvc repro split` first (needs data/prepared)")
    found = alternate(
        __file__, ["plain", "monitored"], args.repeats, lambda r: f"{r['seconds']:6.2f} s, {r['samples']} samples"
    )
    best = {k: min(r["seconds"] for r in v) for k, v in found.items()}
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in found.items()}
    samples = statistics.median(r["samples"] for r in found["monitored"])
    print(f"\n{machine()}")
    print("| fit, BN network, 10 epochs | s (best) | s (median) |\n|---|---|---|")
    print(f"| without system metrics | {best['plain']:.2f} | {median['plain']:.2f} |")
    print(f"| with system metrics ({samples:.0f} samples) | {best['monitored']:.2f} | {median['monitored']:.2f} |")
    print(
        f"\noverhead: {100 * (best['monitored'] / best['plain'] - 1):+.1f}% (best runs), "
        f"{100 * (median['monitored'] / median['plain'] - 1):+.1f}% (medians)"
    )


if __name__ == "__main__":
    main()

"""How far a whole run is from its arithmetic: each experiment's trained jobs' FLOPs beside the
worker-seconds they took, read from a run's MLflow store.

For every job a train stage trained (tag ``bnlab.provenance = trained``; a job restored from an
earlier run costs no arithmetic), the FLOPs of its dense layers' products, counted as
``fit_profile.py`` counts them: the optimizer steps, each epoch's evaluation of the measured
training rows and the validation split, BN's recomputed statistics, and the activation probes'
forward passes. The landscape, sharpness and gradient-at-initialization probes are not counted,
nor normalization, activations and the optimizer's update, so the floor is a lower bound. Its
time is those FLOPs at one core's AVX2 peak (``fit_profile.py``: 32 FLOP per cycle at the clock
/proc/cpuinfo gives), per job on one core as a worker runs it.

    python benchmarks/run_floor.py [--store mlflow.db] [--by-variant]   # in the clone that ran `make run-all`
"""

from __future__ import annotations

import argparse
import sqlite3
from collections import defaultdict
from pathlib import Path

from alternating import machine
from fit_profile import AVX2_FLOP_PER_CYCLE, clock_ghz, part_flops


def split_shapes() -> dict[str, int]:
    """Rows of each prepared split, and the images' pixels and classes (the data's own)."""
    import numpy as np

    from bnlab.core import layout
    from bnlab.data.splits import load_split

    splits = {name: load_split(layout.split_file(name)) for name in layout.SPLITS}
    x, y = splits["train"]
    return {
        **{name: len(labels) for name, (_, labels) in splits.items()},
        "pixels": x[0].size,
        "classes": len(np.unique(y)),
    }


def experiment_jobs(name: str, experiment) -> dict[str, object]:
    """Run name → job, comparison and selection jobs. A tuned learning rate changes no FLOP
    count, so any candidate stands for the chosen one."""
    from bnlab.experiments.jobs import jobs, selection_jobs

    selected = None
    if experiment.tune is not None:
        if set(experiment.tune.grid) != {"learning_rate"}:
            raise SystemExit(f"{name} tunes {sorted(experiment.tune.grid)}: count each chosen setting's FLOPs")
        first = tuple((key, values[0]) for key, values in experiment.tune.grid.items())
        selected = defaultdict(lambda: first)
    return {f"{name}/{job.name}": job for job in [*jobs(name, experiment, selected), *selection_jobs(name, experiment)]}


def job_flops(experiment, job, shapes: dict[str, int]) -> float:
    """The job's counted FLOPs (the module's docstring); ``shapes``: :func:`split_shapes`."""
    from bnlab.execution.training import make_estimator
    from bnlab.experiments.jobs import job_probes
    from bnlab.ml.hyperparams import batch_rows

    estimator = make_estimator(experiment, job)
    n_train = experiment.train_images or shapes["train"]
    batch = batch_rows(estimator.batch_size, n_train)
    steps = estimator.total_steps(n_train)
    epochs = -(-steps // -(-n_train // batch))
    rows = {**shapes, "train": n_train}
    parts = part_flops(
        job_probes(experiment, job), estimator, steps, epochs, batch, rows, (shapes["pixels"], shapes["classes"])
    )
    return sum(parts.values())


def trained_runs(store: Path) -> list[tuple[str, str, float]]:
    """(stage, run name, seconds) of every job run a train stage trained, each job's first
    (a later checkout's code may have trained it again)."""
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    found = connection.execute(
        """select stage.value, r.name, (r.end_time - r.start_time) / 1000.0 from runs r
           join tags stage on stage.run_uuid = r.run_uuid and stage.key = 'dvc_stage'
           join tags made on made.run_uuid = r.run_uuid and made.key = 'bnlab.provenance'
           where made.value = 'trained' and stage.value like 'train@%' and r.status = 'FINISHED'
           order by r.start_time"""
    ).fetchall()
    first = {}
    for stage, name, seconds in found:
        first.setdefault(name, (stage, name, seconds))
    return list(first.values())


def tally(store: Path, params, by_variant: bool) -> dict[str, list]:
    """Row label (`experiment`, or `experiment`: variant) → [jobs, FLOPs, selection's FLOPs,
    worker-seconds], in params.yaml's order of experiments and variants."""
    rows, shapes = {}, split_shapes()
    for name, experiment in params.experiments.items():
        for variant in experiment.variants if by_variant else [None]:
            rows[(name, variant)] = [0, 0.0, 0.0, 0.0]
    for stage, run_name, seconds in trained_runs(store):
        name = stage.removeprefix("train@")
        if not run_name.startswith(f"{name}/"):
            continue  # the stage's parent run, which trains nothing
        experiment = params.experiment(name)
        job = experiment_jobs(name, experiment)[run_name]
        flops = job_flops(experiment, job, shapes)
        row = rows[(name, job.variant if by_variant else None)]
        for column, value in enumerate((1, flops, flops if job.selection else 0.0, seconds)):
            row[column] += value
    return {f"`{name}`" + (f": {variant}" if variant else ""): row for (name, variant), row in rows.items() if row[0]}


def main() -> None:
    from bnlab.experiments.params import load_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("mlflow.db"))
    parser.add_argument("--by-variant", action="store_true", help="a row per experiment and variant")
    args = parser.parse_args()
    peak = AVX2_FLOP_PER_CYCLE * clock_ghz() * 1e9
    rows = tally(args.store, load_params(), args.by_variant)
    rows["**all**"] = list(map(sum, zip(*rows.values())))
    print(f"{machine()}; AVX2 peak of one core: {peak / 1e9:.1f} GFLOP/s\n")
    columns = ["experiment", "jobs trained", "TFLOP counted (selection's)", "floor, worker-min"]
    columns += ["measured, worker-min", "measured / floor"]
    print("| " + " | ".join(columns) + " |\n|---|" + "---:|" * (len(columns) - 1))
    for label, (jobs_, flops, selection, seconds) in rows.items():
        print(
            f"| {label} | {jobs_} | {flops / 1e12:.1f} ({selection / 1e12:.1f}) | {flops / peak / 60:.1f} "
            f"| {seconds / 60:.1f} | {seconds * peak / flops:.2f}x |"
        )


if __name__ == "__main__":
    main()

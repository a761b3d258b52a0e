"""What MLflow's classifier evaluation of one model costs, and how much of it is the confusion
matrix: the part of the evaluate stage that is MLflow's, not bnlab's.

Each round fits nothing: it calls ``bnlab.tracking.evaluation.evaluate_predictions`` (the
evaluate stage's call of ``mlflow.models.evaluate``: a nested evaluation run, the weighted and
per-class metrics, the normalized confusion matrix drawn and logged as a PNG) on 10,000 test
labels and predictions that are 95% right, into a scratch SQLite store, once to warm up and then
``--repeats`` times in the same process, as a worker evaluates model after model. The confusion
matrix's share is the time spent in MLflow's ``_log_confusion_matrix`` (its drawing, saving and
logging), timed by a wrapper. The count of models a full run evaluates comes from params.yaml:
every comparison job of every experiment (a selection's models are never tested).

    python benchmarks/mlflow_evaluation.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from alternating import machine

TEST_ROWS = 10_000


def models_in_a_full_run() -> int:
    from bnlab.experiments.params import load_params

    params = load_params()
    return sum(
        len(experiment.variants) * len(experiment.seeds) * len(experiment.grid_points())
        for experiment in params.experiments.values()
    )


def timed_confusion_matrix(spent: list[float]) -> None:
    """Wrap MLflow's confusion-matrix step so that each call's seconds land in ``spent``."""
    from mlflow.models.evaluation.evaluators.classifier import ClassifierEvaluator

    original = ClassifierEvaluator._log_confusion_matrix

    def wrapper(self):
        started = time.perf_counter()
        try:
            return original(self)
        finally:
            spent.append(time.perf_counter() - started)

    ClassifierEvaluator._log_confusion_matrix = wrapper


def measure(repeats: int) -> tuple[list[float], list[float]]:
    from bnlab.tracking.evaluation import evaluate_predictions
    from bnlab.tracking.runs import MlflowClient, mlflow

    spent: list[float] = []
    timed_confusion_matrix(spent)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, TEST_ROWS)
    predicted = np.where(rng.random(TEST_ROWS) < 0.95, labels, rng.integers(0, 10, TEST_ROWS))
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("evaluation", artifact_location=(Path(tmp) / "artifacts").as_uri())
        model_run = client.create_run(experiment_id, run_name="model").info.run_id
        client.set_terminated(model_run)
        walls = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            evaluate_predictions(
                client, experiment_id, model_run, labels, predicted, list(range(10)), "test.npz", {}, "digest"
            )
            walls.append(time.perf_counter() - started)
    return walls[1:], spent[1:]  # the first call warms up (imports, the store's first writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    walls, matrices = measure(args.repeats)
    per_model, matrix = statistics.median(walls), statistics.median(matrices)
    models = models_in_a_full_run()
    print(machine())
    print(f"per model: {per_model:.3f} s (median of {args.repeats}), of which the confusion matrix {matrix:.3f} s")
    print(
        f"a full run evaluates {models} models: {models * per_model / 60:.1f} CPU-minutes of MLflow's "
        f"evaluation, {models * matrix / 60:.1f} of them drawing confusion matrices "
        f"({math.ceil(models * matrix / 2 / 60)} min of wall time on 2 workers at most)"
    )


if __name__ == "__main__":
    main()

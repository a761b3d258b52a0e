"""MLflow's own classifier evaluation of a model's test-set predictions, into the model's run:
the weighted precision, recall and F1 (``precision_score``, ``recall_score``, ``f1_score``,
``accuracy_score``, ``example_count``), per-class precision, recall and F1
(``per_class_metrics.csv``) and the normalized confusion matrix (``confusion_matrix.png``),
the metrics also on the run's logged model (the UI's *Models* tab).

The predictions are given, not made again: they are the estimator's, which the served model
reproduces digit for digit (tests/test_serving.py). Without a model MLflow draws no ROC or PR
curve (it needs ``predict_proba`` of a scikit-learn flavour; the logged model is a pyfunc).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from bnlab.tracking.registry import logged_model_id
from bnlab.tracking.runs import MlflowClient, mlflow

TARGET, PREDICTION = "label", "prediction"
DATASET = "mnist-test-predictions"
METRICS = ("accuracy_score", "precision_score", "recall_score", "f1_score", "example_count")
ARTIFACTS = ("confusion_matrix.png", "per_class_metrics.csv")  # what MLflow's evaluator writes
# Evaluate's notes on what it inferred and how to set the active model: one set per model.
QUIET = ("mlflow.models.evaluation", "mlflow.tracking.fluent", "mlflow.data")


def evaluate_predictions(client: MlflowClient, run_id: str, labels: np.ndarray, predicted: np.ndarray,
                         classes: list[int], source: str) -> dict[str, float]:
    """``mlflow.models.evaluate`` (classifier) of ``predicted`` against ``labels`` in run
    ``run_id``, linked to the run's logged model if it has one; returns its metrics."""
    frame = pd.DataFrame({TARGET: np.asarray(labels, np.int64), PREDICTION: np.asarray(predicted, np.int64)})
    with quiet():
        dataset = mlflow.data.from_pandas(frame, source=source, targets=TARGET, predictions=PREDICTION, name=DATASET)
    model_id = logged_model_id(client, run_id)
    with active(client, run_id), quiet():
        result = mlflow.models.evaluate(data=dataset, model_type="classifier", model_id=model_id,
                                        evaluator_config={"label_list": classes, "log_model_explainability": False})
    return result.metrics


@contextmanager
def active(client: MlflowClient, run_id: str) -> Iterator[None]:
    """Run ``run_id`` as MLflow's active run for the block (evaluate logs only to the active
    run), then back to the status it had: the run belongs to the job that trained it, and an
    evaluation that fails must not mark the training FAILED (the stage fails instead)."""
    status = client.get_run(run_id).info.status
    mlflow.start_run(run_id=run_id, log_system_metrics=False)
    try:
        yield
    finally:
        mlflow.end_run(status)


@contextmanager
def quiet() -> Iterator[None]:
    loggers = {name: logging.getLogger(name) for name in QUIET}
    levels = {name: found.level for name, found in loggers.items()}
    for found in loggers.values():
        found.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "integer columns cannot represent missing values"
            yield
    finally:
        for name, found in loggers.items():
            found.setLevel(levels[name])

"""MLflow's own classifier evaluation of a model's test-set predictions: the weighted precision,
recall and F1 (``precision_score``, ``recall_score``, ``f1_score``, ``accuracy_score``,
``example_count``), per-class precision, recall and F1 (``per_class_metrics.csv``) and the
normalized confusion matrix (``confusion_matrix.png``), the metrics also on the model's logged
model (the UI's *Models* tab).

``mlflow.models.evaluate`` logs only to the active run, and making a finished training run
active would reopen it (RUNNING, a new end time; KILLED if evaluate died half-way). So each
evaluation is a run of its own, ``<job run name>/evaluation``, nested under the model's run
(tag ``bnlab.role=evaluation``) and linked to its logged model; its metrics are copied onto the
model's run with the client, which leaves that run's status and end time as they were.

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
from mlflow.entities import RunStatus

from bnlab.tracking.logged import log_metrics
from bnlab.tracking.registry import logged_model_id
from bnlab.tracking.runs import (
    EVALUATION_ROLE,
    MODEL_DIGEST_TAG,
    PARENT_RUN_ID,
    ROLE_TAG,
    MlflowClient,
    create_run,
    mlflow,
    run_lifecycle,
)

TARGET, PREDICTION = "label", "prediction"
DATASET = "mnist-test-predictions"
METRICS = ("accuracy_score", "precision_score", "recall_score", "f1_score", "example_count")
# Evaluate's notes on what it inferred and how to set the active model: one set per model.
QUIET = ("mlflow.models.evaluation", "mlflow.tracking.fluent", "mlflow.data")


def evaluation_run_name(model_run_name: str) -> str:
    return f"{model_run_name}/{EVALUATION_ROLE}"


def evaluate_predictions(
    client: MlflowClient,
    experiment_id: str,
    model_run_id: str,
    labels: np.ndarray,
    predicted: np.ndarray,
    classes: list[int],
    source: str,
    lineage: dict[str, str],
    digest: str,
) -> str:
    """``mlflow.models.evaluate`` (classifier) of ``predicted`` against ``labels`` in a new
    evaluation run under ``model_run_id``, linked to that run's logged model if it has one; its
    metrics copied onto the model's run. Returns the evaluation run's id.

    The evaluation run's tags: the parent, the stage's ``lineage``, the role and the model's
    ``digest``; not the model run's ``variant`` or ``seed``, as grouping the UI's runs table by
    either would then count each model twice, once for its run and once for its evaluation."""
    tags = {PARENT_RUN_ID: model_run_id, **lineage, MODEL_DIGEST_TAG: digest, ROLE_TAG: EVALUATION_ROLE}
    frame = pd.DataFrame({TARGET: np.asarray(labels, np.int64), PREDICTION: np.asarray(predicted, np.int64)})
    with quiet():
        dataset = mlflow.data.from_pandas(frame, source=source, targets=TARGET, predictions=PREDICTION, name=DATASET)
    model_id = logged_model_id(client, model_run_id)
    name = evaluation_run_name(client.get_run(model_run_id).info.run_name)
    created = create_run(client, experiment_id, name, tags)
    with run_lifecycle(client, created.info.run_id) as run_id:
        with active(run_id), quiet():
            result = mlflow.models.evaluate(
                data=dataset,
                model_type="classifier",
                model_id=model_id,
                evaluator_config={"label_list": classes, "log_model_explainability": False},
            )
        log_metrics(client, model_run_id, {k: v for k, v in result.metrics.items() if k in METRICS})
    return run_id


@contextmanager
def active(run_id: str) -> Iterator[None]:
    """Run ``run_id`` (this process's own, RUNNING) as MLflow's active run for the block, and
    still RUNNING after it: its end belongs to :func:`bnlab.tracking.runs.run_lifecycle`."""
    mlflow.start_run(run_id=run_id, log_system_metrics=False)
    try:
        yield
    finally:
        mlflow.end_run(RunStatus.to_string(RunStatus.RUNNING))


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

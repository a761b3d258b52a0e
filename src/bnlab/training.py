"""Train one (variant, seed) model as an MLflow child run; record a restored one likewise."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bnlab import mlflow_logging, tracking
from bnlab.config import Params
from bnlab.estimator import KerasMLPClassifier
from bnlab.model import digit_model
from bnlab.tf_runtime import runtime_settings

VARIANTS = {"batchnorm": True, "plain": False}
PIXEL_SCALE = 1 / 255  # inside the network, so the logged model takes raw pixel rows


def pairs(params: Params) -> list[tuple[str, int]]:
    """Every (variant, seed) the pipeline trains, in a fixed order."""
    return [(variant, seed) for seed in params.train.seeds for variant in VARIANTS]


def make_estimator(params: Params, variant: str, seed: int, callbacks=None) -> KerasMLPClassifier:
    t = params.train
    return KerasMLPClassifier(
        hidden_units=tuple(t.hidden_units), batch_norm=VARIANTS[variant], activation=t.activation,
        learning_rate=t.learning_rate, batch_size=t.batch_size, epochs=t.epochs,
        random_state=seed, optimizer=t.optimizer, bn_momentum=t.bn_momentum,
        rescale=PIXEL_SCALE, callbacks=callbacks,
    )


def flat_pixels(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def run_params(params: Params, estimator: KerasMLPClassifier, n_train: int, n_val: int) -> dict:
    """What MLflow shows in its params column: every estimator and data param."""
    est = {k: v for k, v in estimator.get_params().items() if k != "callbacks"}
    data = {**params.split.model_dump(), "n_train": n_train, "n_val": n_val}
    return {"model": est, "data": data}


def child_tags(variant: str, seed: int, parent_id: str, lineage: dict) -> dict:
    return {tracking.PARENT_RUN_ID: parent_id, "variant": variant, "seed": str(seed),
            **lineage, **{f"runtime.{k}": v for k, v in runtime_settings().items()}}


def train_model(client, experiment_id: str, parent_id: str, params: Params, variant: str,
                seed: int, splits: dict, sources: dict[str, str], lineage: dict) -> tuple[KerasMLPClassifier, str]:
    """Fit one model; its run gets params, tags, datasets, each epoch's metrics as the epoch
    ends, and the model. The run ends FINISHED, or FAILED/KILLED if anything stops it."""
    (x_train, y_train), (x_val, y_val) = splits["train"], splits["validation"]
    run = client.create_run(experiment_id, run_name=tracking.run_name(variant, seed),
                            tags=child_tags(variant, seed, parent_id, lineage))
    run_id = run.info.run_id
    with tracking.terminated_on_exit(client, run_id):
        estimator = make_estimator(params, variant, seed, callbacks=[mlflow_logging.EpochLogger(run_id)])
        mlflow_logging.log_params(client, run_id, run_params(params, estimator, len(y_train), len(y_val)))
        mlflow_logging.log_datasets(run_id, splits, sources)
        started = time.perf_counter()
        estimator.fit(flat_pixels(x_train), y_train, validation_data=(flat_pixels(x_val), y_val))
        mlflow_logging.log_metrics(client, run_id, {"fit_seconds": time.perf_counter() - started})
        estimator.set_params(callbacks=None)  # the logger belongs to this run, not the model
        mlflow_logging.log_keras_model(run_id, digit_model(estimator.model_), estimator.n_features_in_)
    return estimator, run_id


def record_restored_model(client, experiment_id: str, parent_id: str, params: Params, variant: str,
                          seed: int, estimator: KerasMLPClassifier, lineage: dict) -> str:
    """A model DVC restored from its cache has no run in this store (another machine, a fresh
    store): make one from what was saved with it, tagged ``restored=true``."""
    run = client.create_run(experiment_id, run_name=tracking.run_name(variant, seed),
                            tags={**child_tags(variant, seed, parent_id, lineage), "restored": "true"})
    run_id = run.info.run_id
    with tracking.terminated_on_exit(client, run_id):
        mlflow_logging.log_params(client, run_id, run_params(params, estimator, "unknown", "unknown"))
        mlflow_logging.log_history(client, run_id, estimator.history_)
        mlflow_logging.log_keras_model(run_id, digit_model(estimator.model_), estimator.n_features_in_)
    return run_id


def model_dir(root: Path, variant: str, seed: int) -> Path:
    """Each model's folder is named like its run: models/batchnorm-seed0."""
    return Path(root) / tracking.run_name(variant, seed)

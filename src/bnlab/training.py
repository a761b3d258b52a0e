"""Train one job (experiment, variant, seed) as an MLflow child run; record a restored one."""

from __future__ import annotations

import time

import numpy as np

from bnlab import mlflow_logging, tracking
from bnlab.config import ExperimentParams, Params
from bnlab.estimator import KerasMLPClassifier
from bnlab.experiments import Job, point_label
from bnlab.model_logging import log_served_model
from bnlab.probes import ProbeRecorder
from bnlab.tf_runtime import runtime_settings

PIXEL_SCALE = 1 / 255  # inside the network, so the logged model takes raw pixel rows


def make_estimator(experiment: ExperimentParams, job: Job, callbacks=None) -> KerasMLPClassifier:
    """The job's estimator, built from the validated settings as they are."""
    return KerasMLPClassifier(**experiment.settings(job.variant, job.point).estimator_kwargs(),
                              random_state=job.seed, rescale=PIXEL_SCALE, callbacks=callbacks)


def flat_pixels(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def make_probes(experiment: ExperimentParams, estimator: KerasMLPClassifier, splits: dict,
                on_record=None) -> ProbeRecorder | None:
    """The experiment's probes for this estimator, or None when it declares none."""
    if experiment.probes is None:
        return None
    (x_val, y_val), (x_test, y_test) = splits["validation"], splits["test"]
    return ProbeRecorder(experiment.probes.every_steps, (flat_pixels(x_val), y_val),
                         (flat_pixels(x_test), y_test), n_hidden=len(estimator.hidden_units),
                         probe_images=experiment.probes.images, unit=experiment.probes.unit,
                         batch_size=estimator.batch_size, on_record=on_record)


def run_params(params: Params, estimator: KerasMLPClassifier, n_train, n_val) -> dict:
    """What MLflow shows in its params column: every estimator and data param."""
    est = {k: v for k, v in estimator.get_params().items() if k != "callbacks"}
    data = {**params.split.model_dump(), "n_train": n_train, "n_val": n_val}
    return {"model": est, "data": data}


def child_tags(job: Job, parent_id: str, lineage: dict) -> dict:
    point = {"grid_point": point_label(job.point)} if job.point else {}
    return {tracking.PARENT_RUN_ID: parent_id, "experiment": job.experiment, "variant": job.variant,
            "seed": str(job.seed), **point, **lineage, **{f"runtime.{k}": v for k, v in runtime_settings().items()}}


def train_job(client, experiment_id: str, parent_id: str, params: Params, job: Job, splits: dict,
              sources: dict[str, str], lineage: dict) -> tuple[KerasMLPClassifier, str, ProbeRecorder | None]:
    """Fit one model; its run gets params, tags, datasets, each epoch's metrics as the epoch
    ends, probe metrics as they are measured, and the model. The run ends FINISHED, or
    FAILED/KILLED if anything stops it."""
    experiment = params.experiment(job.experiment)
    (x_train, y_train), (x_val, y_val) = splits["train"], splits["validation"]
    run = tracking.create_run(client, experiment_id, job.run_name, child_tags(job, parent_id, lineage))
    run_id = run.info.run_id
    with tracking.terminated_on_exit(client, run_id):
        estimator = make_estimator(experiment, job)
        probes = make_probes(experiment, estimator, splits, mlflow_logging.ProbeLogger(run_id))
        estimator.set_params(callbacks=[mlflow_logging.EpochLogger(run_id), *([probes] if probes else [])])
        mlflow_logging.log_params(client, run_id, run_params(params, estimator, len(y_train), len(y_val)))
        mlflow_logging.log_datasets(run_id, {k: splits[k] for k in sources}, sources)
        started = time.perf_counter()
        estimator.fit(flat_pixels(x_train), y_train, validation_data=(flat_pixels(x_val), y_val))
        mlflow_logging.log_metrics(client, run_id, {"fit_seconds": time.perf_counter() - started})
        estimator.set_params(callbacks=None)  # the loggers belong to this run, not the model
        log_served_model(run_id, estimator.model_, estimator.n_features_in_)
    return estimator, run_id, probes


def record_restored_model(client, experiment_id: str, parent_id: str, params: Params, job: Job,
                          estimator: KerasMLPClassifier, lineage: dict, tags: dict | None = None) -> str:
    """A model restored from a cache (DVC's, or another run's: see :mod:`bnlab.job_cache`) has
    no run of its own here: make one from what was saved with it, tagged ``restored=true``."""
    run = tracking.create_run(client, experiment_id, job.run_name,
                              {**child_tags(job, parent_id, lineage), "restored": "true", **(tags or {})})
    run_id = run.info.run_id
    with tracking.terminated_on_exit(client, run_id):
        mlflow_logging.log_params(client, run_id, run_params(params, estimator, "unknown", "unknown"))
        mlflow_logging.log_history(client, run_id, estimator.history_)
        log_served_model(run_id, estimator.model_, estimator.n_features_in_)
    return run_id

"""What a job's run holds besides its metrics: its tags and params, and the whole run of a
model restored from a cache (DVC's, or another run's: :mod:`bnlab.tracking.job_cache`)."""

from __future__ import annotations

from bnlab.core.numpy_dispatch import active_targets
from bnlab.experiments.jobs import Job, point_label
from bnlab.experiments.params import Params
from bnlab.ml.tf_runtime import runtime_settings
from bnlab.tracking.logged import log_history, log_params
from bnlab.tracking.models import log_served_model
from bnlab.tracking.runs import (
    MODEL_DIGEST_TAG,
    PARENT_RUN_ID,
    RESTORED,
    ROLE_TAG,
    SELECTION_ROLE,
    MlflowClient,
    owned_run,
    provenance,
)


def job_tags(job: Job, parent_id: str, lineage: dict) -> dict[str, str]:
    """The tags the UI groups and filters a job's run by, its lineage and its runtime; a
    selection job's say so, and which candidate it tries."""
    extra = {"grid_point": point_label(job.point)} if job.point else {}
    if job.selection:
        extra |= {ROLE_TAG: SELECTION_ROLE, "candidate": point_label(job.tuned)}
    return {
        PARENT_RUN_ID: parent_id,
        "experiment": job.experiment,
        "variant": job.variant,
        "seed": str(job.seed),
        **extra,
        **lineage,
        **{f"runtime.{k}": v for k, v in runtime_settings().items()},
        # what the report's numbers would run on here (numpy_dispatch): not the weights'
        "runtime.numpy_dispatch": ",".join(active_targets()),
    }


def job_params(params: Params, estimator, n_train, n_val) -> dict:
    """What MLflow shows in its params column: every estimator and data param."""
    est = {k: v for k, v in estimator.get_params().items() if k != "callbacks"}
    data = {**params.split.model_dump(), "n_train": n_train, "n_val": n_val}
    return {"model": est, "data": data}


def log_served_model_of(client: MlflowClient, run_id: str, job: Job, estimator) -> None:
    """The model MLflow serves, into the job's run; none for a selection job, whose validation
    score is all it is for (never tested or served), trained or restored."""
    if not job.selection:
        log_served_model(client, run_id, estimator.model_, estimator.n_features_in_)


def record_restored_model(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    params: Params,
    job: Job,
    estimator,
    lineage: dict,
    digest: str,
    source_run: str | None = None,
) -> str:
    """A run for a model that was trained elsewhere (``source_run``, when a run of this store
    trained it), made from what was saved with it (its params, its history, the served model
    but for a selection job's), tagged ``bnlab.provenance=restored`` and its ``model_digest``;
    FINISHED only once it holds all of it."""
    all_tags = {**job_tags(job, parent_id, lineage), **provenance(RESTORED, source_run), MODEL_DIGEST_TAG: digest}
    with owned_run(client, experiment_id, job.run_name, all_tags) as run_id:
        log_params(client, run_id, job_params(params, estimator, "unknown", "unknown"))
        log_history(client, run_id, estimator.history_)
        log_served_model_of(client, run_id, job, estimator)
    return run_id

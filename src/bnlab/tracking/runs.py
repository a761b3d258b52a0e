"""MLflow's store and runs: connecting, finding runs, their provenance, and the one owner of a
run's lifecycle (:func:`owned_run`). The keys runs are found by and their lineage are in
:mod:`bnlab.tracking.lineage`; what gets logged into a run is in :mod:`bnlab.tracking.logged`.

The layout in the store:

- experiment ``batchnorm-mnist``, or ``MLFLOW_EXPERIMENT_NAME`` (MLflow's own variable): where
  runs go is no param, so renaming it re-runs no stage;
- per bnlab experiment (``notebook``, ``ioffe2015``, ...), one parent run per execution of its
  train stage (``notebook-<key>``), or the project's run under ``mlflow run``; it carries that
  experiment's comparison; tag ``experiment``;
- one child run per trained model (``notebook/batchnorm-seed0``, ...), with params, per-epoch
  and probe metrics, test metrics, datasets and the model; tags ``experiment``, ``variant``,
  ``seed``.

Stages find their runs by content (the pipeline key: a hash of the experiment's settings, the
prepared data and the training code; a job's run also by its model's digest; FINISHED runs
only), never by a run id written to a DVC output: DVC may restore a stage's outputs
from its cache without running it, and run ids would make the outputs differ run to run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Before mlflow is imported: fail in seconds, not minutes of retries, when a server is down.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A stage's log is for what it does; MLflow's per-file progress bars are noise there.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import RunStatus, RunTag  # noqa: E402

from bnlab.tracking.store import (  # noqa: E402
    TrackingError,
    check_reachable,
    default_artifacts,
    experiment_name,
    redact,
    redact_text,
    server_credentials,
    store_uri,
    tracking_uri,
)

# MLflow's database module logs "Creating initial MLflow database tables..." into every new
# store's stage log, and a whole traceback before raising a database error that the CLI reports
# in one line (a full disk: "database or disk is full").
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

PARENT_RUN_ID = "mlflow.parentRunId"
# Which process writes a run: a later stage on the same host ends the run if that process died
# without ending it (kill -9, the out-of-memory killer). The start time tells a reused pid apart.
HOST_TAG, PID_TAG, STARTED_TAG = "bnlab.host", "bnlab.pid", "bnlab.process_started"
ENDED_BY_TAG = "bnlab.ended_by"
KEY_TAG = "bnlab.pipeline_key"
ROLE_TAG = "bnlab.role"
PIPELINE_ROLE, EVALUATION_ROLE = "pipeline", "evaluation"  # an experiment's parent; a model's test-set run
SELECTION_ROLE = "selection"  # a model trained to choose settings on the validation split
MODEL_DIGEST_TAG = "model_digest"  # sha256 of a job's weights.npz: which model the run holds
# How a run came to be (docs/mlflow.md): TRAINED by its own process; RESTORED, a model trained
# elsewhere (the per-job cache, or DVC's cache into a store that never saw it); COPIED, a run
# copied for another DVC experiment (no model of its own). And the run its data came from.
PROVENANCE_TAG, SOURCE_RUN_TAG = "bnlab.provenance", "bnlab.source_run"
TRAINED, RESTORED, COPIED = "trained", "restored", "copied"
TEST_METRICS = ("test_loss", "test_accuracy")  # what evaluate logs into a job's run
# MLflow 3 shows an experiment as GenAI or model training by this tag (and its UI's own switch).
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


# --- the store -----------------------------------------------------------------------------


def connect(experiment: str | None = None, root: Path | None = None) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and return a client and the id of ``experiment`` (default:
    :func:`experiment_name`), created on first use."""
    experiment = experiment or experiment_name()
    client, experiment_id = _connect(experiment, root)
    for run_id, reason in end_orphaned_runs(client, experiment_id):
        print(f"ended run {run_id} KILLED: {reason}", flush=True)
    return client, experiment_id


def _connect(experiment: str, root: Path | None) -> tuple[MlflowClient, str]:
    given = tracking_uri(root)
    uri = store_uri(given)  # what MLflow gets; messages name what the user gave
    default_store = "MLFLOW_TRACKING_URI" not in os.environ  # set_tracking_uri sets it
    check_reachable(given)
    os.environ.update(server_credentials(given))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: the project run's experiment
            experiment_id = client.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id
        elif (found := client.get_experiment_by_name(experiment)) is not None:
            experiment_id = found.experiment_id
        else:
            location = default_artifacts(root).as_uri() if default_store else None
            experiment_id = client.create_experiment(
                experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
            )
        mark_model_training(client, experiment_id)
        return client, experiment_id
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"MLflow tracking store {redact(given)}: {redact_text(exc.message, given)}") from None


def mark_model_training(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as model training (not GenAI), also one created before this tag
    existed or by someone else, so that a UI that reads the kind shows its training runs."""
    if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


# --- runs ----------------------------------------------------------------------------------


def owner_tags() -> dict[str, str]:
    """This process, as the writer of a run."""
    import psutil

    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        STARTED_TAG: repr(psutil.Process().create_time()),
    }


def create_run(client: MlflowClient, experiment_id: str, run_name: str, tags: dict):
    """A new run, tagged with the process that writes it (see :func:`end_orphaned_runs`)."""
    return client.create_run(experiment_id, run_name=run_name, tags={**tags, **owner_tags()})


def _alive(pid: str, started: str) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.01
    except (psutil.NoSuchProcess, ValueError):
        return False


def end_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[tuple[str, str]]:
    """End KILLED the runs still RUNNING whose writer, a bnlab process on this host, is gone: it
    was killed (SIGKILL, the out-of-memory killer) before it could end them. Runs written on other
    hosts are left alone (their process cannot be checked from here). Returns (run id, reason)."""
    host = socket.gethostname()
    running = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'")
    ended = []
    for run in running:
        tags = run.data.tags
        if _alive(tags.get(PID_TAG, ""), tags.get(STARTED_TAG, "")):
            continue
        reason = (
            f"its process {tags.get(PID_TAG)} on {host} ended without ending the run (killed: SIGKILL or out of memory)"
        )
        client.set_tag(run.info.run_id, ENDED_BY_TAG, reason)
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        ended.append((run.info.run_id, reason))
    return ended


def provenance(how: str, source_run: str | None = None) -> dict[str, str]:
    """The two provenance tags: how the run came to be and, if from another run, which."""
    return {PROVENANCE_TAG: how, **({SOURCE_RUN_TAG: source_run} if source_run else {})}


def find_parent(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The newest FINISHED pipeline run with this key (which covers the code:
    :func:`bnlab.tracking.lineage.pipeline_key`),
    or the project's run under ``mlflow run``. A KILLED or FAILED execution is never one."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return os.environ["MLFLOW_RUN_ID"]
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = '{PIPELINE_ROLE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def create_parent(client: MlflowClient, experiment_id: str, experiment: str, key: str, tags: dict) -> tuple[str, bool]:
    """The parent run of one bnlab experiment's execution; ``created`` is False under
    ``mlflow run``, where the project's run is the parent and its status belongs to
    ``mlflow run``."""
    project_run = os.environ.get("MLFLOW_RUN_ID")
    all_tags = {**tags, "experiment": experiment, KEY_TAG: key, ROLE_TAG: PIPELINE_ROLE}
    if project_run:
        client.log_batch(project_run, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
        return project_run, False
    run = create_run(client, experiment_id, f"{experiment}-{key[:8]}", all_tags)
    return run.info.run_id, True


def find_child(client: MlflowClient, experiment_id: str, parent_id: str, job, digest: str) -> str | None:
    """The FINISHED run of ``job`` (a :class:`bnlab.experiments.jobs.Job`) under this parent that
    holds the model with this ``digest`` (sha256 of its weights.npz), if any: a run is matched
    by what it holds, not only by its name."""
    runs = client.search_runs(  # a job's run name is unique across experiments and grid points
        [experiment_id],
        f"tags.`{PARENT_RUN_ID}` = '{parent_id}' and attributes.run_name = '{job.run_name}' "
        f"and tags.`{MODEL_DIGEST_TAG}` = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


@contextmanager
def run_lifecycle(client: MlflowClient, run_id: str, owned: bool = True) -> Iterator[str]:
    """The one way a run ends: FINISHED once the block is done (so the block must log
    everything the run has to hold), FAILED on an error, KILLED on Ctrl-C or SIGTERM: never
    RUNNING. A run not ``owned`` (the project's run under ``mlflow run``, whose status belongs to
    ``mlflow run``) is left as it is."""

    def end(status: int) -> None:
        if not owned:
            return
        try:
            client.set_terminated(run_id, RunStatus.to_string(status))
        except Exception:  # the store itself is gone: keep the error that brought us here
            pass

    try:
        yield run_id
    except KeyboardInterrupt:
        end(RunStatus.KILLED)
        raise
    except BaseException:
        end(RunStatus.FAILED)
        raise
    if owned:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


@contextmanager
def owned_run(client: MlflowClient, experiment_id: str, run_name: str, tags: dict) -> Iterator[str]:
    """A new run (:func:`create_run`), open for the block and ended by :func:`run_lifecycle`."""
    run = create_run(client, experiment_id, run_name, tags)
    with run_lifecycle(client, run.info.run_id) as run_id:
        yield run_id


@contextmanager
def pipeline_run(client: MlflowClient, experiment_id: str, experiment: str, key: str, tags: dict) -> Iterator[str]:
    """The parent run of one execution of an experiment's train stage (:func:`create_parent`),
    open for the block and ended by :func:`run_lifecycle`."""
    run_id, owned = create_parent(client, experiment_id, experiment, key, tags)
    with run_lifecycle(client, run_id, owned):
        yield run_id


@contextmanager
def children_ended_on_error(client: MlflowClient, experiment_id: str, parent_id: str) -> Iterator[None]:
    """On an error, end the parent's child runs that are still RUNNING (jobs stopped half-way,
    a worker killed): KILLED on Ctrl-C or SIGTERM, else FAILED. Their writers must be stopped
    first (:func:`bnlab.execution.local.run_all` does), or they could still end a run FINISHED."""
    try:
        yield
    except BaseException as exc:
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        try:
            end_running_children(client, experiment_id, parent_id, status, f"the stage stopped: {type(exc).__name__}")
        except Exception:  # the store itself is gone: keep the error that brought us here
            pass
        raise


def end_running_children(
    client: MlflowClient, experiment_id: str, parent_id: str, status: int, reason: str
) -> list[str]:
    """End the parent's child runs still RUNNING with ``status``, tagged with the reason."""
    running = client.search_runs(
        [experiment_id], f"tags.`{PARENT_RUN_ID}` = '{parent_id}' and attributes.status = 'RUNNING'"
    )
    for run in running:
        client.set_tag(run.info.run_id, ENDED_BY_TAG, reason)
        client.set_terminated(run.info.run_id, RunStatus.to_string(status))
    return [run.info.run_id for run in running]

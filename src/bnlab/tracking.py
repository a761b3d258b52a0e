"""Everything MLflow: where the store is, run names and tags, lineage, logging helpers.

The layout in the store:

- experiment ``batchnorm-mnist`` (``mlflow.experiment`` in params.yaml);
- one parent run per pipeline execution (``pipeline-<key>``), created by the train stage, or
  the project's run under ``mlflow run``; it carries the comparison;
- one child run per trained model (``batchnorm-seed0``, ...), with params, per-epoch metrics,
  test metrics, datasets and the model.

Stages find their runs by content (the pipeline key: a hash of the training params and the
prepared data), never by a run id written to a DVC output: DVC may restore a stage's outputs
from its cache without running it, and run ids would make the outputs differ run to run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Before mlflow is imported: fail in seconds, not minutes of retries, when a server is down.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunStatus, RunTag  # noqa: E402

PARENT_RUN_ID = "mlflow.parentRunId"
KEY_TAG = "bnlab.pipeline_key"
ROLE_TAG = "bnlab.role"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


# --- the store -----------------------------------------------------------------------------


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(root or Path.cwd()).resolve() / DEFAULT_DB}"


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail early, naming the URI, if a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow tracking server {uri} answered HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow tracking server {uri} is unreachable: {reason}") from None


def connect(experiment: str, root: Path | None = None) -> tuple[MlflowClient, str]:
    """Point MLflow at the store and return a client and the experiment's id (created once)."""
    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: the project run's experiment
            return client, client.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return client, found.experiment_id
        location = None
        if "MLFLOW_TRACKING_URI" not in os.environ:  # the default store: artifacts beside it
            location = ((root or Path.cwd()).resolve() / DEFAULT_ARTIFACTS).as_uri()
        return client, client.create_experiment(experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"MLflow tracking store {uri}: {exc.message}") from None


# --- names, keys and lineage ---------------------------------------------------------------


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def file_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def pipeline_key(train_params: dict, data_fingerprint: str) -> str:
    """Same training settings on the same data → same key, in every stage and process."""
    payload = json.dumps({"train": train_params, "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def git_state(root: Path | None = None) -> dict[str, str]:
    """Commit and whether the tree had uncommitted changes, for the run's lineage."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} → {"a.b": "1"}: MLflow params are flat strings."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


# --- runs ----------------------------------------------------------------------------------


def find_parent(client: MlflowClient, experiment_id: str, key: str) -> str | None:
    """The newest pipeline run with this key, or the project's run under ``mlflow run``."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return os.environ["MLFLOW_RUN_ID"]
    runs = client.search_runs([experiment_id], f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def create_parent(client: MlflowClient, experiment_id: str, key: str, tags: dict) -> tuple[str, bool]:
    """The parent run for this execution; ``created`` is False under ``mlflow run``, where the
    project's run is the parent and its status belongs to ``mlflow run``."""
    project_run = os.environ.get("MLFLOW_RUN_ID")
    all_tags = {**tags, KEY_TAG: key, ROLE_TAG: "pipeline"}
    if project_run:
        client.log_batch(project_run, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
        return project_run, False
    run = client.create_run(experiment_id, run_name=f"pipeline-{key[:8]}", tags=all_tags)
    return run.info.run_id, True


def find_child(client: MlflowClient, experiment_id: str, parent_id: str, variant: str, seed: int) -> str | None:
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{PARENT_RUN_ID}` = '{parent_id}' and tags.variant = '{variant}' and tags.seed = '{seed}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


@contextmanager
def terminated_on_exit(client: MlflowClient, run_id: str, owned: bool = True) -> Iterator[str]:
    """End the run FINISHED, FAILED on an error, KILLED on Ctrl-C or SIGTERM: never RUNNING."""
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


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Nested params, flattened to MLflow's dotted names, in one request."""
    client.log_batch(run_id, params=[Param(k, v) for k, v in flatten(params).items()])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


class EpochLogger:
    """A training callback that logs each epoch's history to a run, as the epoch ends, with
    step = epoch number (1..epochs). Holds only ids, so ``clone`` can copy it."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        log_metrics(MlflowClient(), self.run_id, logs, step=epoch + 1)


def log_history(client: MlflowClient, run_id: str, history: dict[str, list[float]]) -> None:
    """Replay a saved history (for a model DVC restored from its cache)."""
    for index in range(len(next(iter(history.values()), []))):
        log_metrics(client, run_id, {k: v[index] for k, v in history.items()}, step=index + 1)


def log_datasets(run_id: str, splits: dict[str, tuple], sources: dict[str, str]) -> None:
    """The train / validation / test arrays as the run's inputs, with MLflow's digests."""
    import warnings

    from mlflow.data import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for name, (x, y) in splits.items():
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": it is a file
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_numpy(x.reshape(len(x), -1), targets=y, name=f"mnist-{name}",
                                 source=sources[name])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", name)]))
    MlflowClient().log_inputs(run_id, datasets=inputs)


def pip_requirements() -> list[str]:
    """Pinned from this environment, so MLflow need not infer them (that costs seconds per
    model, loading it in a subprocess)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for names in (("tensorflow-cpu", "tensorflow"), ("keras",), ("numpy",)):
        for name in names:
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return pins


def log_keras_model(run_id: str, model, n_features: int) -> None:
    """Log a Keras model that takes raw pixel rows and returns digits, with a signature, so
    that ``mlflow.pyfunc.load_model(...).predict(rows)`` gives digits."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_features), "pixels")]),
        outputs=Schema([TensorSpec(np.dtype(np.int32), (-1,), "digit")]),
    )
    # input_example is left out: with Keras 3.15 it fails in MLflow 3.17 (design.md).
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        mlflow.keras.log_model(model, name="model", signature=signature,
                               pip_requirements=pip_requirements())


def carry_over_results(client: MlflowClient, experiment_id: str, key: str, parent_id: str,
                       children: dict[str, tuple[str, str]]) -> str | None:
    """Copy test metrics and the comparison from an earlier execution that produced the very
    same models (``children``: run name → (run id, model digest)).

    When training re-runs and writes byte-identical models, DVC rightly skips evaluate and
    report; without this, the new runs would lack what those stages log. Returns the run id
    results were copied from, if any.
    """
    earlier = client.search_runs(
        [experiment_id], f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'pipeline'",
        order_by=["attributes.start_time DESC"], max_results=20)
    for previous in (run for run in earlier if run.info.run_id != parent_id):
        old = {run.info.run_name: run for run in client.search_runs(
            [experiment_id], f"tags.`{PARENT_RUN_ID}` = '{previous.info.run_id}'")}
        if not all(name in old and old[name].data.tags.get("model_digest") == digest
                   and "test_accuracy" in old[name].data.metrics
                   for name, (_, digest) in children.items()):
            continue
        for name, (run_id, _) in children.items():
            source = old[name]
            log_metrics(client, run_id, {k: source.data.metrics[k] for k in ("test_loss", "test_accuracy")})
            client.set_tag(run_id, "test_metrics_from", source.info.run_id)
        if not client.list_artifacts(previous.info.run_id, "figures"):
            return None  # its report never ran: the test metrics are all there is to copy
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for item in client.list_artifacts(previous.info.run_id):
                local = client.download_artifacts(previous.info.run_id, item.path, tmp)
                if item.is_dir:
                    client.log_artifacts(parent_id, local, item.path)
                else:
                    client.log_artifact(parent_id, local)
        log_metrics(client, parent_id, {k: v for k, v in previous.data.metrics.items()})
        client.set_tag(parent_id, "results_from", previous.info.run_id)
        return previous.info.run_id
    return None

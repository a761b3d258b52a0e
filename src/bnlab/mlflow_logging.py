"""What goes into an MLflow run: params, metrics as epochs end, datasets, and results
carried over from an earlier identical execution."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from bnlab.tracking import COPIED_FROM_TAG, KEY_TAG, PARENT_RUN_ID, ROLE_TAG, MlflowClient, create_run
from mlflow.entities import Metric, Param, RunStatus

# Tags a copy does not take over: MLflow's own, the writer's, the job cache's, the lineage.
NOT_COPIED = ("mlflow.", "bnlab.host", "bnlab.pid", "bnlab.process_started", "bnlab.job_key", "dvc.")
MAX_BATCH = 1000  # metrics per log_batch request (MLflow's limit)


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


def log_params(client: MlflowClient, run_id: str, params: dict) -> None:
    """Nested params, flattened to MLflow's dotted names, in one request."""
    client.log_batch(run_id, params=[Param(k, v) for k, v in flatten(params).items()])


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done, then raise them as KeyboardInterrupt.

    An MLflow write interrupted half-way leaves its SQLite transaction open: the store stays
    locked, so the run cannot then be ended KILLED (and MLflow logs a traceback). The metrics
    written while training are where an interrupt most often lands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}  # an ignored signal stays ignored (nohup)
    for sig in previous:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]}")


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    with signals_held():
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


class EpochLogger:
    """A training callback that logs each epoch's history to a run, as the epoch ends, with
    step = epoch number (1..epochs). Holds only ids, so ``clone`` can copy it."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        log_metrics(MlflowClient(), self.run_id, logs, step=epoch + 1)


class ProbeLogger:
    """``on_record`` of :class:`bnlab.probes.ProbeRecorder`: each probe's values as metrics with
    step = optimizer step, e.g. ``probe/layer2/all/p50``, ``probe/layer2/unit0/dead_fraction``,
    ``probe/test_accuracy``. Holds only the run id."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def __call__(self, step: int, rows: list[dict], accuracy: dict) -> None:
        metrics = {f"probe/{k}": v for k, v in accuracy.items() if k != "step" and v is not None}
        for row in rows:
            unit = "all" if row["unit"] == "all" else f"unit{row['unit']}"
            for key in ("p15", "p50", "p85", "dead_fraction"):
                metrics[f"probe/layer{row['layer']}/{unit}/{key}"] = row[key]
        log_metrics(MlflowClient(), self.run_id, metrics, step=step)


def log_history(client: MlflowClient, run_id: str, history: dict[str, list[float]]) -> None:
    """Replay a saved history (for a model DVC restored from its cache)."""
    for index in range(len(next(iter(history.values()), []))):
        log_metrics(client, run_id, {k: v[index] for k, v in history.items()}, step=index + 1)


def log_datasets(run_id: str, splits: dict[str, tuple], sources: dict[str, str]) -> None:
    """The train / validation / test arrays as the run's inputs, with MLflow's digests."""
    from mlflow.data import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for name, (x, y) in splits.items():
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": it is a file
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_numpy(x.reshape(len(x), -1), targets=y, name=f"mnist-{name}",
                                 source=sources[name])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", name)]))
    for attempt in range(3):
        try:
            MlflowClient().log_inputs(run_id, datasets=inputs)
            return
        except Exception as exc:
            # Two processes logging a dataset new to the store at once both try to insert it
            # (MLflow checks, then inserts); the loser's retry finds the winner's row.
            if "UNIQUE constraint" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.2)


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


def copy_execution(client: MlflowClient, experiment_id: str, source_parent: str, tags: dict) -> str:
    """A new parent run with a copy of each finished child of ``source_parent``: params, tags,
    every metric's history; tagged ``restored=true`` and ``bnlab.copied_from``. For a DVC
    experiment whose stages DVC restored from its run cache: the runs of the execution that
    made those outputs, under this experiment's name. Models are not copied (the source runs
    have them). Returns the new parent's id; it is left RUNNING for the caller to end."""
    parent = client.get_run(source_parent)
    new_parent = create_run(client, experiment_id, parent.info.run_name,
                            {**_copied_tags(parent), **tags, "restored": "true", COPIED_FROM_TAG: source_parent})
    _copy_data(client, parent, new_parent.info.run_id)
    children = client.search_runs([experiment_id], f"tags.`{PARENT_RUN_ID}` = '{source_parent}' "
                                                   f"and attributes.status = 'FINISHED'")
    for child in children:
        copy = create_run(client, experiment_id, child.info.run_name,
                          {**_copied_tags(child), **tags, "restored": "true", COPIED_FROM_TAG: child.info.run_id,
                           PARENT_RUN_ID: new_parent.info.run_id})
        _copy_data(client, child, copy.info.run_id)
        client.set_terminated(copy.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
    return new_parent.info.run_id


def _copied_tags(run) -> dict[str, str]:
    return {k: v for k, v in run.data.tags.items() if not k.startswith(NOT_COPIED)}


def _copy_data(client: MlflowClient, source, run_id: str) -> None:
    client.log_batch(run_id, params=[Param(k, v) for k, v in source.data.params.items()])
    history = [m for key in source.data.metrics for m in client.get_metric_history(source.info.run_id, key)]
    for start in range(0, len(history), MAX_BATCH):
        client.log_batch(run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step)
                                          for m in history[start:start + MAX_BATCH]])

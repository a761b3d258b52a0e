"""What goes into an MLflow run: params, metrics as epochs end and as probes measure (in batches
a few seconds apart), datasets. Every write goes through a client for the store it is given."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.utils.validation import MAX_METRICS_PER_BATCH

from bnlab.ml import probe_rows
from bnlab.tracking.runs import MlflowClient


def flatten(params: dict) -> dict[str, str]:
    """{"a": {"b": 1}} → {"a.b": "1"} (pandas' ``json_normalize``): MLflow params are flat
    strings; a list is written as JSON."""
    row = pd.json_normalize(params, sep=".").to_dict(orient="records")[0] if params else {}
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else str(value) for key, value in row.items()}


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
    previous = {
        sig: signal.getsignal(sig)
        for sig in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(sig) is not signal.SIG_IGN
    }  # an ignored signal stays ignored (nohup)
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


# A fit's metrics are written at most this often (and when it ends, :meth:`_RunWriter.flush`):
# one SQLite transaction per epoch and per probe took 13-17% of a short fit
# (docs/benchmarks.md), and the UI shows a running fit's curves at most seconds late.
FLUSH_SECONDS = 2.0


class _RunWriter:
    """Writes to one run of the store at ``uri``, metrics gathered for up to FLUSH_SECONDS and
    then written in one batch. Holds only the two strings (its client and unwritten metrics
    are its own, never copied), so ``clone`` and pickle can copy it."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if getattr(self, "_pending", None) is None:
            self._pending, self._written = [], time.monotonic()
        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if time.monotonic() - self._written >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the metrics gathered so far (in MLflow's batches of at most 1000)."""
        pending = getattr(self, "_pending", None)
        if not pending:
            return
        if getattr(self, "_client", None) is None:
            self._client = MlflowClient(self.uri)
        with signals_held():
            for start in range(0, len(pending), MAX_METRICS_PER_BATCH):
                self._client.log_batch(self.run_id, metrics=pending[start : start + MAX_METRICS_PER_BATCH])
        pending.clear()
        self._written = time.monotonic()

    def __getstate__(self):
        return {"uri": self.uri, "run_id": self.run_id}


class EpochLogger(_RunWriter):
    """A training callback that logs each epoch's history to a run with step = epoch number
    (1..epochs), written within FLUSH_SECONDS of the epoch's end."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._log(logs, step=epoch + 1)

    def on_train_end(self, logs: dict | None = None) -> None:
        """The epochs not yet written, when the fit ends: a logger passed to ``fit`` as a plain
        callback (no :func:`bnlab.execution.training.fit_into_run` to flush it) loses none."""
        self.flush()


class ProbeLogger(_RunWriter):
    """``on_record`` of :class:`bnlab.ml.probes.ProbeRecorder`: each probe's values as metrics
    (:func:`bnlab.ml.probe_rows.metrics`) with step = optimizer step."""

    def __call__(self, step: int, rows: list[dict], accuracy: dict) -> None:
        self._log(probe_rows.metrics(rows, accuracy), step=step)


class GeometryLogger(_RunWriter):
    """``on_record`` of :class:`bnlab.ml.geometry.GeometryProbe`: each probe's landscape summary
    and covariate shift as metrics (:func:`bnlab.ml.probe_rows.geometry_metrics`), step =
    optimizer step."""

    def __call__(self, step: int, landscape: list[dict], ics: list[dict]) -> None:
        self._log(probe_rows.geometry_metrics(landscape, ics), step=step)


class InitGradientLogger(_RunWriter):
    """``on_record`` of :class:`bnlab.ml.init_gradients.InitGradientProbe`: each hidden layer's
    squared pre-activation gradient at initialization, step 0 (before the first update)."""

    def __call__(self, rows: list[dict]) -> None:
        self._log(probe_rows.init_gradient_metrics(rows), step=0)


class WeightNormLogger(_RunWriter):
    """``on_record`` of :class:`bnlab.ml.weight_norms.WeightNormProbe`: each hidden kernel's norm
    and angular update at a watched step, step = optimizer step."""

    def __call__(self, step: int, rows: list[dict]) -> None:
        self._log(probe_rows.weight_norm_metrics(rows), step=step)


class SharpnessLogger(_RunWriter):
    """``on_record`` of :class:`bnlab.ml.sharpness.SharpnessProbe`: λ_max and the loss it is of,
    at a watched step, step = optimizer step."""

    def __call__(self, step: int, row: dict) -> None:
        self._log(probe_rows.sharpness_metrics(row), step=step)


# MLflow's system metrics (system/cpu_utilization_percentage, system/system_memory_usage_megabytes,
# ...), sampled every half second and logged each sample (each also reads the run: about 1.3 a
# second measured), so a 10-second fit gets over 10 points.
SYSTEM_METRICS_INTERVAL = 0.5


@contextmanager
def system_metrics(store: str, run_id: str) -> Iterator[None]:
    """Record MLflow's system metrics into run ``run_id`` while the block runs. MLflow's own
    monitor, started on a run of this client's store (the fluent ``log_system_metrics`` needs
    an active fluent run, which a job does not have)."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    # Its INFO lines ("Started monitoring...", "Skip logging GPU metrics") would fill the stage's
    # log, one set per job.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=SYSTEM_METRICS_INTERVAL, samples_before_logging=1, tracking_uri=store
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
    # The monitor logs a sample only once a whole interval has passed: a shorter fit would have
    # none. A last sample at the end (of a fit that did not fail) gives every run one.
    monitor.collect_metrics()
    with signals_held():
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()


def log_history(client: MlflowClient, run_id: str, history: dict[str, list[float]]) -> None:
    """Replay a saved history (for a model DVC restored from its cache)."""
    for index in range(len(next(iter(history.values()), []))):
        log_metrics(client, run_id, {k: v[index] for k, v in history.items()}, step=index + 1)


def log_datasets(client: MlflowClient, run_id: str, splits: dict[str, tuple], sources: dict[str, str]) -> None:
    """The train / validation / test arrays as the run's inputs, with MLflow's digests."""
    from mlflow.data import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for name, (x, y) in splits.items():
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": it is a file
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_numpy(x.reshape(len(x), -1), targets=y, name=f"mnist-{name}", source=sources[name])
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", name)]))
    for attempt in range(3):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except Exception as exc:
            # Two processes logging a dataset new to the store at once both try to insert it
            # (MLflow checks, then inserts); the loser's retry finds the winner's row.
            if "UNIQUE constraint" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.2)

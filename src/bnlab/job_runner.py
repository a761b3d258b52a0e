"""One training job, start to finish, wherever it runs: in the stage's own process or in a
worker process. It reads the prepared splits itself, trains, logs its MLflow run, and returns
the files of its model folder as bytes, which the stage writes into models/<experiment>/.

Everything a job needs travels in a picklable :class:`JobRequest`; TensorFlow is imported only
when the first job runs, so a worker starts with the thread settings of :mod:`bnlab.tf_runtime`.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bnlab import data
from bnlab.columns import PROBE_COLUMNS, STEP_COLUMNS
from bnlab.config import Params
from bnlab.experiments import Job


class JobFailed(RuntimeError):
    """A training job raised; the message names the job and what went wrong."""


@dataclass(frozen=True)
class JobRequest:
    params: Params
    job: Job
    files: tuple[tuple[str, str], ...]  # (MLflow's dataset name, path of the split file)
    tracking_uri: str
    experiment_id: str
    parent_id: str
    lineage: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class JobResult:
    job: Job
    run_id: str
    files: dict[str, bytes]  # model folder's relative path → bytes
    digest: str  # sha256 of weights.npz: which model this is
    summary: str  # one line for the stage's log


@functools.lru_cache(maxsize=2)
def load_splits(files: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    """The splits by MLflow's name, read once per process (a worker trains several jobs)."""
    return {name: data.load_split(Path(path)) for name, path in files}


def run_job(request: JobRequest) -> JobResult:
    """Train one job; any error comes back as :class:`JobFailed` naming the job."""
    try:
        return _train(request)
    except (KeyboardInterrupt, JobFailed):
        raise
    except Exception as exc:
        raise JobFailed(f"job {request.job.run_name} failed: {type(exc).__name__}: {exc}") from exc


def _train(request: JobRequest) -> JobResult:
    from bnlab.tracking import MlflowClient, mlflow  # MLflow, then TensorFlow: seconds, once per process
    from bnlab.training import train_job

    mlflow.set_tracking_uri(request.tracking_uri)
    client = MlflowClient(request.tracking_uri)
    splits = load_splits(request.files)
    sources = {name: path for name, path in request.files if name != "test"}
    estimator, run_id, probes = train_job(client, request.experiment_id, request.parent_id, request.params,
                                          request.job, splits, sources, dict(request.lineage))
    with tempfile.TemporaryDirectory() as tmp:
        folder = estimator.save(Path(tmp) / "model", format="npz")
        if probes is not None:
            write_csv(probes.probe_rows, PROBE_COLUMNS, folder / "probes.csv")
            write_csv(probes.step_rows, STEP_COLUMNS, folder / "steps.csv")
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        digest = data.file_digest(folder / "weights.npz")
    client.set_tag(run_id, "model_digest", digest)
    last = {k: round(v[-1], 4) for k, v in estimator.history_.items()}
    return JobResult(request.job, run_id, files, digest,
                     f"trained {request.job.run_name} ({estimator.n_steps_} steps): {last}")


def write_csv(rows: list[dict], columns: tuple[str, ...], path) -> None:
    import pandas as pd

    # Rounded: stable, readable files; the values are far less precise than float64 anyway.
    pd.DataFrame(rows, columns=list(columns)).round(6).to_csv(path, index=False)

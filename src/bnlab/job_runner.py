"""One training job, start to finish, wherever it runs: in the stage's own process or in a
worker process. It reads the prepared splits itself, trains, logs its MLflow run, and returns
the files of its model folder as bytes, which the stage writes into models/<experiment>/.

Everything a job needs travels in a picklable :class:`JobRequest`; TensorFlow is imported only
when the first job runs, so a worker starts with the thread settings of :mod:`bnlab.tf_runtime`.
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bnlab import data
from bnlab.atomic import is_write_error
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
    job_key: str  # see bnlab.job_cache
    code: str  # the stage's code fingerprint: a worker running other code refuses the job
    restore_from: str | None = None  # a run that trained this very job: take its model


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


# The split files, as JSON, for the local workers' forkserver to read before it forks them
# (bnlab.worker_image): the workers then share one copy of the images.
SPLITS_ENV = "BNLAB_WORKER_SPLITS"


def splits_env(files: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {SPLITS_ENV: json.dumps(files)}


def preload_splits(env) -> None:
    """In the forkserver: the splits named by :func:`splits_env`, into :func:`load_splits`'s
    cache, which the workers inherit. Unreadable files are left to the jobs to report."""
    if env.get(SPLITS_ENV):
        try:
            load_splits(tuple(tuple(pair) for pair in json.loads(env[SPLITS_ENV])))
        except (ValueError, OSError):  # DataError included
            pass


def run_job(request: JobRequest, splits: dict | None = None) -> JobResult:
    """Train one job, or restore it from the run that trained it; any error comes back as
    :class:`JobFailed` naming the job. ``splits``: the data, where the files are not at hand
    (a Dask worker on another machine); else they are read from ``request.files``."""
    from bnlab.job_cache import code_fingerprint

    if request.code != code_fingerprint():
        raise JobFailed(f"job {request.job.run_name}: this worker runs other bnlab code than the stage "
                        f"(install the same commit on every Dask worker)")
    try:
        return (request.restore_from and _restore(request)) or _train(request, splits)
    except (KeyboardInterrupt, JobFailed):
        raise
    except OSError as exc:
        if is_write_error(exc):  # a full disk: the stage names the file (bnlab.atomic.write_error)
            raise
        raise JobFailed(f"job {request.job.run_name} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise JobFailed(f"job {request.job.run_name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        return_freed_memory()


def return_freed_memory() -> None:
    """Give what the job freed back to the system: glibc keeps freed heap for reuse, so a worker
    would otherwise carry each job's leftovers into the next (measured: ~30 MiB a job)."""
    import gc

    from bnlab import libc

    gc.collect()
    libc.return_free_heap()


def _client(request: JobRequest):
    from bnlab.tracking import MlflowClient, mlflow  # seconds, once per process

    mlflow.set_tracking_uri(request.tracking_uri)
    return MlflowClient(request.tracking_uri)


def _restore(request: JobRequest) -> JobResult | None:
    """The job's model from the run that trained it, checked against that run's digest, with
    a new run that says where it came from; None if that run's files are gone or differ."""
    from bnlab.estimator import KerasMLPClassifier
    from bnlab.job_cache import ARTIFACT_DIR, RESTORED_FROM_TAG
    from bnlab.training import record_restored_model

    client, source = _client(request), request.restore_from
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(source, ARTIFACT_DIR, tmp))
        except Exception as exc:  # deleted artifacts, an unreachable artifact store: train instead
            print(f"could not restore {request.job.run_name} from run {source} ({exc}): training it", flush=True)
            return None
        files = _folder_files(folder)
        digest = data.file_digest(folder / "weights.npz")
        if digest != client.get_run(source).data.tags.get("model_digest"):
            print(f"the cached model of {request.job.run_name} in run {source} is damaged: training it", flush=True)
            return None
        estimator = KerasMLPClassifier.load(folder)
    provenance = {RESTORED_FROM_TAG: source, "model_digest": digest}
    run_id = record_restored_model(client, request.experiment_id, request.parent_id, request.params, request.job,
                                   estimator, dict(request.lineage), provenance)
    return JobResult(request.job, run_id, files, digest, f"restored {request.job.run_name} from run {source} "
                                                         f"(the same job, trained before)")


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(request: JobRequest, splits: dict | None) -> JobResult:
    from bnlab.job_cache import ARTIFACT_DIR, JOB_KEY_TAG
    from bnlab.training import train_job  # TensorFlow: seconds, once per process

    client = _client(request)
    splits = splits or load_splits(request.files)
    sources = {name: path for name, path in request.files if name != "test"}
    estimator, run_id, probes = train_job(client, request.experiment_id, request.parent_id, request.params,
                                          request.job, splits, sources, dict(request.lineage))
    with tempfile.TemporaryDirectory() as tmp:
        folder = estimator.save(Path(tmp) / "model", format="npz")
        if probes is not None:
            write_csv(probes.probe_rows, PROBE_COLUMNS, folder / "probes.csv")
            write_csv(probes.step_rows, STEP_COLUMNS, folder / "steps.csv")
        files = _folder_files(folder)
        digest = data.file_digest(folder / "weights.npz")
        client.log_artifacts(run_id, str(folder), ARTIFACT_DIR)
    client.set_tag(run_id, "model_digest", digest)
    client.set_tag(run_id, JOB_KEY_TAG, request.job_key)  # last: a run with the key has the files
    last = {k: round(v[-1], 4) for k, v in estimator.history_.items()}
    return JobResult(request.job, run_id, files, digest,
                     f"trained {request.job.run_name} ({estimator.n_steps_} steps): {last}")


def write_csv(rows: list[dict], columns: tuple[str, ...], path) -> None:
    import pandas as pd

    # Rounded: stable, readable files; the values are far less precise than float64 anyway.
    pd.DataFrame(rows, columns=list(columns)).round(6).to_csv(path, index=False)

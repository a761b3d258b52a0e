"""One training job, start to finish, wherever it runs: in the stage's own process, in a local
worker, or in a process on a Dask worker. It connects to the store with what its request
carries, computes its cache key from what is installed where it runs, restores its model from
the run that trained the same job or trains it, and returns the files of its model folder as
bytes, which the stage writes into models/<experiment>/.

A job's run is opened, filled and ended by one owner (:func:`bnlab.tracking.runs.owned_run`):
FINISHED only once it holds its model, ``job/`` and its cache key; FAILED or KILLED otherwise.
TensorFlow is imported only when the first job runs, so a worker starts with the thread
settings of :mod:`bnlab.ml.tf_runtime`.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bnlab.core.atomic import is_write_error
from bnlab.data.mnist import file_digest
from bnlab.data.splits import load_split
from bnlab.experiments.jobs import Job, job_probes, job_settings
from bnlab.experiments.params import Params
from bnlab.ml import xla_cache
from bnlab.ml.probe_rows import SIGNIFICANT_DIGITS, TABLES


class JobFailed(RuntimeError):
    """A training job raised; the message names the job and what went wrong."""


@dataclass(frozen=True)
class JobRequest:
    """Everything a job needs, picklable: a worker started before the stage connected, or on
    another machine, has nothing else (no environment of the stage's)."""

    params: Params
    job: Job
    files: tuple[tuple[str, str], ...]  # (MLflow's dataset name, path of the split file)
    store: str  # the tracking URI, without credentials
    experiment_id: str
    parent_id: str
    lineage: tuple[tuple[str, str], ...]
    data_fingerprint: str
    code: str  # the stage's code fingerprint: a worker running other code refuses the job
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # never in a log


@dataclass(frozen=True)
class JobResult:
    job: Job
    run_id: str
    files: dict[str, bytes]  # model folder's relative path → bytes
    digest: str  # sha256 of weights.npz: which model this is
    summary: str  # one line for the stage's log
    restored: bool = False  # from the run that trained the same job before


def load_splits(files: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    """The splits by MLflow's name, read once per process (a worker trains several jobs), kept
    by each file's resolved path: a process that runs the stages of two projects reads each
    project's own files."""
    return _read_splits(tuple((name, str(Path(path).resolve())) for name, path in files))


def clear_splits_cache() -> None:
    """Forget the splits read so far (a process that hands its jobs to workers keeps none; a
    test that writes new splits where it read others)."""
    _read_splits.cache_clear()


@functools.lru_cache(maxsize=2)
def _read_splits(files: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    return {name: load_split(Path(path)) for name, path in files}


# The split files, as JSON, for the local workers' forkserver to read before it forks them
# (bnlab.execution.worker_image): the workers then share one copy of the images.
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
    """Restore the job from the run that trained it, or train it; any error comes back as
    :class:`JobFailed` naming the job. ``splits``: the data, where the files are not at hand
    (a Dask worker on another machine); else they are read from ``request.files``."""
    from bnlab.tracking.job_cache import code_fingerprint

    if request.code != code_fingerprint():
        raise JobFailed(
            f"job {request.job.run_name}: this worker runs other bnlab code than the stage "
            f"(install the same commit on every Dask worker)"
        )
    try:
        client = store_client(request)
        key = _job_key(request)
        return _restore(request, client, key) or _train(request, client, key, splits)
    except (KeyboardInterrupt, JobFailed):
        raise
    except Exception as exc:
        if is_write_error(exc):  # a full disk: the stage names the file (bnlab.core.atomic.write_error)
            raise
        raise JobFailed(f"job {request.job.run_name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        # The XLA programs it compiled, for the other workers now: a local worker is killed
        # when the stage ends, before its exit handlers could publish them.
        xla_cache.publish()
        return_freed_memory()


def return_freed_memory() -> None:
    """Give what the job freed back to the system: glibc keeps freed heap for reuse, so a worker
    would otherwise carry each job's leftovers into the next (measured: ~30 MiB a job).

    What survives the job is then left out of the garbage collector's later walks: TensorFlow's
    and MLflow's imports (about 470,000 objects where the first job imported them) and the
    programs kept for the next job of a configuration. Each job's full collection walked them
    all again: 0.25-0.4 s a job in the stage's own process, and a worker's grew with every
    configuration it met (docs/benchmarks.md, "The garbage collector")."""
    import gc

    from bnlab.execution import libc

    gc.collect()
    gc.freeze()
    libc.return_free_heap()


def store_client(request):
    """A client of the request's store, with its credentials (MLflow reads them from the
    environment, in this process only)."""
    from bnlab.tracking.runs import MlflowClient, mlflow  # seconds, once per process

    os.environ.update(dict(request.credentials))
    mlflow.set_tracking_uri(request.store)  # what MLflow's model logging writes through
    return MlflowClient(request.store)


def _job_key(request: JobRequest) -> str:
    """The per-job cache's key, from the settings and what this process runs."""
    from bnlab.ml.tf_runtime import runtime_settings  # TensorFlow: seconds, once per process
    from bnlab.tracking.job_cache import code_fingerprint, job_key, runtime_fingerprint

    experiment = request.params.experiment(request.job.experiment)
    probes = job_probes(experiment, request.job)
    return job_key(
        {**job_settings(experiment, request.job).model_dump(), "train_images": experiment.train_images},
        request.job.seed,
        probes and probes.model_dump(),
        request.data_fingerprint,
        code_fingerprint(),
        runtime_fingerprint(runtime_settings()),
    )


def _restore(request: JobRequest, client, key: str) -> JobResult | None:
    """The job's model from the run that trained it, checked against that run's digest, with
    a new run that says where it came from; None if there is none, or its files are gone or
    differ."""
    from bnlab.ml.estimator import KerasMLPClassifier
    from bnlab.tracking.job_cache import ARTIFACT_DIR, find_cached
    from bnlab.tracking.job_runs import record_restored_model
    from bnlab.tracking.runs import MODEL_DIGEST_TAG

    source = find_cached(client, request.experiment_id, key)
    if source is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(source, ARTIFACT_DIR, tmp))
        except Exception as exc:  # deleted artifacts, an unreachable artifact store: train instead
            print(f"could not restore {request.job.run_name} from run {source} ({exc}): training it", flush=True)
            return None
        files = _folder_files(folder)
        digest = file_digest(folder / "weights.npz")
        if digest != client.get_run(source).data.tags.get(MODEL_DIGEST_TAG):
            print(f"the cached model of {request.job.run_name} in run {source} is damaged: training it", flush=True)
            return None
        estimator = KerasMLPClassifier.load(folder)
    run_id = record_restored_model(
        client,
        request.experiment_id,
        request.parent_id,
        request.params,
        request.job,
        estimator,
        dict(request.lineage),
        digest,
        source,
    )
    return JobResult(
        request.job,
        run_id,
        files,
        digest,
        f"restored {request.job.run_name} from run {source} (the same job, trained before)",
        restored=True,
    )


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(request: JobRequest, client, key: str, splits: dict | None) -> JobResult:
    from bnlab.execution.training import fit_into_run, training_split  # TensorFlow: seconds, once per process
    from bnlab.tracking.job_cache import ARTIFACT_DIR, JOB_KEY_TAG
    from bnlab.tracking.job_runs import job_tags
    from bnlab.tracking.runs import MODEL_DIGEST_TAG, TRAINED, owned_run, provenance

    splits = splits or load_splits(request.files)
    sources = {name: path for name, path in request.files if name != "test"}
    tags = {**job_tags(request.job, request.parent_id, dict(request.lineage)), **provenance(TRAINED)}
    with owned_run(client, request.experiment_id, request.job.run_name, tags) as run_id:
        estimator, probes = fit_into_run(client, request.store, run_id, request.params, request.job, splits, sources)
        with tempfile.TemporaryDirectory() as tmp:
            folder = estimator.save(Path(tmp) / "model", format="npz")
            experiment = request.params.experiment(request.job.experiment)
            write_bn_statistics(estimator, training_split(experiment, splits)[0], folder)
            for probe in probes:
                for file, rows in probe.tables().items():
                    write_csv(rows, TABLES[file], folder / file)
            files = _folder_files(folder)
            digest = file_digest(folder / "weights.npz")
            client.log_artifacts(run_id, str(folder), ARTIFACT_DIR)
        client.set_tag(run_id, MODEL_DIGEST_TAG, digest)
        client.set_tag(run_id, JOB_KEY_TAG, key)  # last: a run with the key has the files
    last = {k: round(v[-1], 4) for k, v in estimator.history_.items()}
    return JobResult(
        request.job, run_id, files, digest, f"trained {request.job.run_name} ({estimator.n_steps_} steps): {last}"
    )


def write_bn_statistics(estimator, images, folder: Path) -> None:
    """A BN network's statistics of both kinds over the ``images`` it trained on, for evaluate
    to test it with each (:mod:`bnlab.ml.bn_statistics`); nothing without BN."""
    import numpy as np

    from bnlab.data.splits import flat_pixels
    from bnlab.ml import bn_statistics

    arrays = bn_statistics.both_kinds(estimator, flat_pixels(images))
    if arrays:
        with open(folder / bn_statistics.FILE, "wb") as handle:
            np.savez(handle, **arrays)


def write_csv(rows: list[dict], columns: tuple[str, ...], path) -> None:
    import pandas as pd

    # Rounded: stable, readable files; the values are far less precise than float64 anyway.
    frame = pd.DataFrame(rows, columns=list(columns))
    for column, digits in SIGNIFICANT_DIGITS.items():
        if column in frame:
            frame[column] = [float(f"{value:.{digits}g}") for value in frame[column]]
    frame.round({c: 6 for c in frame.columns if c not in SIGNIFICANT_DIGITS}).to_csv(path, index=False)

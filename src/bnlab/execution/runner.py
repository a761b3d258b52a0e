"""An experiment's jobs, from requests to model files: where they run (here, local workers or a
Dask cluster, as :mod:`bnlab.execution.settings` reads the environment), and the folder their
files go to. What the train stage calls between planning and writing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bnlab.execution.job import (
    JobRequest,
    JobResult,
    clear_splits_cache,
    load_splits,
    return_freed_memory,
    run_job,
    splits_env,
)
from bnlab.execution.local import run_all, start_forkserver, uses_workers
from bnlab.execution.settings import check_store_for_cluster, dask_scheduler, worker_count


@dataclass
class Placement:
    """Where an experiment's jobs run: ``workers`` local processes, or the Dask cluster at
    ``scheduler`` (``cluster``: a client of it); ``splits``: the data, read here (a cluster's
    machines may not have the files)."""

    workers: int
    scheduler: str | None
    splits: dict
    cluster: object = None

    def close(self) -> None:
        """Disconnect from the Dask cluster, if any (its jobs are stopped by :func:`running`)."""
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def describe(self, jobs: int) -> str:
        return f"the Dask cluster at {self.scheduler}" if self.scheduler else f"{min(self.workers, jobs)} worker(s)"


def place(n_jobs: int, files: tuple[tuple[str, str], ...], store: str) -> Placement:
    """Read the settings (bad ones are refused before any work) and the data (bad files are
    reported before the slow imports); connect to the Dask scheduler, or start the local
    workers' forkserver now, so that its TensorFlow import runs while this process does its own
    MLflow work. Either is done before the tracking store is asked anything."""
    workers, scheduler = worker_count(), dask_scheduler()
    if scheduler:
        check_store_for_cluster(scheduler, store)
    splits = load_splits(files)
    cluster = None
    if scheduler:
        from bnlab.execution.cluster import connect_scheduler

        cluster = connect_scheduler(scheduler)
    elif uses_workers(workers, n_jobs):
        start_forkserver(splits_env(files))
    return Placement(workers, scheduler, splits, cluster)


@contextmanager
def running(placement: Placement, requests: list[JobRequest]) -> Iterator[Iterator[JobResult]]:
    """The jobs' results as they finish; on leaving, every job still running is stopped (the
    first error stops them all). The placement stays open for more jobs (:meth:`Placement.close`)."""
    if placement.cluster is not None:
        from bnlab.execution.cluster import run_on_cluster

        results = run_on_cluster(run_job, requests, placement.cluster, placement.splits)
        try:
            yield results
        finally:
            results.close()
        return
    if uses_workers(placement.workers, len(requests)):  # jobs do not run here: 55 MB less in this process
        placement.splits = {}
        clear_splits_cache()
        return_freed_memory()
    results = run_all(run_job, requests, placement.workers)
    try:
        yield results
    finally:
        results.close()


def write_job_files(folder: Path, job_name: str, files: dict[str, bytes]) -> None:
    """A job's model folder, from the files its worker sent back."""
    for name, content in files.items():
        path = Path(folder) / job_name / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def summary_line(results: list[JobResult], placement: Placement) -> str:
    restored = sum(result.restored for result in results)
    return (
        f"{len(results)} jobs: {len(results) - restored} trained, {restored} restored from the runs that "
        f"trained them before, on {placement.describe(len(results))}"
    )

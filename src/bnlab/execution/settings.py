"""Where jobs run, as the environment says: ``BNLAB_WORKERS`` local worker processes (default:
the cores this process may use) or, with ``BNLAB_DASK_SCHEDULER`` set, a Dask cluster.
Neither is a param: they change no result, so changing them must not make DVC re-run a stage."""

from __future__ import annotations

import os

WORKERS_ENV = "BNLAB_WORKERS"
SCHEDULER_ENV = "BNLAB_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 20  # an unreachable scheduler is reported within this (plus start-up)


class WorkersError(ValueError):
    """A worker setting that cannot be used, or a worker that died; the message says which."""


def worker_count() -> int:
    """``BNLAB_WORKERS`` as a whole number of at least 1, else the cores available here."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if not text:
        return len(os.sched_getaffinity(0))
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise WorkersError(
            f"{WORKERS_ENV}={text!r}: expected the number of worker processes, a whole number "
            f"of at least 1 (unset: one per core, {len(os.sched_getaffinity(0))} here)"
        )
    return count


def dask_scheduler() -> str | None:
    """``BNLAB_DASK_SCHEDULER``, or None to run here."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def check_store_for_cluster(scheduler: str, store: str) -> None:
    """Remote workers cannot write to a SQLite file (or a local folder) on this machine."""
    if not store.startswith(("http://", "https://", "postgresql", "mysql", "mssql")):
        raise WorkersError(
            f"{SCHEDULER_ENV}={scheduler}: Dask workers write their runs to the tracking store "
            f"themselves, and {store} is a store on this machine only; set MLFLOW_TRACKING_URI to "
            f"a tracking server (`mlflow server`, docs/scale.md)"
        )

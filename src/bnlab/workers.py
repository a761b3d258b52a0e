"""Where training jobs run: one after another in this process, side by side on worker
processes, or on a Dask cluster; one job per worker at a time (each job single-threaded and
deterministic, so the results are the same bytes wherever they ran).

``BNLAB_WORKERS``: local worker processes (default: the cores this process may use).
``BNLAB_DASK_SCHEDULER``: a Dask scheduler's address; set, the jobs go to its workers.
Neither is a param: they change no result, so changing them must not make DVC re-run a stage.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

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
        raise WorkersError(f"{WORKERS_ENV}={text!r}: expected the number of worker processes, a whole number "
                           f"of at least 1 (unset: one per core, {len(os.sched_getaffinity(0))} here)")
    return count


def dask_scheduler() -> str | None:
    """``BNLAB_DASK_SCHEDULER``, or None to run here."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def check_store_for_cluster(scheduler: str, store: str) -> None:
    """Remote workers cannot write to a SQLite file (or a local folder) on this machine."""
    if not store.startswith(("http://", "https://", "postgresql", "mysql", "mssql")):
        raise WorkersError(f"{SCHEDULER_ENV}={scheduler}: Dask workers write their runs to the tracking store "
                           f"themselves, and {store} is a store on this machine only; set MLFLOW_TRACKING_URI to "
                           f"a tracking server (`mlflow server`, README: on a cluster)")


def connect_scheduler(address: str):
    """A Dask client of the scheduler at ``address``; :class:`WorkersError` naming it if it does
    not answer within CONNECT_TIMEOUT_S seconds."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise WorkersError(f"{SCHEDULER_ENV}={address}: the Dask scheduler is unreachable "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'})") from None


def run_all(task: Callable, requests: list, workers: int, cluster=None, shared=None) -> Iterator:
    """``task(request)`` for every request, results as they finish. On a Dask ``cluster`` (a
    client): on its workers, ``shared`` sent once to each and passed as ``task(request,
    shared)``. Else with one worker: here, in order; with more, on that many processes forked
    from the forkserver (:func:`start_forkserver`). The first error stops everything: the jobs
    still running are killed (here) or cancelled (Dask), the error is raised."""
    if cluster is not None:
        yield from _on_dask(task, requests, cluster, shared)
        return
    if workers == 1 or len(requests) <= 1:
        for request in requests:
            yield task(request)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(requests)), mp_context=start_forkserver(),
                               initializer=die_with_parent)
    try:
        pending = {pool.submit(task, request) for request in requests}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise WorkersError("a worker process died while training (killed, or out of memory); "
                                       "the jobs it was running did not finish") from None
    finally:
        stop(pool)


def start_forkserver(server_env: dict[str, str] | None = None):
    """The multiprocessing context local workers come from, its server started now (it imports
    TensorFlow for seconds, while this process goes on with its own work).

    Workers are forked from one server process that imported everything a job needs
    (:mod:`bnlab.worker_image`) and nothing else: they share those pages (TensorFlow's are
    about 650 MiB) instead of each importing its own, and start at once. Forking is safe there
    as it is not in this process: the server has never run TensorFlow, only imported it. It
    reads the environment once, when it starts, with ``server_env`` added (for it only)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_IMAGE])
    saved = dict(os.environ)
    os.environ.update(server_env or {})
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return context


WORKER_IMAGE = "bnlab.worker_image"


def _on_dask(task: Callable, requests: list, cluster, shared) -> Iterator:
    """Each job a Dask task. A worker that dies mid-job has its job re-run on another (Dask's
    own rescheduling); a job that fails on two workers fails the stage."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    data = cluster.scatter(shared, broadcast=True) if shared is not None else None
    futures = [cluster.submit(in_fresh_process, task, request, data, key=f"bnlab-{request.job.run_name}-{os.getpid()}",
                              pure=False) for request in requests]
    try:
        for future in as_completed(futures, loop=cluster.loop):
            try:
                yield future.result()
            except KilledWorker as exc:
                raise WorkersError(f"Dask workers died running {exc.task} again and again (killed, or out of "
                                   f"memory): the stage stops") from None
    finally:
        cluster.cancel(futures)


def in_fresh_process(task: Callable, *args):
    """On a Dask worker: ``task(*args)`` in a process spawned for it, as the local workers do.
    Run in the worker's own task thread, jobs now and then trained other last digits than the
    same job here (seen in tests, not explained); in a fresh process they never did. It also
    keeps a crashing job from taking the worker down. Costs a TensorFlow import per job."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=die_with_parent) as pool:
        return pool.submit(task, *args).result()


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers now: after an error nothing they would
    still write is wanted, and waiting for a running job could take minutes."""
    import psutil

    workers = [psutil.Process(pid) for pid in list(getattr(pool, "_processes", None) or {})
               if psutil.pid_exists(pid)]
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        try:
            worker.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(workers, timeout=10)


def die_with_parent() -> None:
    """In a worker: exit as soon as the process that started it (the stage, or a Dask worker)
    is gone, even killed by SIGKILL (which no Python code outlives), so that no orphan goes on
    training and writing runs. A forked worker's parent is the forkserver, which lives on as
    long as a worker does; so a thread waits on multiprocessing's sentinel of the process that
    asked for the worker. PR_SET_PDEATHSIG covers a spawned worker's parent and the forkserver
    (Linux only; elsewhere the thread does it)."""
    import signal
    import threading

    from bnlab import libc

    libc.die_with_parent_signal(signal.SIGKILL)
    starter = multiprocessing.parent_process()
    if starter is not None:
        threading.Thread(target=_exit_when_gone, args=(starter.sentinel,), daemon=True).start()


def _exit_when_gone(sentinel) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


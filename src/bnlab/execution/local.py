"""Jobs on this machine: one after another in this process, or side by side on worker
processes forked from a forkserver; one job per worker at a time (each job single-threaded and
deterministic, so the results are the same bytes wherever they ran), each to the worker that
has met its configuration (:mod:`bnlab.execution.affinity`)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from bnlab.execution.affinity import AffineQueue, configuration
from bnlab.execution.heap import keep_large_buffers
from bnlab.execution.settings import WorkersError

WORKER_IMAGE = "bnlab.execution.worker_image"  # what the forkserver imports for its workers


def uses_workers(workers: int, jobs: int) -> bool:
    """Whether jobs go to worker processes: more than one of each, else they run here."""
    return workers > 1 and jobs > 1


def run_all(task: Callable, requests: list, workers: int, key: Callable = configuration) -> Iterator:
    """``task(request)`` for every request, results as they finish: here, in order, or on
    ``workers`` processes forked from the forkserver (:func:`start_forkserver`), each job to the
    worker :class:`~bnlab.execution.affinity.AffineQueue` picks by its configuration (``key``).
    The first error stops everything: the jobs still running are killed, the error is raised."""
    if not uses_workers(workers, len(requests)):
        keep_large_buffers()  # as the workers do (bnlab.execution.worker_image)
        for request in requests:
            yield task(request)
        return
    context = start_forkserver()
    # One executor per worker, each with one long-lived process: the job goes to the worker
    # chosen for it, where its configuration may be compiled already.
    pools = [
        ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=die_with_parent)
        for _ in range(min(workers, len(requests)))
    ]
    queue = AffineQueue(requests, key)
    running = {}  # future → the worker running it
    try:

        def hand_out(worker: int) -> None:
            request = queue.take(worker)
            if request is not None:
                running[pools[worker].submit(task, request)] = worker

        for worker in range(len(pools)):
            hand_out(worker)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                worker = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise WorkersError(
                        "a worker process died while training (killed, or out of memory); "
                        "the jobs it was running did not finish"
                    ) from None
                hand_out(worker)
                yield result
    finally:
        for pool in pools:
            stop(pool)


def start_forkserver(server_env: dict[str, str] | None = None):
    """The multiprocessing context local workers come from, its server started now (it imports
    TensorFlow for seconds, while this process goes on with its own work).

    Workers are forked from one server process that imported everything a job needs
    (:mod:`bnlab.execution.worker_image`) and nothing else: they share those pages (TensorFlow's are
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


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers now: after an error nothing they would
    still write is wanted, and waiting for a running job could take minutes."""
    import psutil

    workers = [psutil.Process(pid) for pid in list(getattr(pool, "_processes", None) or {}) if psutil.pid_exists(pid)]
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

    from bnlab.execution import libc

    libc.die_with_parent_signal(signal.SIGKILL)
    starter = multiprocessing.parent_process()
    if starter is not None:
        threading.Thread(target=_exit_when_gone, args=(starter.sentinel,), daemon=True).start()


def _exit_when_gone(sentinel) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)

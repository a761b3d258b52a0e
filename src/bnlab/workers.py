"""Where training jobs run: one after another in this process, or side by side on worker
processes, one job per worker at a time (each job single-threaded and deterministic, so the
results are the same bytes either way).

The number of workers is ``BNLAB_WORKERS`` (default: the cores this process may use). It is not
a param: it changes no result, so changing it must not make DVC re-run a stage.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

WORKERS_ENV = "BNLAB_WORKERS"


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


def run_all(task: Callable, requests: list, workers: int) -> Iterator:
    """``task(request)`` for every request, results as they finish. One worker: here, in
    order. More: on that many fresh processes (spawned: TensorFlow is not fork-safe). The first
    error stops everything: the jobs still running are killed, the error is raised."""
    if workers == 1 or len(requests) <= 1:
        for request in requests:
            yield task(request)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(requests)), mp_context=context,
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
    """In a worker: be killed when the stage's process dies, even by SIGKILL (which no Python
    code outlives), so that no orphan goes on training and writing runs. Linux only; elsewhere
    an orphan ends at its next job, when it finds the pool gone."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1  # linux/prctl.h

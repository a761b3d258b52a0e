"""Jobs on a Dask cluster (``BNLAB_DASK_SCHEDULER``): each job a Dask task, run on its worker
in a Python process of its own.

Why a process of its own: run in the worker's task thread, jobs now and then trained other last
digits than the same job elsewhere (seen in tests, not explained); in a fresh process they never
did, and a crashing job cannot take the worker down. Why ``subprocess`` and not
``multiprocessing``: a worker started with its nanny (``dask worker``'s default, and
dask-jobqueue's and dask-kubernetes') is a daemonic process, and multiprocessing refuses
children there. Costs a TensorFlow import per job.

Run as ``python -m bnlab.execution.cluster PARENT_PID``, this module is that process: it reads a
pickled ``(task, args)`` on stdin and writes the pickled outcome on stdout.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

from bnlab.execution.affinity import AffineQueue, configuration
from bnlab.execution.settings import CONNECT_TIMEOUT_S, SCHEDULER_ENV, WorkersError


def connect_scheduler(address: str):
    """A Dask client of the scheduler at ``address``; :class:`WorkersError` naming it if it does
    not answer within CONNECT_TIMEOUT_S seconds."""
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "no answer"
        raise WorkersError(
            f"{SCHEDULER_ENV}={address}: the Dask scheduler is unreachable ({type(exc).__name__}: {first})"
        ) from None


def run_on_cluster(task: Callable, requests: list, cluster, shared, key: Callable = configuration) -> Iterator:
    """``task(request, shared)`` for every request on the cluster's workers, ``shared`` sent once
    to each; results as they finish. Each worker thread is handed one job at a time, chosen by
    :class:`~bnlab.execution.affinity.AffineQueue` for the worker's machine (whose program cache
    holds what its jobs compiled); workers that join later get jobs too. A worker that dies
    mid-job has its job re-run on another (Dask's own rescheduling, up to its
    ``distributed.scheduler.allowed-failures``, 3 by default); a job whose workers keep dying, or
    that raises, fails the stage. The first error cancels the rest."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    data = cluster.scatter(shared, broadcast=True) if shared is not None else None
    queue = AffineQueue(requests, key)
    running = {}  # future → the worker it was handed to
    finished = as_completed(loop=cluster.loop)  # futures added while it is read are read too

    def hand_out() -> None:
        """A job for every free worker thread, as long as jobs are left."""
        for address, threads in _worker_threads(cluster).items():
            for _ in range(threads - sum(worker == address for worker in running.values())):
                request = queue.take(_machine(address))
                if request is None:
                    return
                future = cluster.submit(
                    in_fresh_process,
                    task,
                    request,
                    data,
                    key=f"bnlab-{request.job.run_name}-{os.getpid()}",
                    pure=False,
                    workers=[address],
                    allow_other_workers=True,  # its worker gone: any other
                )
                running[future] = address
                finished.add(future)

    try:
        hand_out()
        for future in finished:
            running.pop(future)
            try:
                result = future.result()
            except KilledWorker as exc:
                raise WorkersError(
                    f"Dask workers died running {exc.task} again and again (killed, or out of memory): the stage stops"
                ) from None
            hand_out()
            yield result
    finally:
        cluster.cancel(list(running))


def _worker_threads(cluster) -> dict[str, int]:
    """Each worker's address and threads; waits for a first worker where there is none yet."""
    workers = cluster.scheduler_info()["workers"]
    if not workers:
        cluster.wait_for_workers(1)
        workers = cluster.scheduler_info()["workers"]
    return {address: int(info.get("nthreads", 1)) for address, info in workers.items()}


def _machine(address: str) -> str:
    """tcp://10.0.0.5:40331 → 10.0.0.5: the workers of one machine share its program cache."""
    return address.split("://")[-1].rsplit(":", 1)[0]


def in_fresh_process(task: Callable, *args):
    """On a Dask worker: ``task(*args)`` in a new Python process; its result, or its error
    raised here."""
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    out, _ = process.communicate(pickle.dumps((task, args)))
    if process.returncode != 0 or not out:
        raise WorkersError(f"the job's process on this Dask worker died (exit status {process.returncode})")
    succeeded, value = pickle.loads(out)
    if not succeeded:
        raise value
    return value


def _serve_one(parent_pid: int) -> None:
    """The fresh process: one task from stdin, its outcome to stdout. What the task prints goes
    to stderr (the worker's log), so stdout carries the outcome only."""
    from bnlab.execution import heap, libc

    libc.die_with_parent_signal(signal.SIGKILL)  # the worker killed: this job with it
    heap.keep_large_buffers()
    if os.getppid() != parent_pid:  # it died before the line above
        sys.exit(1)
    outcome = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    task, args = pickle.load(sys.stdin.buffer)
    try:
        result = (True, task(*args))
    except Exception as exc:  # KeyboardInterrupt and SystemExit end the process instead
        result = (False, exc)
    outcome.write(pickle.dumps(result))
    outcome.close()


if __name__ == "__main__":
    _serve_one(int(sys.argv[1]))

"""How far two processes on this machine's two cores can scale at all: the same work, once alone
and twice side by side, alternating. It is the ceiling for any speed-up of the train stage's
workers (`parallel_jobs.py`), which adds start-up, scheduling and compiling on top.

Two kinds of work, each in fresh processes that finish their warm-up (imports, compiling)
before a shared start signal, so only the timed work overlaps:

- ``fit``: warm `notebook` fits (`KerasMLPClassifier` defaults, 10 epochs on the 55,000 prepared
  images, per-epoch evaluation included), the train stage's own work;
- ``job``: the same fits as a train worker makes them (the `notebook` job's probes, MLflow's
  logging and system metrics), each process into its own scratch store; ``job-shared``: into
  one store for both (made before they start), as a stage's workers share the project's;
- ``matmul``: float32 products of 256 × 256 matrices in NumPy on one thread, arithmetic that
  stays in each core's caches (0.5 MB), as a yardstick for the cores alone.

    python benchmarks/core_scaling.py [--repeat 3]   # needs `dvc repro split` first

Scaling = 2 × (one process's seconds alone) / (the slower of the two side by side): 2.00x when
the two cores share nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from alternating import ROOT, machine
from fit_profile import profile_store

from bnlab.core import layout

FITS = 2  # timed fits per process: about 5 s
MATMULS = 6000  # about 2 s on one core


def load(name: str):
    """A prepared split as the train stage passes it: uint8 pixels in rows (the estimator scales
    them)."""
    from bnlab.data.splits import flat_pixels, load_split

    x, y = load_split(ROOT / layout.split_file(name))
    return flat_pixels(x), y


def fit_work(stack: ExitStack):
    """The warm-up (one fit: compiling) and the timed work (``FITS`` more fits)."""
    from bnlab import KerasMLPClassifier

    x, y = load("train")
    validation = load("val")

    def fit() -> None:
        KerasMLPClassifier(random_state=0).fit(x, y, validation_data=validation)

    return fit, lambda: [fit() for _ in range(FITS)]


def job_work(stack: ExitStack, store_folder: Path | None = None):
    """The same fits as a train worker makes them (``fit_into_run``: the notebook job's probes,
    MLflow's logging and system metrics), into this process's own scratch store, or into the
    store in ``store_folder``."""
    from fit_profile import fitting

    fit_once, _, _ = stack.enter_context(fitting("notebook", store_folder))
    return fit_once, lambda: [fit_once() for _ in range(FITS)]


def matmul_work(stack: ExitStack):
    import numpy as np

    a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)

    def products(count: int) -> None:
        b = a
        for _ in range(count):
            b = (a @ b) * np.float32(0.01)

    return lambda: products(100), lambda: products(MATMULS)


def child(kind: str, go: Path) -> None:
    """Warm up, say so, wait for ``go`` to exist, then time the work."""
    shared = functools.partial(job_work, store_folder=go.parent / "store")
    with ExitStack() as stack:  # what the work holds open (a scratch store) while it runs
        warm_up, work = {"fit": fit_work, "job": job_work, "job-shared": shared, "matmul": matmul_work}[kind](stack)
        warm_up()
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.01)
        started = time.perf_counter()
        work()
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def side_by_side(kind: str, processes: int) -> float:
    """Seconds of the slowest of ``processes`` children doing the same work at once."""
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        (Path(tmp) / "store").mkdir()
        if kind == "job-shared":  # the store and its experiment made once, before the processes
            profile_store(Path(tmp) / "store")
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", kind, str(go)], stdout=subprocess.PIPE, text=True, env=env
            )
            for _ in range(processes)
        ]
        for process in children:
            assert process.stdout.readline().strip() == "ready"
        go.touch()
        seconds = [json.loads(process.stdout.read().strip().splitlines()[-1])["seconds"] for process in children]
        for process in children:
            if process.wait() != 0:
                raise SystemExit(f"a {kind} child failed")
        return max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["fit", "matmul"], choices=["fit", "job", "job-shared", "matmul"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    if {"fit", "job", "job-shared"} & set(args.kinds) and not (ROOT / layout.split_file("train")).exists():
        sys.exit("benchmarks/core_scaling.py: run `dvc repro split` first (needs data/prepared)")
    print(machine(), flush=True)
    alone = {kind: [] for kind in args.kinds}
    together = {kind: [] for kind in args.kinds}
    for round_ in range(1, args.repeat + 1):  # alternating, kinds too: a slow spell hits every arm
        for kind in args.kinds:
            alone[kind].append(side_by_side(kind, 1))
            together[kind].append(side_by_side(kind, 2))
            print(f"{kind} round {round_}: alone {alone[kind][-1]:.2f} s, two at once {together[kind][-1]:.2f} s")
    rows = []
    for kind in args.kinds:
        ratios = [2 * one / two for one, two in zip(alone[kind], together[kind], strict=True)]
        rows.append(
            (kind, statistics.median(alone[kind]), statistics.median(together[kind]), statistics.median(ratios))
        )
    print("\n| work | alone s (median) | two at once s (median) | scaling (median of the rounds') |\n|---|---|---|---|")
    for kind, one, two, ratio in rows:
        print(f"| {kind} | {one:.2f} | {two:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

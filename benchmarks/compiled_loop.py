"""The XLA-compiled, CPU-independent training loop against the loop it replaced, side by side.

Each round runs, in fresh processes and alternating so that a noisy neighbour hurts both alike,
the same fits with the code of ``--baseline`` (checked out in a temporary git worktree) and with
this working tree's: the default experiment's BN network (10 epochs on the 55,000 prepared
images, per-epoch evaluation of the training and validation sets, probes every 500 steps) and
the ioffe2015 network (3x100 sigmoid, SGD, batch 60, 3,000 steps, probes every 500 steps).
A process fits twice: the first fit pays for compiling ("cold"), the second is what every
further fit of that configuration in a worker costs ("warm").

    python benchmarks/compiled_loop.py [--baseline REV] [--repeats 3]   # needs `dvc repro split`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from alternating import ROOT, earlier_tree, in_fresh_process

PREPARED = ROOT / "data" / "prepared"
# The last commit whose loop ran TensorFlow's own kernels (oneDNN's sgemm), without XLA.
DEFAULT_BASELINE = "2b903b2"
NETWORKS = {
    "notebook": {"hidden_units": (32, 32), "epochs": 10},
    "ioffe2015": {
        "hidden_units": (100, 100, 100),
        "activation": "sigmoid",
        "optimizer": "sgd",
        "learning_rate": 2.0,
        "batch_size": 60,
        "steps": 3000,
        "init_std": 0.1,
    },
}


def load(name: str):
    import numpy as np

    with np.load(PREPARED / f"{name}.npz") as npz:
        return npz["x"].reshape(len(npz["x"]), -1), npz["y"].astype(np.int64)


def child(network: str) -> dict[str, float]:
    from bnlab import KerasMLPClassifier
    from bnlab.ml.probes import ProbeRecorder

    (x, y), validation, test = load("train"), load("val"), load("test")
    times = {}
    for fit in ("cold", "warm"):
        clf = KerasMLPClassifier(**NETWORKS[network], rescale=1 / 255, random_state=0)
        probes = ProbeRecorder(500, validation, test, n_hidden=len(clf.hidden_units), batch_size=clf.batch_size)
        clf.set_params(callbacks=[probes])
        start = time.perf_counter()
        clf.fit(x, y, validation_data=validation)
        times[fit] = time.perf_counter() - start
    return times


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=sorted(NETWORKS))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    with earlier_tree(args.baseline) as worktree:
        rounds = {name: {"baseline": [], "compiled": []} for name in NETWORKS}
        for _ in range(args.repeats):
            for name in NETWORKS:
                rounds[name]["baseline"].append(in_fresh_process(__file__, name, src=worktree / "src"))
                rounds[name]["compiled"].append(in_fresh_process(__file__, name, src=ROOT / "src"))
    print(f"{cpu_model()}, {os.cpu_count()} cores; baseline {args.baseline}; {args.repeats} rounds; medians\n")
    print("| network | fit | baseline s | compiled s | speed-up (median of the rounds' ratios) |")
    print("|---|---|---|---|---|")
    for name, runs in rounds.items():
        for fit in ("cold", "warm"):
            base = [r[fit] for r in runs["baseline"]]
            new = [r[fit] for r in runs["compiled"]]
            ratio = statistics.median(b / n for b, n in zip(base, new))
            print(f"| {name} | {fit} | {statistics.median(base):.2f} | {statistics.median(new):.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

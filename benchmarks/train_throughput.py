"""Training throughput: KerasMLPClassifier against plain Keras `model.fit`, as a ratio.

Each measurement runs in a fresh process (TensorFlow keeps state between fits), alternating
between the two so that a noisy neighbour hurts both alike. The reference network
(784-32-32-10, BN, Adam 0.01, batch 32) trains for 10 epochs on the 55,000 prepared training
images. Plain Keras runs with all defaults; the estimator additionally measures loss and
accuracy on the whole training set and on the 5,000 validation images after every epoch, as
the pipeline does.

    python benchmarks/train_throughput.py [--repeats 2]   # needs `dvc repro split` first
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PREPARED = Path("data/prepared")
EPOCHS = 10


def load(name: str):
    import numpy as np

    with np.load(PREPARED / f"{name}.npz") as npz:
        return npz["x"].reshape(len(npz["x"]), -1).astype("float32") / 255, npz["y"]


def child_keras() -> float:
    import keras

    x, y = load("train")
    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(784,))]
    for _ in range(2):
        layers += [keras.layers.Dense(32), keras.layers.BatchNormalization(), keras.layers.Activation("relu")]
    model = keras.Sequential(layers + [keras.layers.Dense(10)])
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=EPOCHS, verbose=0)
    return time.perf_counter() - start


def child_estimator() -> float:
    from bnlab import KerasMLPClassifier

    x, y = load("train")
    validation = load("val")
    clf = KerasMLPClassifier(random_state=0)
    start = time.perf_counter()
    clf.fit(x, y, validation_data=validation)
    return time.perf_counter() - start


def measure(kind: str) -> float:
    done = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=["keras", "estimator"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds = {"keras": child_keras, "estimator": child_estimator}[args.child]()
        print(json.dumps({"seconds": seconds}))
        return
    if not (PREPARED / "train.npz").exists():
        sys.exit("benchmarks/train_throughput.py: run `dvc repro split` first (needs data/prepared)")
    n = 55_000 * EPOCHS
    times = {"keras": [], "estimator": []}
    for i in range(args.repeats):
        for kind in times:
            times[kind].append(measure(kind))
            print(f"run {i + 1} {kind:9s} {times[kind][-1]:6.1f} s  {n / times[kind][-1]:8.0f} samples/s", flush=True)
    best = {kind: min(values) for kind, values in times.items()}  # least disturbed run
    print(
        f"\nmachine: {platform.machine()}, {platform.processor() or '?'}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    )
    print("| how | s (10 epochs) | samples/s |\n|---|---|---|")
    print(f"| Keras `model.fit(batch_size=32)`, defaults | {best['keras']:.1f} | {n / best['keras']:,.0f} |")
    print(
        f"| `KerasMLPClassifier.fit` (+ per-epoch train/val evaluation) | {best['estimator']:.1f} | "
        f"{n / best['estimator']:,.0f} |"
    )
    print(
        f"\nratio estimator / Keras: {best['keras'] / best['estimator']:.2f}x "
        f"(median runs: {statistics.median(times['keras']) / statistics.median(times['estimator']):.2f}x)"
    )


if __name__ == "__main__":
    main()

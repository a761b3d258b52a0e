"""What recomputing BN's statistics costs: one BN job's fit (moving averages, the default)
against the recomputation over the 55,000 training images that follows it ("precise BN",
bnlab.ml.bn_statistics), as a ratio measured in the same process, for the networks that use it.

Each network runs in a fresh process: the fit, then the recomputation twice (the first compiles
each layer's segment, the second runs compiled code only, as a second job of the same network
in a worker does). Networks: the notebook's (2 BN layers of 32), small_batches' at batch 32 (the
same network, 2 epochs) and yang2019_depth's deepest (50 BN layers of 384, 150 steps, batch 32).

    python benchmarks/bn_statistics_overhead.py [--repeats 2]   # needs `dvc repro split` first
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from alternating import alternate, machine
from fit_profile import profiled_job

NETWORKS = {  # (experiment, variant, grid point)
    "notebook": ("notebook", "batchnorm", ()),
    "small_batches": ("small_batches", "batchnorm", (("batch_size", 32),)),
    "yang2019_depth": ("yang2019_depth", "batchnorm", (("depth", 50), ("batch_size", 32))),
}


def child(network: str) -> dict:
    from bnlab.core.layout import SPLITS, split_file
    from bnlab.data.splits import flat_pixels, load_split
    from bnlab.execution.training import make_estimator
    from bnlab.experiments.params import load_params
    from bnlab.ml.bn_statistics import population_statistics

    name, variant, point = NETWORKS[network]
    experiment = load_params().experiment(name)
    splits = {n: load_split(split_file(stem)) for stem, n in SPLITS.items()}
    estimator = make_estimator(experiment, profiled_job(name, experiment, variant, 0, point))
    estimator.set_params(bn_statistics="moving")  # the fit alone; the recomputation is timed below
    (x, y), (x_val, y_val) = splits["train"], splits["validation"]
    x = flat_pixels(x)
    start = time.perf_counter()
    estimator.fit(x, y, validation_data=(flat_pixels(x_val), y_val))
    fit = time.perf_counter() - start
    times = []
    for _ in range(2):
        start = time.perf_counter()
        population_statistics(estimator.model_, x)
        times.append(time.perf_counter() - start)
    return {"fit": fit, "first": times[0], "again": times[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=sorted(NETWORKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/bn_statistics_overhead.py: run `dvc repro split` first (needs data/prepared)")
    found = alternate(
        __file__,
        list(NETWORKS),
        args.repeats,
        lambda r: f"fit {r['fit']:6.2f} s, recompute {r['first']:5.2f} s, again {r['again']:5.2f} s",
    )
    print(f"\n{machine()}")
    print("| network | fit (s) | recompute, first (s) | recompute, compiled (s) | first / fit |\n|---|---|---|---|---|")
    for network, runs in found.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("fit", "first", "again")}
        print(
            f"| {network} | {median['fit']:.2f} | {median['first']:.2f} | {median['again']:.2f} | "
            f"{median['first'] / median['fit']:.2f} |"
        )


if __name__ == "__main__":
    main()

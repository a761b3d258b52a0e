"""What recomputing BN's statistics costs: one BN job's fit (moving averages, the default)
against the recomputation over the 55,000 training images that follows it ("precise BN",
bnlab.ml.bn_statistics), as a ratio measured in the same process, for the networks that use it.

Each network runs in a fresh process: the fit, then the recomputation twice (the first compiles
each layer's segment, the second runs compiled code only, as a second job of the same network
in a worker does). Networks: the notebook's (2 BN layers of 32), small_batches' at batch 32 (the
same network, 2 epochs) and yang2019_depth's deepest (50 BN layers of 384, at batch 32: the
recomputation does not depend on the batch size or the steps).

    python benchmarks/bn_statistics_overhead.py [--repeats 2] [--networks yang2019_depth]
        [--against REV]   # needs `dvc repro split` first

``--against REV``: the same children with an earlier commit's code too (a git worktree, first on
``PYTHONPATH``), alternating with this tree's, and the recomputation's speed-up as the median of
the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from alternating import ROOT, alternate, earlier_tree, in_fresh_process, machine
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
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--against", help="an earlier commit, measured alternating with this tree")
    parser.add_argument("--child", choices=sorted(NETWORKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/bn_statistics_overhead.py: run `dvc repro split` first (needs data/prepared)")
    if args.against:
        compare(args.networks, args.repeats, args.against)
        return
    found = alternate(
        __file__,
        args.networks,
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


def compare(networks: list[str], repeats: int, revision: str) -> None:
    rounds = {network: {"earlier": [], "this tree": []} for network in networks}
    with earlier_tree(revision) as earlier:
        for round_ in range(1, repeats + 1):
            for network in networks:
                for arm, src in (("earlier", earlier / "src"), ("this tree", ROOT / "src")):
                    rounds[network][arm].append(in_fresh_process(__file__, network, src=src))
                    found = rounds[network][arm][-1]
                    times = f"recompute {found['first']:5.2f} s, again {found['again']:5.2f} s"
                    print(f"run {round_} {network} {arm:9s} {times}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True)
    print(f"\n{machine()}; earlier: {revision} ({commit.stdout.strip()})")
    print("| network | recompute, compiled: earlier (s) | this tree (s) | speed-up (median of the rounds' ratios) |")
    print("|---|---|---|---|")
    for network, arms in rounds.items():
        earlier_s, this_s = ([r["again"] for r in arms[arm]] for arm in ("earlier", "this tree"))
        ratio = statistics.median(e / t for e, t in zip(earlier_s, this_s, strict=True))
        print(f"| {network} | {statistics.median(earlier_s):.2f} | {statistics.median(this_s):.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

"""What computing BN's square root exactly costs a fit: the default experiment's BN network
trained with bnlab's pinned XLA flags (``xla_cpu_disable_platform_dependent_math``: ``sqrt``
then a division) against the same flags without that backend option (the CPU's ``rsqrt``
estimate plus Newton steps, one on AMD, two on Intel), as a ratio measured in the same run.

Each arm runs in a fresh process, alternating so that a noisy neighbour hurts both alike: a
first fit (compiling included) and then a second fit of the same configuration in the same
process (compiled, so its time is the arithmetic, the per-epoch evaluation and the copies).

    python benchmarks/exact_rsqrt.py [--repeats 3] [--epochs 3]   # needs `dvc repro split` first
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from alternating import alternate, machine

FIX = "--xla_backend_extra_options=xla_cpu_disable_platform_dependent_math"


def child(arm: str, epochs: int) -> dict:
    import bnlab.ml.tf_runtime  # noqa: F401  (sets XLA_FLAGS; XLA reads them at the first compile)
    from bnlab.ml import xla_cache

    xla_cache.turn_off()  # "cold" is a process's first fit, compiling included
    if arm == "estimate":
        os.environ["XLA_FLAGS"] = os.environ["XLA_FLAGS"].replace(FIX, "")
    from bnlab.core.layout import SPLITS, split_file
    from bnlab.data.splits import flat_pixels, load_split
    from bnlab.execution.training import make_estimator
    from bnlab.experiments.jobs import Job
    from bnlab.experiments.params import DEFAULT_EXPERIMENT, load_params

    splits = {name: load_split(split_file(stem)) for stem, name in SPLITS.items()}
    (x, y), (x_val, y_val) = splits["train"], splits["validation"]
    seconds = []
    for seed in (0, 1):
        estimator = make_estimator(
            load_params().experiment(DEFAULT_EXPERIMENT), Job(DEFAULT_EXPERIMENT, "batchnorm", seed)
        )
        estimator.set_params(epochs=epochs)
        start = time.perf_counter()
        estimator.fit(flat_pixels(x), y, validation_data=(flat_pixels(x_val), y_val))
        seconds.append(time.perf_counter() - start)
    return {"cold": seconds[0], "warm": seconds[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", choices=["exact", "estimate"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs)))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/exact_rsqrt.py: run `dvc repro split` first (needs data/prepared)")
    found = alternate(
        f"{__file__}",
        ["exact", "estimate"],
        args.repeats,
        lambda r: f"cold {r['cold']:6.2f} s, warm {r['warm']:6.2f} s",
        extra=["--epochs", str(args.epochs)],
    )
    print(f"\n{machine()}")
    print(f"| BN network, {args.epochs} epochs | cold fit, s (median) | warm fit, s (median) |\n|---|---|---|")
    median = {arm: {k: statistics.median(r[k] for r in runs) for k in ("cold", "warm")} for arm, runs in found.items()}
    for arm, label in [("estimate", "rsqrt estimate + Newton (unpinned)"), ("exact", "sqrt, then divide (pinned)")]:
        print(f"| {label} | {median[arm]['cold']:.2f} | {median[arm]['warm']:.2f} |")
    ratios = [e["warm"] / s["warm"] for e, s in zip(found["exact"], found["estimate"], strict=True)]
    print(
        f"\nwarm fit, exact / estimate, pair by pair: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()

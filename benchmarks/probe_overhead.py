"""What probes cost: the default experiment's network trained without probes, with probes
every 500 optimizer steps, with the weight-norm probe alone and with the sharpness probe alone at
the same steps, as ratios measured in the same run.

Each fit runs in a fresh process, alternating between the arms so that a noisy neighbour hurts
all alike; the fit includes the per-epoch evaluation of the whole training and validation
sets, as in the pipeline. Probes: 1,000 probe images, the whole validation and test sets, and
BN's training-mode accuracy, every 500 steps (34 probes in 17,190 steps). The weight-norm probe
(bnlab.ml.weight_norms): the hidden kernels copied before step 1 and every 500th step and
compared after it (35 watched steps, each run as a step of its own). The sharpness probe
(bnlab.ml.sharpness): λ_max of the training loss on the first 1,000 training images, 20 Lanczos
steps of Hessian-vector products, after step 1 and every 500th (35 measurements).

    python benchmarks/probe_overhead.py [--repeats 3]   # needs `dvc repro split` first
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from alternating import alternate, machine

EVERY = 500


ARMS = ["plain", "probes", "weight_norms", "sharpness"]
SHARPNESS_IMAGES = 1000


def child(arm: str) -> float:
    from bnlab.core.layout import SPLITS, split_file
    from bnlab.data.splits import flat_pixels, load_split
    from bnlab.execution.training import make_estimator, make_probes, make_sharpness, make_weight_norms
    from bnlab.experiments.jobs import Job
    from bnlab.experiments.params import load_params
    from bnlab.experiments.probe_params import ProbeParams, SharpnessParams

    experiment = load_params().experiment("notebook")
    if arm != "plain":
        sharpness = SharpnessParams(images=SHARPNESS_IMAGES, every_steps=EVERY) if arm == "sharpness" else None
        probes = ProbeParams(every_steps=EVERY, weight_norms=arm == "weight_norms", sharpness=sharpness)
        experiment = experiment.model_copy(update={"probes": probes})
    splits = {name: load_split(split_file(stem)) for stem, name in SPLITS.items()}
    estimator = make_estimator(experiment, Job("notebook", "batchnorm", 0))
    (x, y), (x_val, y_val) = splits["train"], splits["validation"]
    made = {
        "plain": lambda: None,
        "probes": lambda: make_probes(experiment, estimator, splits),
        "weight_norms": lambda: make_weight_norms(experiment, estimator, len(y)),
        "sharpness": lambda: make_sharpness(experiment, estimator, (x, y)),
    }[arm]()
    estimator.set_params(callbacks=[made] if made else None)
    start = time.perf_counter()
    estimator.fit(flat_pixels(x), y, validation_data=(flat_pixels(x_val), y_val))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"seconds": child(args.child)}))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/probe_overhead.py: run `dvc repro split` first (needs data/prepared)")
    found = alternate(__file__, ARMS, args.repeats, lambda r: f"{r['seconds']:6.2f} s")
    best = {k: min(r["seconds"] for r in v) for k, v in found.items()}
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in found.items()}
    print(f"\n{machine()}")
    print("| fit, BN network, 10 epochs | s (best) | s (median) |\n|---|---|---|")
    print(f"| without probes | {best['plain']:.2f} | {median['plain']:.2f} |")
    print(f"| with probes every {EVERY} steps | {best['probes']:.2f} | {median['probes']:.2f} |")
    print(f"| with the weight-norm probe alone | {best['weight_norms']:.2f} | {median['weight_norms']:.2f} |")
    print(f"| with the sharpness probe alone | {best['sharpness']:.2f} | {median['sharpness']:.2f} |")
    for arm in ARMS[1:]:
        print(
            f"\n{arm} overhead: {100 * (best[arm] / best['plain'] - 1):+.1f}% (best runs), "
            f"{100 * (median[arm] / median['plain'] - 1):+.1f}% (medians)"
        )


if __name__ == "__main__":
    main()

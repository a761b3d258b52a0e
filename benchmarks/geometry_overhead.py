"""What Santurkar et al.'s probes cost (bnlab.ml.geometry: the loss landscape along the step and
internal covariate shift): the santurkar experiment's BN network trained without probes, with
its activation probes only, and with its activation and landscape probes (not the sharpness
probe), as ratios measured in the same run.

Each arm runs in a fresh process, alternating between the arms so that a noisy neighbour hurts
all alike, and fits two seeds there, as a pipeline worker trains several jobs of one network:
the first fit pays for compiling the probes' XLA function, the second reuses it. In the
pipeline each worker trains 5 jobs of each of the experiment's 3 networks (30 jobs on 2 cores),
so the cost it sees is (first + 4 × second) / 5.

    BNLAB_XLA_CACHE=off python benchmarks/geometry_overhead.py [--repeats 3]   # after `dvc repro split`

(with the XLA program cache on, a first fit loads what an earlier run compiled)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from alternating import alternate, machine

EXPERIMENT, VARIANT = "santurkar", "batchnorm"
ARMS = ("none", "activations", "all")
JOBS_PER_WORKER = 5


def child(arm: str) -> dict:
    from bnlab.core.layout import SPLITS, split_file
    from bnlab.data.splits import flat_pixels, load_split
    from bnlab.execution.training import make_estimator, make_geometry, make_probes
    from bnlab.experiments.jobs import Job
    from bnlab.experiments.params import load_params

    experiment = load_params().experiment(EXPERIMENT)
    if arm == "activations":
        experiment = experiment.model_copy(update={"probes": experiment.probes.model_copy(update={"geometry": None})})
    splits = {name: load_split(split_file(stem)) for stem, name in SPLITS.items()}
    (x, y), (x_val, y_val) = splits["train"], splits["validation"]
    seconds = []
    for seed in (0, 1):
        estimator = make_estimator(experiment, Job(EXPERIMENT, VARIANT, seed))
        probes = (
            [] if arm == "none" else [make_probes(experiment, estimator, splits), make_geometry(experiment, estimator)]
        )
        estimator.set_params(callbacks=[p for p in probes if p is not None] or None)
        start = time.perf_counter()
        estimator.fit(flat_pixels(x), y, validation_data=(flat_pixels(x_val), y_val))
        seconds.append(time.perf_counter() - start)
    return {"first": seconds[0], "second": seconds[1]}


def pipeline_cost(run: dict) -> float:
    return (run["first"] + (JOBS_PER_WORKER - 1) * run["second"]) / JOBS_PER_WORKER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from bnlab.core.layout import split_file

    if not split_file("train").exists():
        sys.exit("benchmarks/geometry_overhead.py: run `dvc repro split` first (needs data/prepared)")
    found = alternate(
        __file__, list(ARMS), args.repeats, lambda r: f"first {r['first']:6.2f} s, second {r['second']:6.2f} s"
    )
    median = {
        arm: {key: statistics.median(r[key] for r in runs) for key in ("first", "second")}
        | {"pipeline": statistics.median(pipeline_cost(r) for r in runs)}
        for arm, runs in found.items()
    }
    print(f"\n{machine()}")
    print(
        f"| fit, {EXPERIMENT} {VARIANT} network, 10 epochs (median of {args.repeats}) | first fit in a process, s "
        f"| second fit, s | a worker's {JOBS_PER_WORKER} jobs, s per job |\n|---|---|---|---|"
    )
    for arm in ARMS:
        m = median[arm]
        print(f"| probes: {arm} | {m['first']:.2f} | {m['second']:.2f} | {m['pipeline']:.2f} |")
    for arm in ARMS[1:]:
        ratios = {key: 100 * (median[arm][key] / median["none"][key] - 1) for key in ("first", "second", "pipeline")}
        print(
            f"\nprobes {arm} vs none: {ratios['first']:+.1f}% (first fit), {ratios['second']:+.1f}% (second), "
            f"{ratios['pipeline']:+.1f}% (a worker's jobs)"
        )
    geometry = {key: 100 * (median["all"][key] / median["activations"][key] - 1) for key in ("first", "pipeline")}
    print(
        f"the geometry probes alone (all vs activations): {geometry['first']:+.1f}% (first fit), "
        f"{geometry['pipeline']:+.1f}% (a worker's jobs)"
    )


if __name__ == "__main__":
    main()

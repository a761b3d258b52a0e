"""Where a fit's time goes: one cold and one warm fit of each network, broken into parts.

Each network's two fits run in one fresh process, as a train worker runs them: the job's
estimator, probes and MLflow loggers exactly as the train stage builds them from params.yaml
(``fit_into_run`` into a run of a throw-away SQLite store). The first fit compiles every XLA
function of its configuration ("cold"); the second finds them compiled ("warm").

Timing: the functions that do each part are wrapped, and each wrapper counts the time spent in
it minus the time spent in wrappers it called (exclusive time), on the fitting thread:

- steps: the compiled training loop's calls (``loop.TimedSteps``);
- evaluation: the per-epoch loss and accuracy on the training and validation sets;
- statistics: BN's population statistics recomputed over the training set after training
  (``bn_statistics: recomputed``);
- probes: the probe callbacks (what they measure, not what they log);
- copies: copying a model's variables into and out of its configuration's template;
- mlflow: params, datasets, per-epoch and probe metrics, the served model, and starting and
  stopping the system-metrics monitor (its sampling thread's own cost falls on the other parts
  and is measured apart as the warm fit with the monitor against one without it);
- compiling: a cold part's time minus the same part's warm time, summed over steps,
  evaluation and probes (XLA compiles each function on its first call);
- python: the rest of the fit's wall time.

FLOPs are counted from the network's shape: a dense layer's matrix product costs 2·in·out per
row forward; a training step runs it forward and twice backward (weight and input gradients;
the first layer has no input gradient). Normalization, activations and the optimizer's update
are left out (under 3% of the products for these networks). A core's AVX2 peak is 32 FLOP per
cycle (two 256-bit FMA units, 8 float32 lanes, 2 FLOP per FMA) at the clock /proc/cpuinfo
gives; a fit runs on one thread (bnlab.ml.tf_runtime).

    python benchmarks/fit_profile.py [--networks notebook ...]   # needs `dvc repro split`
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from alternating import machine, store_in

from bnlab.core.cpu import first_processor

ROOT = Path(__file__).resolve().parents[1]
# (experiment in params.yaml, variant, grid point): BN networks, the costlier arm of each.
NETWORKS = {
    "notebook": ("notebook", "batchnorm", ()),
    "ioffe2015": ("ioffe2015", "batchnorm", ()),
    "small_batches": ("small_batches", "batchnorm", (("batch_size", 2),)),
}
# The deepest networks (50 × 384): one step at batch 8 (the gradients at initialization), and
# the trainability map's deepest cells, at batch 128 and at batch 8 (half the map's jobs).
DEEP_NETWORKS = {
    "yang2019": ("yang2019", "batchnorm", (("batch_size", 8),)),
    "yang2019_depth": ("yang2019_depth", "batchnorm", (("depth", 50), ("batch_size", 128))),
    "yang2019_depth_batch8": ("yang2019_depth", "batchnorm", (("depth", 50), ("batch_size", 8))),
}
PROFILED = {**NETWORKS, **DEEP_NETWORKS}
PARTS = ("steps", "evaluation", "statistics", "probes", "copies", "mlflow")
COMPILED_PARTS = ("steps", "evaluation", "statistics", "probes")
AVX2_FLOP_PER_CYCLE = 32
PROFILE_EXPERIMENT = "profile"  # the scratch store's one experiment


def profiled_job(name: str, experiment, variant: str, seed: int, point: tuple):
    """The job profiled; an experiment that tunes gets the middle candidate of each tuned
    setting (its own runs train at whatever their selection chose)."""
    from bnlab.experiments.jobs import Job

    grid = experiment.tune.grid if experiment.tune else {}
    return Job(name, variant, seed, point, tuple((key, values[len(values) // 2]) for key, values in grid.items()))


class ExclusiveTimer:
    """Seconds per part, each call's time minus the time of the wrapped calls it made."""

    def __init__(self):
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._stack: list[list[float]] = []  # per open call: [time spent in wrapped callees]
        self._thread = threading.get_ident()

    def wrap(self, part: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if threading.get_ident() != self._thread:
                return function(*args, **kwargs)
            self._stack.append([0.0])
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                (inner,) = self._stack.pop()
                self.seconds[part] += elapsed - inner
                if self._stack:
                    self._stack[-1][0] += elapsed

        return timed

    def patch(self, owner, name: str, part: str) -> None:
        setattr(owner, name, self.wrap(part, getattr(owner, name)))

    def reset(self) -> dict[str, float]:
        found, self.seconds = self.seconds, dict.fromkeys(PARTS, 0.0)
        return found


def instrument(timer: ExclusiveTimer, with_system_metrics: list[bool]) -> None:
    """Wrap the functions of each part (module attributes, looked up at call time)."""
    from bnlab.execution import training
    from bnlab.ml import compiled, loop
    from bnlab.ml import estimator as estimator_module
    from bnlab.ml.estimator import KerasMLPClassifier
    from bnlab.ml.geometry import GeometryProbe
    from bnlab.ml.init_gradients import InitGradientProbe
    from bnlab.ml.probes import ProbeRecorder
    from bnlab.tracking import logged

    timer.patch(loop.TimedSteps, "__call__", "steps")
    timer.patch(KerasMLPClassifier, "_evaluate_epoch", "evaluation")
    timer.patch(estimator_module, "population_statistics", "statistics")  # imported there by name
    for probe, methods in (
        (ProbeRecorder, ("set_model", "on_step_end")),
        (GeometryProbe, ("set_model", "on_train_batch_begin", "on_train_batch_end")),
        (InitGradientProbe, ("set_model", "on_train_batch_begin", "on_train_batch_end")),
    ):
        for method in methods:
            timer.patch(probe, method, "probes")
    timer.patch(compiled, "_copy", "copies")
    for name in ("log_metrics", "log_params", "log_datasets"):
        timer.patch(logged, name, "mlflow")
    timer.patch(training, "log_served_model", "mlflow")
    monitored = logged.system_metrics

    @contextmanager
    def system_metrics(store, run_id):
        if not with_system_metrics[0]:
            yield
            return
        started = timer.wrap("mlflow", lambda: monitored(store, run_id))()
        timer.wrap("mlflow", started.__enter__)()
        try:
            yield
        finally:
            timer.wrap("mlflow", started.__exit__)(None, None, None)

    logged.system_metrics = system_metrics


def network_flops(estimator, n_features: int, n_classes: int) -> tuple[int, int]:
    """(forward FLOPs per row, training FLOPs per row) of the dense layers' products."""
    widths = [n_features, *estimator.layer_units(), n_classes]
    products = [2 * a * b for a, b in zip(widths, widths[1:])]
    return sum(products), sum(products) * 3 - products[0]


def profile_store(folder: Path) -> tuple[str, str]:
    """The scratch store in ``folder`` with the profile's experiment: its URI and the
    experiment's id."""
    return store_in(folder, PROFILE_EXPERIMENT)


@contextmanager
def fitting(network: str, store_folder: Path | None = None):
    """A function that fits ``network``'s first job exactly as a train worker does
    (``fit_into_run``, into a run of a scratch SQLite store) and returns its wall seconds and
    the estimator; and the experiment and the splits. ``store_folder``: the store's folder,
    shared with other processes (kept), else a temporary one."""
    os.chdir(ROOT)
    from bnlab.data.splits import load_split
    from bnlab.execution.training import fit_into_run
    from bnlab.experiments.params import load_params
    from bnlab.pipeline.stages.train import split_files
    from bnlab.tracking.runs import MlflowClient

    experiment_name, variant, point = PROFILED[network]
    params = load_params()
    experiment = params.experiment(experiment_name)
    job = profiled_job(experiment_name, experiment, variant, experiment.seeds[0], point)
    files = split_files(experiment)
    splits = {name: load_split(Path(path)) for name, path in files}
    sources = {name: path for name, path in files if name != "test"}
    with tempfile.TemporaryDirectory() as tmp:
        store, experiment_id = profile_store(store_folder or Path(tmp))
        os.environ["MLFLOW_TRACKING_URI"] = store  # the served model is logged through it, as in a job
        client = MlflowClient(store)

        def fit_once():
            run_id = client.create_run(experiment_id).info.run_id
            started = time.perf_counter()
            estimator, _ = fit_into_run(client, store, run_id, params, job, splits, sources)
            wall = time.perf_counter() - started
            client.set_terminated(run_id)
            return wall, estimator

        yield fit_once, experiment, splits


def child(network: str) -> dict:
    """Three fits of ``network`` in this process: cold, warm, warm without system metrics."""
    with_system_metrics = [True]
    timer = ExclusiveTimer()
    instrument(timer, with_system_metrics)
    fits = {}
    with fitting(network) as (fit_once, experiment, splits):
        for fit in ("cold", "warm", "warm, no system metrics"):
            with_system_metrics[0] = fit != "warm, no system metrics"
            wall, estimator = fit_once()
            fits[fit] = {"wall": wall, **timer.reset()}
    rows = {"train": len(splits["train"][1]), "val": len(splits["validation"][1]), "test": len(splits["test"][1])}
    shape = (estimator.n_features_in_, len(estimator.classes_))
    return {
        "fits": fits,
        "steps": int(estimator.n_steps_),
        "epochs": int(estimator.n_iter_),
        "batch_size": int(estimator.batch_size),
        "flops": part_flops(
            experiment.probes, estimator, estimator.n_steps_, estimator.n_iter_, estimator.batch_size, rows, shape
        ),
    }


def part_flops(probes, estimator, steps: int, epochs: int, batch: int, rows: dict, shape: tuple) -> dict[str, int]:
    """The FLOPs of a fit's parts (the module's docstring): ``steps`` optimizer steps of
    ``batch`` rows over ``epochs`` epochs, ``rows`` the train, val and test rows, ``shape`` the
    features and classes, ``probes`` the fit's ProbeParams or None."""
    forward, training = network_flops(estimator, *shape)
    measured = min(rows["train"], estimator.measure_rows or rows["train"])  # the rows the training set is measured on
    recomputed = estimator.batch_norm and estimator.bn_statistics == "recomputed"
    return {
        "steps": training * min(steps * batch, epochs * rows["train"]),
        "evaluation": forward * epochs * (measured + rows["val"]),
        # at most one forward pass over the measured rows (less the layers after the last BN)
        "statistics": forward * measured if recomputed else 0,
        "probes": forward * probe_rows(probes, estimator.batch_norm, steps, rows["test"]),
    }


def probe_rows(probes, batch_norm: bool, steps: int, n_test: int) -> int:
    """Rows a fit's probes run forward: at each probe, the probe images twice (the hidden
    layers' values and the predictions), the test set, and (BN) the probe images in
    training mode."""
    if probes is None:
        return 0
    per_probe = 2 * probes.images + n_test + (probes.images if batch_norm else 0)
    return steps // probes.every_steps * per_probe


def measure(network: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", network],
        # No program cache: a cold fit compiles everything (benchmarks/xla_cache.py measures the cache)
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BNLAB_XLA_CACHE": "off"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        raise SystemExit(f"{network}: the profiling process failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clock_ghz() -> float:
    """The clock /proc/cpuinfo gives (on these virtual machines, the nominal one)."""
    return float(first_processor().get("cpu MHz", "nan")) / 1000


def breakdown(result: dict, fit: str) -> dict[str, float]:
    """A fit's seconds per part, compiling split off the cold fit's compiled parts."""
    seconds = dict(result["fits"][fit])
    warm = result["fits"]["warm"]
    if fit == "cold":
        seconds["compiling"] = 0.0
        for part in COMPILED_PARTS:
            extra = max(0.0, seconds[part] - warm[part])
            seconds[part] -= extra
            seconds["compiling"] += extra
    else:
        seconds["compiling"] = 0.0
    seconds["system metrics"] = max(0.0, warm["wall"] - result["fits"]["warm, no system metrics"]["wall"])
    seconds["python"] = seconds["wall"] - sum(seconds[p] for p in (*PARTS, "compiling"))
    return seconds


def table(results: dict[str, dict], peak: float) -> str:
    rows = [
        "| network | fit | part | seconds | share | GFLOP | GFLOP/s | of AVX2 peak |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for network, result in results.items():
        for fit in ("cold", "warm"):
            seconds = breakdown(result, fit)
            for part in (*PARTS, "compiling", "python", "wall"):
                flops = result["flops"].get(part) if part != "wall" else sum(result["flops"].values())
                rate = flops / seconds[part] / 1e9 if flops and seconds[part] > 0 else None
                rows.append(
                    f"| {network} | {fit} | {part} | {seconds[part]:.2f} | {seconds[part] / seconds['wall']:.0%} | "
                    + (f"{flops / 1e9:.1f} | {rate:.1f} | {rate / peak:.0%} |" if rate else "– | – | – |")
                )
    return "\n".join(rows)


def summary(results: dict[str, dict]) -> str:
    rows = [
        "| network | steps × batch | warm fit s | steps + evaluations s | ratio | with the probes' evaluations s "
        "| ratio | system metrics s (warm) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for network, result in results.items():
        warm = breakdown(result, "warm")
        arithmetic = warm["steps"] + warm["evaluation"] + warm["statistics"]  # every pass over the splits
        probed = arithmetic + warm["probes"]
        rows.append(
            f"| {network} | {result['steps']} × {result['batch_size']} | {warm['wall']:.2f} | {arithmetic:.2f} "
            f"| {warm['wall'] / arithmetic:.2f}× | {probed:.2f} | {warm['wall'] / probed:.2f}× "
            f"| {warm['system metrics']:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(PROFILED), default=list(PROFILED))
    parser.add_argument("--child", choices=sorted(PROFILED))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results = {network: measure(network) for network in args.networks}
    peak = AVX2_FLOP_PER_CYCLE * clock_ghz()
    print(f"{machine()}, {clock_ghz():.2f} GHz; one thread per fit; AVX2 peak {peak:.1f} GFLOP/s\n")
    print(summary(results) + "\n")
    print(table(results, peak))
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()

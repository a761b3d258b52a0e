"""Write this CPU kind's fingerprint: tests/data/cpu_fingerprints/<vendor>-<family>-<model>.json.

    make fingerprint        (or: .venv/bin/python tools/cpu_fingerprint.py [--out FILE])

It holds what decides bnlab's bytes on this machine and what they came out as:
- ``reference_fits``: sha256 of the weights, ``predict_proba`` and probe rows of short fits
  through every compiled path (tests/vendor_fits.py: plain, BN with the noise layers, batch
  renorm, LayerNorm, GroupNorm, each with the step, geometry and init-gradient probes);
- ``kernels``: per kernel XLA compiled for the default experiment's configurations (each
  variant's training steps, probes and inference), the sha256 of its object code, optimized
  IR and optimized HLO, its x86 intrinsics and the symbols it calls outside (``powf``);
- ``cpu`` (vendor, family, model, name, flags), ``numpy`` (its SIMD baseline, the targets it
  dispatches to and those it runs here), ``glibc``, TensorFlow's version.

tests/test_cpu_fingerprints.py compares this machine with every committed file. Whoever first
runs the tests on a CPU kind without a file adds one (CONTRIBUTING.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tests" / "data" / "cpu_fingerprints"
KERNEL_ROWS = 1048  # 32 batches and a partial one of 24 rows, as 55,000 training rows give at batch 32


def cpu_identity(cpuinfo: str | None = None) -> dict:
    """The first processor's vendor, family, model, name and flags from /proc/cpuinfo."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    first = text.split("\n\n")[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return {
        "vendor": fields.get("vendor_id", "unknown"),
        "family": fields.get("cpu family", "unknown"),
        "model": fields.get("model", "unknown"),
        "name": fields.get("model name", "unknown"),
        "flags": sorted(fields.get("flags", "").split()),
    }


def file_name(cpu: dict) -> str:
    return f"{cpu['vendor']}-{cpu['family']}-{cpu['model']}.json"


def default_experiment_kernels(dump: Path) -> None:
    """Compile what the default experiment's jobs compile (one short fit per variant with the
    experiment's probes, then inference), dumping every program into ``dump``."""
    import bnlab.ml.tf_runtime  # noqa: F401  (pins XLA_FLAGS before the dump flags are added)
    from bnlab.ml import xla_dump

    xla_dump.dump_to(dump)
    import numpy as np

    from bnlab.execution.training import make_estimator, make_geometry, make_init_gradients, make_probes
    from bnlab.experiments.jobs import jobs
    from bnlab.experiments.params import DEFAULT_EXPERIMENT, load_params
    from bnlab.ml.fixed_order import INFERENCE_ROWS

    experiment = load_params(ROOT / "params.yaml").experiments[DEFAULT_EXPERIMENT]
    if experiment.probes is not None:  # probe within the short fit, so that the probes compile too
        experiment = experiment.model_copy(update={"probes": experiment.probes.model_copy(update={"every_steps": 16})})
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (KERNEL_ROWS, 784), np.uint8)
    y = np.arange(KERNEL_ROWS, dtype=np.uint8) % 10
    splits = {"validation": (x[:1000].reshape(-1, 28, 28), y[:1000]), "test": (x[:1000].reshape(-1, 28, 28), y[:1000])}
    first_seed = [job for job in jobs(DEFAULT_EXPERIMENT, experiment) if job.seed == experiment.seeds[0]]
    for job in first_seed:
        estimator = make_estimator(experiment, job)
        probes = [
            make_probes(experiment, estimator, splits),
            make_geometry(experiment, estimator),
            make_init_gradients(experiment, estimator),
        ]
        estimator.set_params(epochs=1, steps=None, callbacks=[p for p in probes if p is not None])
        estimator.fit(x, y, validation_data=(x[:1000], y[:1000]))
        estimator.predict_proba(np.resize(x, (17 * INFERENCE_ROWS, 784)))  # many blocks per call, then one


def numpy_simd() -> dict:
    from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__

    from bnlab.core.numpy_dispatch import active_targets

    return {"baseline": list(__cpu_baseline__), "dispatch": list(__cpu_dispatch__), "active": active_targets()}


def fingerprint(with_fits: bool = True) -> dict:
    """This machine's fingerprint; without ``with_fits``, no ``reference_fits`` (the tests
    compare those from their own run of tests/vendor_fits.py, tests/test_cpu_vendor.py)."""
    import bnlab  # noqa: F401  (numpy's dispatch pinned as in every bnlab process)
    from bnlab.ml import xla_dump
    from bnlab.tracking.job_cache import libc_version

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--compile-into", tmp], check=True)
        kernels = {k.label: k.summary() for k in xla_dump.kernels(Path(tmp))}
    from bnlab.ml.tf_runtime import tf

    found = {
        "cpu": cpu_identity(),
        "glibc": libc_version(),
        "tensorflow": tf.__version__,
        "numpy": numpy_simd(),
        "kernels": kernels,
    }
    return {**found, "reference_fits": reference_fits()} if with_fits else found


def reference_fits() -> dict:
    fits = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vendor_fits.py")],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )
    return json.loads(fits.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="default: tests/data/cpu_fingerprints/<this CPU's kind>.json")
    parser.add_argument("--kernels-only", action="store_true", help="without the reference fits")
    parser.add_argument("--compile-into", type=Path, help=argparse.SUPPRESS)  # the compiling child
    args = parser.parse_args()
    if args.compile_into:
        default_experiment_kernels(args.compile_into)
        return
    found = fingerprint(with_fits=not args.kernels_only)
    out = args.out or FOLDER / file_name(found["cpu"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {len(found['kernels'])} kernels")


if __name__ == "__main__":
    main()

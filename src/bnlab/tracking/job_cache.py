"""Per-job caching, in the MLflow store: each trained job's run is tagged with a content key
(its settings, seed, probes, the data, the code and the numeric runtime) and keeps its model
folder as artifacts (``job/``). A job whose key a FINISHED run already has is restored from
that run instead of trained: adding a seed or a grid point trains only the new jobs; changing
the code a job runs, the data or a shared setting changes every key, so everything trains again.

The key is computed where the job runs (a local worker, a Dask worker on another machine), from
what is installed there. DVC still decides whether the train stage runs at all; this decides,
once it runs, which of its jobs need training. No TensorFlow or MLflow import here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from pathlib import Path

import numpy as np

from bnlab.core.cpu import cpu_class
from bnlab.core.imports import SRC, closure

JOB_KEY_TAG = "bnlab.job_key"
ARTIFACT_DIR = "job"  # the model folder's files, in the run's artifacts
# What a training job runs: the code the key covers (an edit to a figure retrains nothing).
JOB_MODULE = "bnlab.execution.job"
# Settings read from the environment beyond tf_runtime's pinned ones (runtime_settings).
RUNTIME_VARIABLES = ("BNLAB_TF_THREADS", "BNLAB_OP_DETERMINISM")


@lru_cache(maxsize=4)
def code_fingerprint(root: str = JOB_MODULE, src: Path = SRC) -> str:
    """sha256 over the modules ``root`` imports (:func:`bnlab.core.imports.closure`, the same
    closure dvc.yaml's deps are checked with), by relative path: an edit to any of them changes
    every key; an edit elsewhere (a figure, a stage's wording) none."""
    digest = hashlib.sha256()
    for path in sorted(src.parent / found for found in closure([root], src)):
        # Named from the package on: the same code installed elsewhere has the same fingerprint.
        digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def runtime_fingerprint(tensorflow: dict[str, str]) -> dict[str, str]:
    """What else decides the bytes, read where the job runs: ``tensorflow``
    (:func:`bnlab.ml.tf_runtime.runtime_settings`: TensorFlow's and Keras's versions and
    settings), numpy's version, the variables that change kernels, the CPU's class and the C
    library's version (:func:`libc_version`)."""
    found = {**tensorflow, "numpy": np.__version__}
    found.update({name: os.environ.get(name, "") for name in RUNTIME_VARIABLES})
    found["cpu"] = cpu_class()
    found["libc"] = libc_version()
    return found


def libc_version() -> str:
    """``glibc-2.36``, say. The compiled steps call the C library's ``powf`` (Adam's β^t), whose
    last bits follow glibc's version, not the CPU; the lock pins Python packages, not the
    system's C library, so machines with another glibc get keys of their own."""
    name, version = platform.libc_ver()
    return f"{name or 'libc'}-{version or 'unknown'}"


def job_key(settings: dict, seed: int, probes: dict | None, data_fingerprint: str, code: str, runtime: dict) -> str:
    """Same job inputs → same key, in any experiment, process or machine alike."""
    payload = {
        "settings": settings,
        "seed": seed,
        "probes": probes,
        "data": data_fingerprint,
        "code": code,
        "runtime": runtime,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def find_cached(client, experiment_id: str, key: str) -> str | None:
    """The newest FINISHED run that trained a job with this key (its model folder is in its
    artifacts: the tag is set only once they are logged)."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{JOB_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None

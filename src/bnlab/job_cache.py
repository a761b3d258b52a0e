"""Per-job caching, in the MLflow store: each trained job's run is tagged with a content key
(its settings, seed, probes, the data, the code and the numeric runtime) and keeps its model
folder as artifacts (``job/``). A job whose key a FINISHED run already has is restored from
that run instead of trained: adding a seed or a grid point trains only the new jobs; changing
the code, the data or a shared setting changes every key, so everything trains again.

DVC still decides whether the train stage runs at all; this decides, once it runs, which of its
jobs need training. No TensorFlow or MLflow import here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

JOB_KEY_TAG = "bnlab.job_key"
RESTORED_FROM_TAG = "bnlab.restored_from"
ARTIFACT_DIR = "job"  # the model folder's files, in the run's artifacts
# The numbers depend on these beyond the code and the settings (see bnlab.tf_runtime).
RUNTIME_PACKAGES = ("tensorflow", "keras", "numpy")
RUNTIME_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "BNLAB_TF_THREADS", "BNLAB_OP_DETERMINISM")
# Kernels differ by vector instruction set: an AVX-512 machine and an AVX2 machine train
# different last digits from the same inputs (README: reproducibility).
CPU_FEATURES = ("avx512f", "avx2", "fma", "sse4_2")


@lru_cache(maxsize=1)
def code_fingerprint(package: Path = Path(__file__).parent) -> str:
    """sha256 over every module of the package, by relative path: any code change, any key."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def runtime_fingerprint() -> dict[str, str]:
    """What else decides the bytes: library versions, TensorFlow's settings, CPU architecture."""
    found = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    found.update({name: os.environ.get(name, "") for name in RUNTIME_VARIABLES})
    found["machine"] = platform.machine()
    found["cpu_features"] = ",".join(cpu_features())
    return found


def cpu_features() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ["unknown"]
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [name for name in CPU_FEATURES if name in flags]


def job_key(settings: dict, seed: int, probes: dict | None, data_fingerprint: str,
            code: str | None = None, runtime: dict | None = None) -> str:
    """Same job inputs → same key, in any experiment, process or machine alike."""
    payload = {"settings": settings, "seed": seed, "probes": probes, "data": data_fingerprint,
               "code": code or code_fingerprint(), "runtime": runtime or runtime_fingerprint()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def find_cached(client, experiment_id: str, key: str) -> str | None:
    """The newest FINISHED run that trained a job with this key (its model folder is in its
    artifacts: the tag is set only once they are logged)."""
    runs = client.search_runs([experiment_id], f"tags.`{JOB_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None

"""What a run is found by and where its numbers come from, without MLflow: the pipeline key
(the experiment's settings, the data and the training code) and a stage's lineage tags (the
commit, the data, the DVC stage and DVC experiment)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path


def pipeline_key(experiment: str, settings: dict, data_fingerprint: str, code: str) -> str:
    """Same experiment and settings on the same data with the same training code (``code``:
    :func:`bnlab.tracking.job_cache.code_fingerprint`) → same key, in every stage and process.
    Another checkout's code has runs of its own: its test metrics never land on them."""
    payload = json.dumps(
        {"experiment": experiment, "settings": settings, "data": data_fingerprint, "code": code}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stage_lineage(stage: str, data_fingerprint: str) -> dict[str, str]:
    """Where a run's numbers come from: the commit, the data, the DVC stage and, under
    ``dvc exp run``, the DVC experiment and its baseline commit (``dvc exp show`` lists them)."""
    return {**git_state(), "data_fingerprint": data_fingerprint, "dvc_stage": stage, **dvc_experiment()}


def dvc_experiment() -> dict[str, str]:
    """``dvc.exp_name`` and ``dvc.baseline_rev`` from what DVC exports to a stage command."""
    found = {"dvc.exp_name": os.environ.get("DVC_EXP_NAME"), "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV")}
    return {key: value for key, value in found.items() if value}


def git_state(root: Path | None = None) -> dict[str, str]:
    """Commit and whether the tree had uncommitted changes, for the run's lineage."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}

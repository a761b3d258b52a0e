"""What a run is found by and where its numbers come from, without MLflow: the pipeline key
(the experiment's settings, the data and the training code) and a stage's lineage tags (the
commit, the data, the DVC stage and DVC experiment)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

# What DVC writes as a repro goes: every stage's deps and outs, resolved. Named here, not in
# bnlab.core.layout: the training code imports that module, and its bytes key every job.
DVC_LOCK = "dvc.lock"


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
    """Commit and whether the tree had uncommitted changes, for the run's lineage. What DVC
    writes while ``dvc repro`` runs (dvc.lock and the outputs it lists, some of them in git)
    does not count: otherwise every stage after a repro's first would be dirty on a clean
    checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        # Every tracked path that differs from the commit, staged or not; a rename as both paths.
        changed = [path for path in git("diff", "HEAD", "--name-only", "--no-renames", "-z").split("\0") if path]
        top = Path(git("rev-parse", "--show-toplevel").strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    written = pipeline_writes(Path(root or ".").resolve(), top)
    dirty = any(not _within(path, written) for path in changed)
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def pipeline_writes(project: Path, top: Path) -> set[str]:
    """The project's dvc.lock and every output it lists, relative to the repository's top (as
    git status names paths): what ``dvc repro`` rewrites. Nothing when there is no lock DVC
    could have written (missing, or not YAML: a merge's conflict markers): then it counts."""
    lock = project / DVC_LOCK
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except (FileNotFoundError, yaml.YAMLError):
        return set()
    paths = {DVC_LOCK, *(out["path"] for stage in stages.values() for out in stage.get("outs", []))}
    found = {Path(os.path.relpath(project / path, top)).as_posix() for path in paths}
    return {path for path in found if not path.startswith("../")}  # an uncached output outside: not git's


def _within(path: str, written: set[str]) -> bool:
    return any(path == out or path.startswith(out + "/") for out in written)

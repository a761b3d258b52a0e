"""Where every stage reads and writes: the one home of the project's paths, relative to the
repository root. dvc.yaml, the Makefile and .gitignore name some of them too; tests check that
they agree with this file."""

from __future__ import annotations

from pathlib import Path

RAW = Path("data/raw/mnist.npz")
PREPARED = Path("data/prepared")
# The prepared splits by file stem, and the name each goes by in MLflow's dataset inputs.
SPLITS = {"train": "train", "val": "validation", "test": "test"}
# MLflow's default store, in the project's root: the database and the artifacts beside it.
STORE_DB = "mlflow.db"
STORE_ARTIFACTS = "mlartifacts"
PIPELINE_FILE = "pipeline.json"  # in models/<experiment>/: the key later stages find runs by
MODEL_META_FILE = "estimator.json"  # in each model's folder: its params, classes and history
TEST_METRICS_FILE = "test_metrics.json"  # in eval/<experiment>/


def split_file(name: str) -> Path:
    """data/prepared/{train,val,test}.npz"""
    if name not in SPLITS:
        raise ValueError(f"no split {name!r}; the splits are {', '.join(SPLITS)}")
    return PREPARED / f"{name}.npz"


def models_dir(experiment: str) -> Path:
    return Path("models") / experiment


def eval_dir(experiment: str) -> Path:
    return Path("eval") / experiment


def reports_dir(experiment: str) -> Path:
    return Path("reports") / experiment


# The published results (stage `results`): the page and the figures it shows, in git.
RESULTS_PAGE = Path("docs/results.md")
RESULTS_FIGURES = Path("docs/figures")

# Compiled XLA programs, one set per machine kind (bnlab.ml.xla_cache): never in git, like
# DVC's cache.
XLA_CACHE = Path(".xla-cache")

"""Where every stage reads and writes: the one home of the project's paths, relative to the
repository root. dvc.yaml declares the same paths (a test checks that they agree)."""

from __future__ import annotations

from pathlib import Path

RAW = Path("data/raw/mnist.npz")
PREPARED = Path("data/prepared")
SPLITS = ("train", "val", "test")


def split_file(name: str) -> Path:
    """data/prepared/{train,val,test}.npz"""
    return PREPARED / f"{name}.npz"


def models_dir(experiment: str) -> Path:
    return Path("models") / experiment


def eval_dir(experiment: str) -> Path:
    return Path("eval") / experiment


def reports_dir(experiment: str) -> Path:
    return Path("reports") / experiment

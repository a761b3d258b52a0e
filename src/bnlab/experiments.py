"""Experiments as data: the jobs an experiment declares and the names they go by.

A job is one (experiment, variant, seed): one trained model, one MLflow child run, one folder
under models/<experiment>/. Nothing here imports TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bnlab.config import ExperimentParams


@dataclass(frozen=True)
class Job:
    experiment: str
    variant: str
    seed: int

    @property
    def name(self) -> str:
        """Unique within its experiment: the model's folder, models/<experiment>/<name>."""
        return f"{self.variant}-seed{self.seed}"

    @property
    def run_name(self) -> str:
        """Unique across experiments: the MLflow run's name, e.g. notebook/batchnorm-seed0."""
        return f"{self.experiment}/{self.name}"


def jobs(name: str, experiment: ExperimentParams) -> list[Job]:
    """Every job of an experiment in a fixed order: seed by seed, variants as declared."""
    return [Job(name, variant, seed) for seed in experiment.seeds for variant in experiment.variants]


def ordered_variants(experiment: ExperimentParams) -> list[str]:
    """The variants as declared, baseline last (tables and figures list it after the others)."""
    others = [v for v in experiment.variants if v != experiment.baseline]
    return [*others, experiment.baseline]


def model_dir(models: Path, job: Job) -> Path:
    """Each model's folder is named after its job: models/<experiment>/batchnorm-seed0."""
    return Path(models) / job.name

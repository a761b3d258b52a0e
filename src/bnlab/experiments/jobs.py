"""Experiments as data: the jobs an experiment declares and the names they go by.

A job is one (experiment, variant, seed, grid point): one trained model, one MLflow child run,
one folder under models/<experiment>/. Nothing here imports TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bnlab.experiments.params import ExperimentParams, format_value

Point = tuple[tuple[str, object], ...]  # ((setting, value), ...); () without a grid


def point_label(point: Point) -> str:
    """learning_rate=0.001 (settings joined by commas); empty without a grid."""
    return ",".join(f"{key}={format_value(value)}" for key, value in point)


def point_columns(point: Point) -> dict[str, object]:
    """A grid point as table columns: numbers stay numbers, a list becomes its label (64x64)."""
    return {key: format_value(value) if isinstance(value, (list, tuple)) else value for key, value in point}


@dataclass(frozen=True)
class Job:
    experiment: str
    variant: str
    seed: int
    point: Point = ()

    @property
    def name(self) -> str:
        """Unique within its experiment: the model's folder, models/<experiment>/<name>, e.g.
        batchnorm-seed0, or batchnorm-learning_rate=0.001-seed0 in a grid."""
        return "-".join(filter(None, (self.variant, point_label(self.point), f"seed{self.seed}")))

    @property
    def group(self) -> str:
        """The jobs that differ only by seed: the variant, at its grid point."""
        return " ".join(filter(None, (self.variant, point_label(self.point))))

    @property
    def run_name(self) -> str:
        """Unique across experiments: the MLflow run's name, e.g. notebook/batchnorm-seed0."""
        return f"{self.experiment}/{self.name}"


def jobs(name: str, experiment: ExperimentParams) -> list[Job]:
    """Every job of an experiment in a fixed order: seed by seed, then grid point by grid
    point, variants as declared."""
    return [
        Job(name, variant, seed, point)
        for seed in experiment.seeds
        for point in experiment.grid_points()
        for variant in experiment.variants
    ]


def ordered_variants(experiment: ExperimentParams) -> list[str]:
    """The variants as declared, baseline last (tables and figures list it after the others)."""
    others = [v for v in experiment.variants if v != experiment.baseline]
    return [*others, experiment.baseline]


def model_dir(models: Path, job: Job) -> Path:
    """Each model's folder is named after its job: models/<experiment>/batchnorm-seed0."""
    return Path(models) / job.name

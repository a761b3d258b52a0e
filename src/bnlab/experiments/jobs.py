"""Experiments as data: the jobs an experiment declares and the names they go by.

A job is one (experiment, variant, seed, grid point): one trained model, one MLflow child run,
one folder under models/<experiment>/. An experiment that tunes (``tune``) also has selection
jobs, one per candidate setting and selection seed, under models/<experiment>/selection/, and
its comparison jobs carry the settings the selection chose (``tuned``). Nothing here imports
TensorFlow or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bnlab.experiments.grid_values import format_value
from bnlab.experiments.params import ExperimentParams, ModelParams
from bnlab.experiments.probe_params import ProbeParams

Point = tuple[tuple[str, object], ...]  # ((setting, value), ...); () without a grid


def point_label(point: Point) -> str:
    """learning_rate=0.001 (settings joined by commas); empty without a grid."""
    return ",".join(f"{key}={format_value(value)}" for key, value in point)


def point_columns(point: Point) -> dict[str, object]:
    """A grid point as table columns: numbers stay numbers, a list becomes its label (64x64)."""
    return {key: format_value(value) if isinstance(value, (list, tuple)) else value for key, value in point}


# Where an experiment's selection jobs go: models/<experiment>/selection/<job name>, and their
# runs' names: <experiment>/selection/<job name>.
SELECTION_DIR = "selection"


@dataclass(frozen=True)
class Job:
    experiment: str
    variant: str
    seed: int
    point: Point = ()
    tuned: Point = ()  # the settings a selection chose (a comparison job) or tries (a selection job)
    selection: bool = False  # trained to choose settings on the validation split, never tested

    @property
    def name(self) -> str:
        """Unique within its experiment: the model's folder, models/<experiment>/<name>, e.g.
        batchnorm-seed0, or batchnorm-learning_rate=0.001-seed0 in a grid; a selection job's
        is under selection/ and names the candidate it tries."""
        tried = point_label(self.tuned) if self.selection else ""
        name = "-".join(filter(None, (self.variant, point_label(self.point), tried, f"seed{self.seed}")))
        return f"{SELECTION_DIR}/{name}" if self.selection else name

    @property
    def group(self) -> str:
        """The jobs that differ only by seed: the variant, at its grid point."""
        return " ".join(filter(None, (self.variant, point_label(self.point))))

    @property
    def run_name(self) -> str:
        """Unique across experiments: the MLflow run's name, e.g. notebook/batchnorm-seed0."""
        return f"{self.experiment}/{self.name}"


def jobs(name: str, experiment: ExperimentParams, selected: dict | None = None) -> list[Job]:
    """Every comparison job of an experiment in a fixed order: seed by seed, then grid point
    by grid point, variants as declared. An experiment that tunes needs ``selected``, the
    settings chosen for each (variant, grid point's label)
    (:func:`bnlab.experiments.selection.choose`)."""
    if experiment.tune is not None and selected is None:
        raise ValueError(f"experiment {name!r} tunes: its jobs need the settings its selection chose")
    return [
        Job(name, variant, seed, point, selected[(variant, point_label(point))] if selected else ())
        for seed in experiment.seeds
        for point in experiment.grid_points()
        for variant in experiment.variants
    ]


def selection_jobs(name: str, experiment: ExperimentParams) -> list[Job]:
    """Every selection job of an experiment that tunes (none otherwise), in a fixed order:
    seed by seed, grid point by grid point, candidate by candidate, variants as declared."""
    if experiment.tune is None:
        return []
    return [
        Job(name, variant, seed, point, candidate, selection=True)
        for seed in experiment.tune.seeds
        for point in experiment.grid_points()
        for candidate in experiment.tune.candidates()
        for variant in experiment.variants
    ]


def job_settings(experiment: ExperimentParams, job: Job) -> ModelParams:
    """The estimator settings a job trains with: its variant's, at its grid point, with the
    settings it tries or its selection chose."""
    return experiment.settings(job.variant, (*job.point, *job.tuned))


def ordered_variants(experiment: ExperimentParams) -> list[str]:
    """The variants as declared, baseline last (tables and figures list it after the others)."""
    others = [v for v in experiment.variants if v != experiment.baseline]
    return [*others, experiment.baseline]


def model_dir(models: Path, job: Job) -> Path:
    """Each model's folder is named after its job: models/<experiment>/batchnorm-seed0."""
    return Path(models) / job.name


def job_probes(experiment: ExperimentParams, job: Job) -> ProbeParams | None:
    """The probes a job runs: its experiment's; none for a selection job, which needs only
    its validation score."""
    return None if job.selection else experiment.probes

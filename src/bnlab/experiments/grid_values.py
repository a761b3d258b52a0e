"""Settings swept or selected over (an experiment's ``grid``, a selection's ``tune.grid``): each
setting's list of values, validated as that setting would be in ``model``, their combinations,
and the names values go by in folders, runs and tables. No TensorFlow here."""

from __future__ import annotations

import itertools

from pydantic import ValidationError

from bnlab.ml.hyperparams import HYPERPARAMETERS, ModelParams


def combinations(grid: dict[str, list]) -> list[tuple[tuple[str, object], ...]]:
    """Every combination of the values, as ((setting, value), ...), in the order declared (the
    last setting varying fastest)."""
    return [tuple(zip(grid, values)) for values in itertools.product(*grid.values())]


def grid_axis(key: str, values: object) -> list:
    """One setting's values, each validated as that setting would be in ``model``."""
    if key not in HYPERPARAMETERS:
        raise ValueError(f"{key!r} is not an estimator setting; known: {', '.join(HYPERPARAMETERS)}")
    if not isinstance(values, list) or not values:
        raise ValueError(f"{key}: expected a non-empty list of values, got {values!r}")
    checked = []
    for value in values:
        try:
            checked.append(getattr(ModelParams.model_validate({key: value}), key))
        except ValidationError as exc:
            raise ValueError(f"{key}: value {value!r}: {exc.errors(include_url=False)[0]['msg']}") from None
    _distinct_names(key, checked)
    return checked


def _distinct_names(key: str, values: list) -> None:
    """Each value names its jobs' folders and runs (:func:`format_value`): two values with one
    name would write over each other's models, so they are refused, both named."""
    seen: dict[str, object] = {}
    for value in values:
        name = format_value(value)
        if name in seen:
            same = "" if seen[name] == value else f" (written {seen[name]!r} and {value!r})"
            raise ValueError(
                f"{key}: values must be distinct; two are named {name}{same}, "
                f"and a job's folder and run are named by its value (6 significant digits)"
            )
        seen[name] = value


def format_value(value: object) -> str:
    """A grid value as it appears in names and tables: 0.001, 64x64, true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return str(value)

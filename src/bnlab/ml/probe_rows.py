"""What a probe measurement looks like, TensorFlow-free: the columns of probes.csv and
steps.csv (design.md's contracts), the rows of one hidden layer, and their MLflow metric names.
:mod:`bnlab.ml.probes` measures; the train stage writes the rows, the report reads them."""

from __future__ import annotations

import numpy as np

PERCENTILES = {"p15": 15, "p50": 50, "p85": 85}
# Per job; the report stage puts ``variant`` and ``seed`` in front.
PROBE_COLUMNS = ("step", "layer", "unit", *PERCENTILES, "dead_fraction")
STEP_COLUMNS = ("step", "val_accuracy", "test_accuracy", "train_mode_accuracy")
POOLED = "all"  # the ``unit`` of a row over all of a layer's units


def percentiles(values: np.ndarray) -> dict[str, float]:
    found = np.percentile(values, list(PERCENTILES.values()))
    return {name: float(v) for name, v in zip(PERCENTILES, found)}


def layer_rows(step: int, layer: int, pre: np.ndarray, post: np.ndarray, unit: int) -> list[dict]:
    """The two probe rows of one hidden layer: the fixed unit, and all units pooled.
    ``pre``/``post``: the nonlinearity's input/output, one row per probe image."""
    dead = np.max(post, axis=0) <= 0  # per unit: never positive on any probe image
    return [
        {"step": step, "layer": layer, "unit": str(unit), **percentiles(pre[:, unit]),
         "dead_fraction": float(dead[unit])},
        {"step": step, "layer": layer, "unit": POOLED, **percentiles(pre),
         "dead_fraction": float(dead.mean())},
    ]


def metrics(rows: list[dict], accuracy: dict) -> dict[str, float]:
    """One probe's values as MLflow metrics, e.g. ``probe/layer2/all/p50``,
    ``probe/layer2/unit0/dead_fraction``, ``probe/test_accuracy``."""
    found = {f"probe/{k}": v for k, v in accuracy.items() if k != "step" and v is not None}
    for row in rows:
        unit = POOLED if row["unit"] == POOLED else f"unit{row['unit']}"
        for key in PROBE_COLUMNS[3:]:
            found[f"probe/layer{row['layer']}/{unit}/{key}"] = row[key]
    return found

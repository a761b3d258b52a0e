"""What a probe measurement looks like, TensorFlow-free: the columns of probes.csv, steps.csv,
landscape.csv, ics.csv, init_gradients.csv, weight_norms.csv and sharpness.csv (design.md's
contracts), the rows of one hidden layer, the landscape's summary of one probe, and their MLflow
metric names. :mod:`bnlab.ml.probes`, :mod:`bnlab.ml.geometry`, :mod:`bnlab.ml.init_gradients`,
:mod:`bnlab.ml.weight_norms` and :mod:`bnlab.ml.sharpness` measure;
the train stage writes the rows, the report reads them."""

from __future__ import annotations

import numpy as np

from bnlab.ml.hyperparams import LANDSCAPE_DIRECTIONS

PERCENTILES = {"p15": 15, "p50": 50, "p85": 85}
# Per job; the report stage puts ``variant`` and ``seed`` in front.
PROBE_COLUMNS = ("step", "layer", "unit", *PERCENTILES, "dead_fraction")
STEP_COLUMNS = ("step", "val_accuracy", "test_accuracy", "train_mode_accuracy")
POOLED = "all"  # the ``unit`` of a row over all of a layer's units
# Santurkar et al.'s measurements around one step (bnlab.ml.geometry); ``eta`` in units of the
# learning rate.
DIRECTIONS = LANDSCAPE_DIRECTIONS
LANDSCAPE_COLUMNS = ("step", "direction", "eta", "loss", "grad_change", "distance")
ICS_COLUMNS = ("step", "layer", "ics_l2", "ics_cosine")
# Yang et al.'s gradients at initialization (bnlab.ml.init_gradients): one row per hidden layer
# (from 1) of the first step's network and batch.
INIT_GRADIENT_COLUMNS = ("batch_size", "depth", "width", "layer", "grad_sq_norm")
# Each hidden kernel's norm after a watched step and its angle (radians) in that step
# (bnlab.ml.weight_norms).
WEIGHT_NORM_COLUMNS = ("step", "layer", "kernel_norm", "angular_update")
# The top eigenvalue of the training loss's Hessian on the probe's fixed training images after a
# watched step, and that loss (bnlab.ml.sharpness).
SHARPNESS_COLUMNS = ("step", "lambda_max", "train_loss")
# Each probe table's file (in a job's model folder, and in reports/<experiment>/) and columns.
TABLES = {
    "probes.csv": PROBE_COLUMNS,
    "steps.csv": STEP_COLUMNS,
    "landscape.csv": LANDSCAPE_COLUMNS,
    "ics.csv": ICS_COLUMNS,
    "init_gradients.csv": INIT_GRADIENT_COLUMNS,
    "weight_norms.csv": WEIGHT_NORM_COLUMNS,
    "sharpness.csv": SHARPNESS_COLUMNS,
}
# Columns whose values span many orders of magnitude: written to 7 significant digits, not
# rounded to 6 decimals as the rest are.
SIGNIFICANT_DIGITS = {"grad_sq_norm": 7, "angular_update": 7, "lambda_max": 7}
# What one probe's points along one direction say (Santurkar et al., Figure 4).
LANDSCAPE_SUMMARY = ("loss_variation", "grad_predictiveness", "beta_smoothness")


def percentiles(values: np.ndarray) -> dict[str, float]:
    found = np.percentile(values, list(PERCENTILES.values()))
    return {name: float(v) for name, v in zip(PERCENTILES, found)}


def layer_rows(step: int, layer: int, pre: np.ndarray, post: np.ndarray, unit: int) -> list[dict]:
    """The two probe rows of one hidden layer: the fixed unit, and all units pooled.
    ``pre``/``post``: the nonlinearity's input/output, one row per probe image."""
    dead = np.max(post, axis=0) <= 0  # per unit: never positive on any probe image
    return [
        {
            "step": step,
            "layer": layer,
            "unit": str(unit),
            **percentiles(pre[:, unit]),
            "dead_fraction": float(dead[unit]),
        },
        {"step": step, "layer": layer, "unit": POOLED, **percentiles(pre), "dead_fraction": float(dead.mean())},
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


def landscape_summary(loss, grad_change, distance) -> dict[str, float]:
    """Santurkar et al.'s three numbers for one probe and direction, from its points over η:
    the loss's variation (max − min), gradient predictiveness (the largest gradient change:
    smaller is more predictive) and the effective β-smoothness (the largest gradient change per
    unit of distance moved)."""
    loss, grad_change, distance = (np.asarray(a, dtype=float) for a in (loss, grad_change, distance))
    return dict(
        zip(
            LANDSCAPE_SUMMARY,
            (float(loss.max() - loss.min()), float(grad_change.max()), float(np.max(grad_change / distance))),
        )
    )


def geometry_metrics(landscape: list[dict], ics: list[dict]) -> dict[str, float]:
    """One geometry probe as MLflow metrics: ``landscape/gradient/beta_smoothness``, ...,
    ``ics/layer2/l2``, ``ics/layer2/cosine``."""
    found = {}
    for direction in dict.fromkeys(row["direction"] for row in landscape):
        rows = [row for row in landscape if row["direction"] == direction]
        summary = landscape_summary(*([row[k] for row in rows] for k in ("loss", "grad_change", "distance")))
        found |= {f"landscape/{direction}/{name}": value for name, value in summary.items()}
    for row in ics:
        found |= {f"ics/layer{row['layer']}/l2": row["ics_l2"], f"ics/layer{row['layer']}/cosine": row["ics_cosine"]}
    return found


def init_gradient_metrics(rows: list[dict]) -> dict[str, float]:
    """The gradients at initialization as MLflow metrics: ``init_gradient/layer1/grad_sq_norm``, ..."""
    return {f"init_gradient/layer{row['layer']}/grad_sq_norm": row["grad_sq_norm"] for row in rows}


def weight_norm_metrics(rows: list[dict]) -> dict[str, float]:
    """One watched step's kernels as MLflow metrics: ``weights/layer1/kernel_norm``,
    ``weights/layer1/angular_update``, ..."""
    return {f"weights/layer{row['layer']}/{key}": row[key] for row in rows for key in WEIGHT_NORM_COLUMNS[2:]}


def sharpness_metrics(row: dict) -> dict[str, float]:
    """One watched step's λ_max and loss as MLflow metrics: ``sharpness/lambda_max``,
    ``sharpness/train_loss``."""
    return {f"sharpness/{key}": row[key] for key in SHARPNESS_COLUMNS[1:]}

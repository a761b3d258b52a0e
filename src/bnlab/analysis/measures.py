"""What a claim compares, one value per (variant, seed): a model's metric, a fall across a
grid, a probe's drift or dead units, accuracy at a step, the loss landscape, covariate shift,
the gradients' growth at initialization, the kernels' angular update and effective rate,
sharpness (:mod:`bnlab.analysis.verdicts` judges them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bnlab.analysis.geometry_tables import SCALED_BETA, landscape_per_run, per_run
from bnlab.analysis.init_gradient_tables import rate_per_run
from bnlab.analysis.probe_tables import dead_per_run, drift_per_run, nearest_steps
from bnlab.analysis.published import ExperimentResults
from bnlab.analysis.sharpness_tables import late_sharpness_per_run
from bnlab.analysis.weight_norm_tables import angular_update_per_run, effective_rate_per_run
from bnlab.experiments.jobs import point_label


@dataclass(frozen=True)
class Measure:
    """What a claim compares, one value per (variant, seed). ``scale`` and ``unit`` format a
    value (``96.95%``), ``difference_unit`` a difference of two (``+2.44 points``)."""

    label: str
    unit: str = ""
    difference_unit: str = ""
    scale: float = 1.0
    digits: int = 2

    def values(self, results: ExperimentResults, point: dict | None) -> pd.DataFrame:
        raise NotImplementedError

    def missing(self, results: ExperimentResults) -> str | None:
        """What the experiment lacks for this measure (None: nothing)."""
        return None

    def number(self, value: float, sign: bool = False) -> str:
        return "n/a" if math.isnan(value) else f"{value * self.scale:{'+' if sign else ''}.{self.digits}f}"

    def value(self, value: float) -> str:
        return self.number(value) + self.unit

    def difference(self, value: float, interval: tuple[float, float] | None = None) -> str:
        """``+2.44 [+1.80, +3.08] points``"""
        bounds = "" if interval is None else f" [{self.number(interval[0], True)}, {self.number(interval[1], True)}]"
        return self.number(value, sign=True) + bounds + self.difference_unit


@dataclass(frozen=True)
class ModelMetric(Measure):
    """A test-set metric of the trained model (sweep.csv)."""

    column: str = "test_accuracy"

    def values(self, results, point):
        return results.at_point(point)[["variant", "seed", self.column]].rename(columns={self.column: "value"})


@dataclass(frozen=True)
class Fall(ModelMetric):
    """How far a test metric falls from one grid point to another, per run (paired by seed):
    its value at ``setting`` = ``high`` minus its value at ``setting`` = ``low``."""

    setting: str = "batch_size"
    high: object = 128
    low: object = 2

    def values(self, results, point):
        def at(value):
            return results.at_point({self.setting: value}).set_index(["variant", "seed"])[self.column]

        return (at(self.high) - at(self.low)).rename("value").dropna().reset_index()

    def missing(self, results):
        absent = [value for value in (self.high, self.low) if not results.has_point({self.setting: value})]
        return f"no grid point {', '.join(point_text({self.setting: v}) for v in absent)}" if absent else None


@dataclass(frozen=True)
class ProbeMeasure(Measure):
    """A probe quantity per (variant, seed, layer), averaged over the hidden layers or taken at
    the last one (``last_layer``)."""

    quantity: str = "drift"  # or "dead": the fraction of dead units at the last probe
    last_layer: bool = False

    def values(self, results, point):
        per_layer = (
            drift_per_run(results.probes)
            if self.quantity == "drift"
            else dead_per_run(results.probes).rename(columns={"final": "dead"})
        )
        if self.last_layer:
            per_layer = per_layer[per_layer["layer"] == per_layer["layer"].max()]
        return (
            per_layer.groupby(["variant", "seed"], observed=True, sort=False)[self.quantity]
            .mean()
            .rename("value")
            .reset_index()
        )

    def missing(self, results):
        return "no probes" if results.probes.empty else None


@dataclass(frozen=True)
class AccuracyAtStep(Measure):
    """Test accuracy at the probe nearest to ``step`` (steps.csv)."""

    step: int = 1000

    def values(self, results, point):
        (at,) = nearest_steps(results.steps, [self.step])
        rows = results.steps[results.steps["step"] == at]
        return rows[["variant", "seed", "test_accuracy"]].rename(columns={"test_accuracy": "value"})

    def missing(self, results):
        return "no probes" if results.steps.empty else None


@dataclass(frozen=True)
class LandscapeMeasure(Measure):
    """A landscape summary of each probe (loss variation, gradient predictiveness, β-smoothness)
    along one direction, one value per run: log10, averaged over its probes
    (:mod:`bnlab.analysis.geometry_tables`); β·‖w‖² (``SCALED_BETA``) reads the kernels' norms too."""

    quantity: str = "beta_smoothness"
    direction: str = "gradient"

    def values(self, results, point):
        return landscape_per_run(results.landscape, self.quantity, self.direction, results.weight_norms)

    def missing(self, results):
        if results.landscape.empty:
            return "no landscape probes"
        if self.quantity == SCALED_BETA and results.weight_norms.empty:
            return "no weight norms"
        return None


@dataclass(frozen=True)
class ShiftMeasure(Measure):
    """Internal covariate shift (ics.csv), one value per run: averaged over its probes and
    layers (log10 for the norm)."""

    quantity: str = "ics_l2"

    def values(self, results, point):
        return per_run(results.ics, self.quantity)

    def missing(self, results):
        return "no covariate-shift probes" if results.ics.empty else None


@dataclass(frozen=True)
class GradientGrowth(Measure):
    """Yang et al.'s gradient growth at initialization (init_gradients.csv): each run's fitted
    factor λ̂ per layer (:func:`bnlab.analysis.init_gradient_tables.rate_per_run`), at the claim's
    grid point."""

    def values(self, results, point):
        rates = rate_per_run(results.init_gradients)
        for key, value in (point or {}).items():
            rates = rates[rates[key] == value]
        return rates[["variant", "seed", "value"]]

    def missing(self, results):
        return "no gradients at initialization" if results.init_gradients.empty else None


@dataclass(frozen=True)
class AngularUpdate(Measure):
    """The hidden kernels' angular update per step at equilibrium (weight_norms.csv), log10, one
    value per run (:func:`bnlab.analysis.weight_norm_tables.angular_update_per_run`)."""

    def values(self, results, point):
        found = angular_update_per_run(results.weight_norms)
        return found.assign(value=np.log10(found["value"]))

    def missing(self, results):
        return "no weight norms" if results.weight_norms.empty else None


@dataclass(frozen=True)
class EffectiveRate(AngularUpdate):
    """The effective learning rate η/‖w‖² at the last watched step, log10, mean over the hidden
    layers, one value per run."""

    def values(self, results, point):
        return effective_rate_per_run(results.weight_norms, results.settings)


@dataclass(frozen=True)
class Sharpness(Measure):
    """λ_max late in training (sharpness.csv), log10, one value per run
    (:func:`bnlab.analysis.sharpness_tables.late_sharpness_per_run`), at the claim's grid point."""

    def values(self, results, point):
        found = late_sharpness_per_run(results.sharpness)
        for key, value in (point or {}).items():
            found = found[np.isclose(found[key], value)]
        return found.assign(value=np.log10(found["value"]))[["variant", "seed", "value"]]

    def missing(self, results):
        return "no sharpness" if results.sharpness.empty else None


def point_text(point: dict) -> str:
    """A claim's grid point as the jobs name it: ``learning_rate=0.1``."""
    return point_label(tuple(point.items()))

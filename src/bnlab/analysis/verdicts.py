"""Verdicts: a claim from the literature, the paired measurement that tests it, and the word
that a stated rule derives from the numbers.

A claim names an experiment, a measure (what is compared, one value per seed), the variant and
the baseline, and the sign it predicts for ``variant − baseline``. Its row gets the paired
statistics of :mod:`bnlab.analysis.statistics`; Holm's adjustment runs over every claim of
the table (one family, in which claims measured from the same numbers count once), and the
word follows :data:`RULES`. A generalization ("always use BN")
is judged from the verdicts of the claims it spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bnlab.analysis.geometry_tables import landscape_per_run, per_run
from bnlab.analysis.init_gradient_tables import rate_per_run
from bnlab.analysis.probe_tables import dead_per_run, drift_per_run, nearest_steps
from bnlab.analysis.published import ExperimentResults
from bnlab.analysis.statistics import (
    ALPHA,
    POWER,
    TIE,
    Paired,
    adjusted_interval,
    detectable_difference,
    holm,
    holm_levels,
    paired,
    seed_pairs,
)
from bnlab.experiments.jobs import point_label

AGREES, DISAGREES, NO_EFFECT, PARTLY, TOO_FEW = "agrees", "disagrees", "no effect shown", "partly", "too few seeds"
T_TEST_ONLY = " (t-test only)"  # added when the exact sign-flip test does not also reach p < α
RULES = (
    f"**{AGREES}**: Holm-adjusted p < {ALPHA} (Holm over the table's distinct comparisons: claims "
    f"measured from the same numbers count once) and the mean difference has the predicted sign; "
    f"equivalently, the row's interval excludes 0 on that side. The interval is the t-interval at "
    f"level 1 − {ALPHA}·p/p_Holm, the level Holm's step-down tests the row at: it depends on the "
    f"row's rank, so the intervals are not simultaneous (Bonferroni's 1 − {ALPHA}/m would be)",
    f"**{DISAGREES}**: that interval excludes 0 on the other side",
    f"**{NO_EFFECT}**: the interval includes 0; the column *detectable* says how large a difference "
    f"these seeds would have found with power {POWER} at the level Holm tests the row at",
    f"**{TOO_FEW}**: fewer than 2 paired seeds",
    f"*{T_TEST_ONLY.strip()}* is added to {AGREES} or {DISAGREES} when the exact sign-flip test's p "
    f"(unadjusted, which assumes nothing of the differences' distribution) is not also below {ALPHA}",
    f"a generalization is **{AGREES}** when every claim it spans agrees (with the t-test or both), "
    f"**{DISAGREES}** when any disagrees, **{PARTLY}** when some agree and none disagrees, "
    f"**{NO_EFFECT}** when none agrees or disagrees",
)


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
    (:mod:`bnlab.analysis.geometry_tables`)."""

    quantity: str = "beta_smoothness"
    direction: str = "gradient"

    def values(self, results, point):
        return landscape_per_run(results.landscape, self.quantity, self.direction)

    def missing(self, results):
        return "no landscape probes" if results.landscape.empty else None


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
class Claim:
    """One row of the verdict table."""

    key: str
    claim: str
    source: str
    experiment: str
    measure: Measure
    direction: int  # the sign the claim predicts for variant − baseline: +1 or −1
    variant: str = "batchnorm"
    baseline: str = "plain"
    point: dict | None = None  # a grid point, e.g. {"learning_rate": 0.1}
    figures: tuple[str, ...] = ()  # figure files of the experiment's report


@dataclass(frozen=True)
class Generalization:
    """A claim judged from several of the table's claims, e.g. "always use BN"."""

    claim: str
    source: str
    spans: tuple[str, ...]  # Claim keys


@dataclass
class Verdict:
    claim: Claim
    variant_mean: float
    baseline_mean: float
    diff: np.ndarray = field(repr=False)
    test: Paired
    pairs: tuple = field(default=(), repr=False)  # (seed, variant value, baseline value): the numbers compared
    p_holm: float = math.nan
    level: float = math.nan  # the level Holm's step-down tests this row at: α/(m − rank + 1)
    interval: tuple[float, float] = (math.nan, math.nan)
    same_as: str | None = None  # the key of an earlier claim measured from the same numbers

    @property
    def detectable(self) -> float:
        """The smallest difference these seeds find with power POWER at the row's Holm level."""
        diff = self.diff[~np.isnan(self.diff)]
        sd = float(diff.std(ddof=1)) if len(diff) > 1 and np.ptp(diff) >= TIE else 0.0
        return detectable_difference(len(diff), sd, self.level)

    @property
    def comparison(self) -> tuple:
        """What makes two claims one comparison: the same measure of the same numbers."""
        return (self.claim.measure.label, self.pairs)

    @property
    def word(self) -> str:
        return verdict_word(self.claim.direction, self.test.mean, self.p_holm, self.test.n, self.test.p_exact)


def verdict_word(direction: int, mean: float, p_holm: float, n: int, p_exact: float) -> str:
    """:data:`RULES` for one claim."""
    if n < 2 or math.isnan(p_holm):
        return TOO_FEW
    if p_holm >= ALPHA:
        return NO_EFFECT
    word = AGREES if np.sign(mean) == direction else DISAGREES
    return word if p_exact < ALPHA else word + T_TEST_ONLY


def generalization_word(words: list[str]) -> str:
    """:data:`RULES` for a generalization over its claims' words."""
    words = [word.removesuffix(T_TEST_ONLY) for word in words]
    if any(word == DISAGREES for word in words):
        return DISAGREES
    agreeing = sum(word == AGREES for word in words)
    return AGREES if agreeing == len(words) else PARTLY if agreeing else NO_EFFECT


def unmeasurable(claim: Claim, results: dict[str, ExperimentResults]) -> str | None:
    """Why this project's experiments cannot test the claim (None: they can): a user's
    params.yaml may drop an experiment, a variant or a grid point the claim needs."""
    if claim.experiment not in results:
        return f"no experiment {claim.experiment} was reported (reports/{claim.experiment}/)"
    found = results[claim.experiment]
    missing = [name for name in (claim.variant, claim.baseline) if name not in found.variants]
    if missing:
        return f"{claim.experiment} has no variant {', '.join(missing)}"
    if claim.point and not found.has_point(claim.point):
        return f"{claim.experiment} has no grid point {point_text(claim.point)}"
    lacks = claim.measure.missing(found)
    return f"{claim.experiment} has {lacks}" if lacks else None


def point_text(point: dict) -> str:
    """A claim's grid point as the jobs name it: ``learning_rate=0.1``."""
    return point_label(tuple(point.items()))


def measure(claim: Claim, results: ExperimentResults) -> Verdict:
    """The claim's paired measurement in its experiment (not yet adjusted)."""
    pairs = seed_pairs(claim.measure.values(results, claim.point), claim.variant, claim.baseline, "value")
    diff = (pairs[claim.variant] - pairs[claim.baseline]).to_numpy()
    numbers = tuple(pairs[[claim.variant, claim.baseline]].itertuples(name=None))
    means = float(pairs[claim.variant].mean()), float(pairs[claim.baseline].mean())
    return Verdict(claim, *means, diff, paired(diff), numbers)


def judge(claims: tuple[Claim, ...], results: dict[str, ExperimentResults]) -> list[Verdict]:
    """Every claim the experiments can test, measured and Holm-adjusted over the table (one
    family), with its adjusted interval. Claims measured from the same numbers (experiments
    that share their runs) are one comparison: it enters the family once, and its later claims
    name the first (``same_as``)."""
    verdicts = [measure(claim, results[claim.experiment]) for claim in claims if unmeasurable(claim, results) is None]
    first: dict[tuple, Verdict] = {}
    for verdict in verdicts:
        first.setdefault(verdict.comparison, verdict)
    p_values = [v.test.p_value for v in first.values()]
    adjusted = dict(zip(first, zip(holm(p_values), holm_levels(p_values))))
    for verdict in verdicts:
        verdict.p_holm, verdict.level = adjusted[verdict.comparison]
        verdict.interval = adjusted_interval(verdict.diff, verdict.test.p_value, verdict.p_holm)
        earlier = first[verdict.comparison]
        verdict.same_as = None if earlier is verdict else earlier.claim.key
    return verdicts

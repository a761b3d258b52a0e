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

from bnlab.analysis.measures import Measure, point_text
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
from bnlab.analysis.words import AGREES, DISAGREES, HELPS, HURTS, NO_EFFECT, PARTLY, T_TEST_ONLY, TOO_FEW

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
    # The page's answer: docs/results.md opens with a table of its rows ("When BN helps").
    answers: bool = False


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


def effect_word(verdict: Verdict) -> str:
    """What the variant does to the measure here, by the same rule as the claim's word but
    whatever the claim predicted: *helps* (a significant rise), *hurts*, or no effect shown."""
    word = verdict.word.removesuffix(T_TEST_ONLY)
    if word in (TOO_FEW, NO_EFFECT):
        return word
    return HELPS if verdict.test.mean > 0 else HURTS


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

"""Variants across seeds: summary statistics, each variant against the baseline, and the
comparison table.

A comparison pairs a variant's seed with the baseline's same seed (a pair shares the split, the
initial-weights draw and the batch order) and reports, from SciPy and statsmodels:
- the mean paired difference and its 95% t-interval;
- the effect size d_z (mean difference over the differences' standard deviation);
- the paired t-test's p and the exact sign-flip (paired permutation) test's p, which assumes
  nothing of the differences' distribution but cannot go below 2 / 2^n for n pairs;
- the smallest difference these seeds could detect (power 0.8, α 0.05), from the observed
  spread of the differences;
- the Holm-adjusted t-test p over every comparison of the experiment (its variants and grid
  points), controlling the family-wise error at α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from bnlab.analysis.columns import PER_SEED_COLUMNS
from bnlab.analysis.markdown import markdown_table
from bnlab.experiments.params import COMPARISON_KEY

ALPHA = 0.05  # every test and interval: two-sided, 95%
POWER = 0.8  # for the smallest detectable difference
TEST = (
    "Pairs share the split and the seed (initial weights, batch order). Gain: the mean paired "
    "difference with its 95% t-interval; d_z: that mean over the differences' standard deviation; "
    "p: paired t-test; p exact: sign-flip permutation test over all 2^n sign patterns; "
    "p Holm: the t-test's p, Holm-adjusted over every comparison of this experiment; detectable: the "
    f"smallest gain these seeds would find with power {POWER} at α = {ALPHA}, given the differences' spread"
)
# Accuracies are multiples of 1/n_test: differences equal up to float rounding are equal.
TIE = 1e-12


@dataclass(frozen=True)
class Paired:
    """One paired comparison: the statistics of ``variant − baseline`` over n seeds. Undefined
    ones (fewer than 2 pairs; d_z with no spread) are NaN."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    d_z: float
    p_value: float
    p_exact: float
    detectable: float


def paired(diff: np.ndarray) -> Paired:
    """The statistics of the paired differences ``diff`` (NaN pairs dropped)."""
    diff = np.asarray(diff, dtype=float)
    diff = diff[~np.isnan(diff)]
    n, nan = len(diff), float("nan")
    if n < 2:
        return Paired(n, float(diff.mean()) if n else nan, nan, nan, nan, nan, nan, nan)
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    if np.ptp(diff) < TIE:  # the same difference for every seed: t is infinite, or 0/0
        p_value = 0.0 if abs(mean) > TIE else 1.0
        ci_low = ci_high = mean
        sd = 0.0
    else:
        test = stats.ttest_1samp(diff, 0.0)
        p_value = float(test.pvalue)
        ci_low, ci_high = (float(x) for x in test.confidence_interval(1 - ALPHA))
    d_z = mean / sd if sd > 0 else nan
    return Paired(n, mean, ci_low, ci_high, d_z, p_value, sign_flip_p(diff), detectable_difference(n, sd))


def sign_flip_p(diff: np.ndarray) -> float:
    """Two-sided exact paired permutation test: the mean difference against its value under every
    one of the 2^n ways of flipping the pairs' signs."""
    return float(
        stats.permutation_test(
            (diff,), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
        ).pvalue
    )


def mean_interval(values: pd.Series) -> tuple[float, float, float]:
    """The mean and its two-sided 1 − α t-interval (NaN bounds for one value)."""
    values = values.to_numpy(float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def detectable_difference(n: int, sd: float, alpha: float = ALPHA) -> float:
    """The smallest mean difference a paired t-test on n pairs with this spread detects with
    power POWER at level ``alpha`` (statsmodels' power of the one-sample t-test, in units of sd)."""
    if n < 2 or math.isnan(sd) or math.isnan(alpha):
        return float("nan")
    effect = TTestPower().solve_power(nobs=n, alpha=alpha, power=POWER, alternative="two-sided")
    return float(effect) * sd


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN ones stay NaN, outside it)."""
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(values), np.nan)
    defined = ~np.isnan(values)
    if defined.any():
        adjusted[defined] = multipletests(values[defined], alpha=ALPHA, method="holm")[1]
    return adjusted.tolist()


def holm_levels(p_values: list[float]) -> list[float]:
    """The level at which Holm's step-down procedure tests each p-value of the family: α/(m − r + 1)
    for the r-th smallest of m (NaN ones stay NaN, outside the family). A row that is not
    rejected was judged at this level or never reached it, so it is the level its smallest
    detectable difference is stated at."""
    values = np.asarray(p_values, dtype=float)
    levels = np.full(len(values), np.nan)
    defined = np.flatnonzero(~np.isnan(values))
    order = defined[np.argsort(values[defined], kind="stable")]
    levels[order] = ALPHA / (len(order) - np.arange(len(order)))
    return levels.tolist()


def adjusted_interval(diff: np.ndarray, p_value: float, p_holm: float) -> tuple[float, float]:
    """The t-interval whose level matches the Holm adjustment: confidence 1 − α·p/p_holm, so it
    excludes 0 exactly when p_holm < α (for a t-test, p < α' ⇔ the (1 − α') interval excludes 0)."""
    diff = np.asarray(diff, dtype=float)
    diff = diff[~np.isnan(diff)]
    if len(diff) < 2 or math.isnan(p_holm):
        return float("nan"), float("nan")
    if np.ptp(diff) < TIE:
        return float(diff.mean()), float(diff.mean())
    # p so small that it underflowed to 0 leaves the ratio unknown; every level's interval then
    # excludes 0, and the plain 95% one is shown.
    level = 1 - ALPHA * (p_value / p_holm if p_holm > 0 else 1.0)
    return tuple(float(x) for x in stats.ttest_1samp(diff, 0.0).confidence_interval(level))


def _clean(value: float | None) -> float | None:
    """Rounded for stable, readable JSON; None where a statistic is undefined (one seed)."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _clean_p(value: float | None) -> float | None:
    """A p-value to 6 significant digits: they span orders of magnitude (1e-12 is not 0)."""
    return None if value is None or math.isnan(value) else float(f"{value:.6g}")


def comparison_entry(test: Paired) -> dict:
    """metrics.json's ``comparison.<variant>`` (the names design.md's contract gives); its
    ``p_holm`` is set by :func:`adjust_holm` once the family is known."""
    return {
        "test_accuracy_gain": _clean(test.mean),
        "gain_ci_low": _clean(test.ci_low),
        "gain_ci_high": _clean(test.ci_high),
        "effect_size_dz": _clean(test.d_z),
        "p_value": _clean_p(test.p_value),
        "p_exact": _clean_p(test.p_exact),
        "p_holm": None,
        "detectable_gain": _clean(test.detectable),
        "seeds": int(test.n),
    }


def per_seed_frame(results: list[dict], variants: list[str]) -> pd.DataFrame:
    """One row per (variant, seed), variants in the given order, seeds ascending."""
    frame = pd.DataFrame(results, columns=list(PER_SEED_COLUMNS))
    frame["variant"] = pd.Categorical(frame["variant"], categories=variants, ordered=True)
    return frame.sort_values(["variant", "seed"]).reset_index(drop=True)


def seed_pairs(per_seed: pd.DataFrame, variant: str, baseline: str, column: str = "test_accuracy") -> pd.DataFrame:
    """``column`` of ``variant`` and of the baseline side by side, one row per seed both have."""
    return per_seed.pivot(index="seed", columns="variant", values=column)[[variant, baseline]].dropna()


def paired_differences(
    per_seed: pd.DataFrame, variant: str, baseline: str, column: str = "test_accuracy"
) -> np.ndarray:
    """``column`` of ``variant`` minus the baseline's, per seed both have."""
    pairs = seed_pairs(per_seed, variant, baseline, column)
    return (pairs[variant] - pairs[baseline]).to_numpy()


def summarize(per_seed: pd.DataFrame, baseline: str, adjust: bool = True) -> dict:
    """The metrics.json schema: per variant the mean and std of test accuracy over its ``seeds``,
    the mean test loss over those that did not diverge and how many did (``diverged``: NaN or
    infinite outputs); ``comparison[variant]``: :func:`comparison_entry` of its gain over the
    baseline. ``adjust``: Holm over these comparisons (a grid adjusts over all its points)."""
    summary = {}
    for variant, rows in per_seed.groupby("variant", observed=True, sort=True):
        acc, loss = rows["test_accuracy"].to_numpy(), rows["test_loss"].to_numpy(float)
        finite = loss[np.isfinite(loss)]
        summary[variant] = {
            "test_accuracy_mean": _clean(acc.mean()),
            "test_accuracy_std": _clean(acc.std(ddof=1) if len(acc) > 1 else 0.0),
            # Over the seeds that did not diverge (a diverged network has no loss): `diverged` says
            # how many are left out, so a mean over 9 of 10 seeds never reads as one over 10.
            "test_loss_mean": _clean(finite.mean()) if len(finite) else None,
            "seeds": len(acc),
            "diverged": int(len(loss) - len(finite)),
        }
    tests = {
        variant: paired(paired_differences(per_seed, variant, baseline)) for variant in summary if variant != baseline
    }
    summary[COMPARISON_KEY] = {variant: comparison_entry(test) for variant, test in tests.items()}
    if adjust:
        adjust_holm(list(summary[COMPARISON_KEY].values()))
    return summary


def adjust_holm(comparisons: list[dict]) -> None:
    """Set each comparison's ``p_holm``: Holm over the family ``comparisons`` (in place)."""
    p_values = [math.nan if c["p_value"] is None else c["p_value"] for c in comparisons]
    for comparison, adjusted in zip(comparisons, holm(p_values)):
        comparison["p_holm"] = _clean_p(adjusted)


def _undefined(value: float | None) -> bool:
    return value is None or math.isnan(value)


def format_p(p_value: float | None) -> str:
    return "n/a (needs 2 seeds)" if _undefined(p_value) else f"{p_value:.2g}"


def two_decimals(value: float | None, scale: float = 1.0) -> str:
    return "n/a" if _undefined(value) else f"{value * scale:.2f}"


def accuracy_spread(row: dict) -> str:
    """A variant's ``96.95% ± 0.37%`` (mean ± std over seeds) from its metrics.json entry."""
    return f"{pct(row['test_accuracy_mean'])} ± {pct(row['test_accuracy_std'])}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def points(value: float | None, sign: bool = True) -> str:
    """A difference of accuracies in percentage points."""
    return "n/a" if value is None else f"{100 * value:{'+' if sign else ''}.2f}"


def gain_with_interval(comp: dict) -> str:
    """``+2.44 [+1.80, +3.08]``: the gain and its 95% interval, in points."""
    if comp["gain_ci_low"] is None:
        return points(comp["test_accuracy_gain"])
    return f"{points(comp['test_accuracy_gain'])} [{points(comp['gain_ci_low'])}, {points(comp['gain_ci_high'])}]"


def comparison_markdown(summary: dict, baseline: str, reference: dict[str, float] | None = None) -> str:
    """The table that `make run` prints and reports/<experiment>/comparison.md holds: every
    variant, its gain over the baseline and the tests (see :data:`TEST`)."""
    header = [
        "variant",
        "test accuracy (mean ± std)",
        "test loss (mean)",
        "seeds",
        f"gain over {baseline} [95% CI] (points)",
        "d_z",
        "p",
        "p exact",
        "p Holm",
        "detectable (points)",
        *(["reference (1 run)"] if reference else []),
    ]
    rows = []
    for variant, row in summary.items():
        if variant == COMPARISON_KEY:
            continue
        comp = summary[COMPARISON_KEY].get(variant)
        tests = (
            ["—"] * 6
            if comp is None
            else [
                gain_with_interval(comp),
                two_decimals(comp["effect_size_dz"]),
                format_p(comp["p_value"]),
                format_p(comp["p_exact"]),
                format_p(comp["p_holm"]),
                points(comp["detectable_gain"], sign=False),
            ]
        )
        cells = [variant, accuracy_spread(row), loss_mean(row), seed_count(row), *tests]
        if reference:
            cells.append(pct(reference.get(variant)))
        rows.append(cells)
    return markdown_table(header, rows) + f"\n\n{TEST}.\n"


def loss_mean(row: dict) -> str:
    """The mean test loss, and over how many seeds when some diverged: ``0.0812 (9 seeds)``."""
    if row["test_loss_mean"] is None:
        return "n/a"
    over = f" ({row['seeds'] - row['diverged']} seeds)" if row["diverged"] else ""
    return f"{row['test_loss_mean']:.4f}{over}"


def seed_count(row: dict) -> str:
    """``10``, or ``10 (1 diverged)``."""
    return f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")


def mean_history(histories: list[dict[str, list[float]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric: mean and std across seeds, per epoch."""
    keys = histories[0].keys()
    return {k: (np.mean([h[k] for h in histories], axis=0), np.std([h[k] for h in histories], axis=0)) for k in keys}

"""Variants across seeds: summary statistics, each variant against the baseline with a paired
test, and the comparison table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from bnlab.analysis.columns import PER_SEED_COLUMNS
from bnlab.experiments.params import COMPARISON_KEY

TEST = "paired t-test on test accuracy; a pair shares the split and the seed (initial weights draw, batch order)"


def _clean(value: float | None) -> float | None:
    """Rounded for stable, readable JSON; None where a statistic is undefined (one seed)."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def per_seed_frame(results: list[dict], variants: list[str]) -> pd.DataFrame:
    """One row per (variant, seed), variants in the given order, seeds ascending."""
    frame = pd.DataFrame(results, columns=list(PER_SEED_COLUMNS))
    frame["variant"] = pd.Categorical(frame["variant"], categories=variants, ordered=True)
    return frame.sort_values(["variant", "seed"]).reset_index(drop=True)


def summarize(per_seed: pd.DataFrame, baseline: str) -> dict:
    """The metrics.json schema: per variant the mean and std of test accuracy and the mean test
    loss across seeds; ``comparison[variant]``: its gain over the baseline, the paired test's
    p-value and the number of paired seeds."""
    summary = {}
    for variant, rows in per_seed.groupby("variant", observed=True, sort=True):
        acc = rows["test_accuracy"].to_numpy()
        summary[variant] = {
            "test_accuracy_mean": _clean(acc.mean()),
            "test_accuracy_std": _clean(acc.std(ddof=1) if len(acc) > 1 else 0.0),
            "test_loss_mean": _clean(rows["test_loss"].mean()),
        }
    by_seed = per_seed.pivot(index="seed", columns="variant", values="test_accuracy")
    summary[COMPARISON_KEY] = {}
    for variant in summary:
        if variant in (baseline, COMPARISON_KEY):
            continue
        pairs = by_seed[[variant, baseline]].dropna()
        a, b = pairs[variant].to_numpy(), pairs[baseline].to_numpy()
        summary[COMPARISON_KEY][variant] = {
            "test_accuracy_gain": _clean((a - b).mean() if len(a) else float("nan")),
            "p_value": _clean(paired_p_value(a, b)),
            "seeds": int(len(a)),
        }
    return summary


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test; NaN below 2 pairs. Identical differences (zero variance): t is
    infinite, p = 0, or undefined for no difference at all, p = 1."""
    if len(a) < 2:
        return float("nan")
    diff = np.asarray(a) - np.asarray(b)
    if np.any(np.isnan(diff)):
        return float("nan")
    if np.ptp(diff) < 1e-12:  # equal up to rounding: accuracies are multiples of 1/n_test
        return 0.0 if abs(diff[0]) > 1e-12 else 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def format_p(p_value: float | None) -> str:
    return "n/a (needs 2 seeds)" if p_value is None else f"{p_value:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def comparison_markdown(summary: dict, baseline: str, n_seeds: dict[str, int],
                        reference: dict[str, float] | None = None) -> str:
    """The table that `make run` prints and reports/<experiment>/comparison.md holds."""
    header = f"| variant | test accuracy (mean ± std) | test loss (mean) | seeds | gain over {baseline} | p |"
    lines = [header + (" reference (1 run) |" if reference else ""),
             "|---" * (6 + bool(reference)) + "|"]
    for variant, row in summary.items():
        if variant == COMPARISON_KEY:
            continue
        comp = summary[COMPARISON_KEY].get(variant)
        gain = "—" if comp is None else f"{100 * comp['test_accuracy_gain']:+.2f} points"
        p = "—" if comp is None else format_p(comp["p_value"])
        line = (f"| {variant} | {_pct(row['test_accuracy_mean'])} ± {_pct(row['test_accuracy_std'])} "
                f"| {row['test_loss_mean']:.4f} | {n_seeds[variant]} | {gain} | {p} |")
        if reference:
            line += f" {_pct(reference.get(variant))} |"
        lines.append(line)
    return "\n".join(lines) + f"\n\n{TEST}.\n"


def mean_history(histories: list[dict[str, list[float]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric: mean and std across seeds, per epoch."""
    keys = histories[0].keys()
    return {k: (np.mean([h[k] for h in histories], axis=0), np.std([h[k] for h in histories], axis=0))
            for k in keys}

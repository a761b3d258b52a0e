"""BN vs plain across seeds: summary statistics, a paired test, and the comparison table."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

VARIANTS = ("batchnorm", "plain")
# The reference notebook's single-run test accuracies (TF1, one seed each).
REFERENCE = {"batchnorm": 0.9713, "plain": 0.9449}


def _clean(value: float) -> float | None:
    """Rounded for stable, readable JSON; None where a statistic is undefined (one seed)."""
    return None if value is None or math.isnan(value) else round(float(value), 6)


def summarize(per_model: dict[str, dict[int, dict]]) -> dict:
    """``per_model[variant][seed] = {"test_accuracy": .., "test_loss": ..}`` → the metrics.json
    schema: per variant mean/std across seeds and per seed; BN's gain and a paired t-test."""
    summary = {}
    for variant in VARIANTS:
        runs = per_model[variant]
        acc = np.array([runs[s]["test_accuracy"] for s in sorted(runs)])
        loss = np.array([runs[s]["test_loss"] for s in sorted(runs)])
        summary[variant] = {
            "test_accuracy_mean": _clean(acc.mean()),
            "test_accuracy_std": _clean(acc.std(ddof=1) if len(acc) > 1 else 0.0),
            "test_loss_mean": _clean(loss.mean()),
            "test_loss_std": _clean(loss.std(ddof=1) if len(loss) > 1 else 0.0),
            "per_seed": {str(s): {"test_accuracy": _clean(runs[s]["test_accuracy"]),
                                  "test_loss": _clean(runs[s]["test_loss"])} for s in sorted(runs)},
        }
    seeds = sorted(set(per_model["batchnorm"]) & set(per_model["plain"]))
    bn = np.array([per_model["batchnorm"][s]["test_accuracy"] for s in seeds])
    plain = np.array([per_model["plain"][s]["test_accuracy"] for s in seeds])
    p_value = _paired_p_value(bn, plain)
    summary["comparison"] = {
        "test_accuracy_gain": _clean((bn - plain).mean()),
        "p_value": _clean(p_value),
        "test": "paired t-test on test accuracy; a pair shares the split and the seed (initial weights draw, batch order)",
        "seeds": len(seeds),
    }
    return summary


def _paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    diff = a - b
    if np.all(diff == diff[0]):  # zero variance: t is infinite (or undefined for no gain)
        return 0.0 if diff[0] != 0 else 1.0
    return float(stats.ttest_rel(a, b).pvalue)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def comparison_markdown(summary: dict) -> str:
    """The table that `make run` prints and reports/comparison.md holds."""
    comp = summary["comparison"]
    lines = [
        "| variant | test accuracy (mean ± std) | test loss (mean) | seeds | reference notebook (1 run) |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        row = summary[variant]
        lines.append(
            f"| {variant} | {_pct(row['test_accuracy_mean'])} ± {_pct(row['test_accuracy_std'])} "
            f"| {row['test_loss_mean']:.4f} | {len(row['per_seed'])} | {_pct(REFERENCE[variant])} |"
        )
    p = "n/a (needs 2 seeds)" if comp["p_value"] is None else f"{comp['p_value']:.3g}"
    lines += [
        "",
        f"BN gain in test accuracy: {100 * comp['test_accuracy_gain']:+.2f} points "
        f"(reference notebook: {100 * (REFERENCE['batchnorm'] - REFERENCE['plain']):+.2f}); "
        f"paired t-test over {comp['seeds']} seeds: p = {p}.",
    ]
    return "\n".join(lines) + "\n"


def mean_history(histories: list[dict[str, list[float]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric: mean and std across seeds, per epoch."""
    keys = histories[0].keys()
    return {k: (np.mean([h[k] for h in histories], axis=0), np.std([h[k] for h in histories], axis=0))
            for k in keys}

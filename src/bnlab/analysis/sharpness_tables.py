"""Numbers from sharpness.csv (:mod:`bnlab.ml.sharpness`): λ_max, the top eigenvalue of the
training loss's Hessian, along training, beside the largest curvature gradient descent is
stable on.

Theory (Cohen et al. 2021): gradient descent at rate η on a quadratic diverges along any
direction whose curvature exceeds 2/η, and with heavy-ball momentum μ above 2(1 + μ)/η. Under
full-batch gradient descent λ_max first rises (progressive sharpening) until it reaches that
threshold and then hovers at or just above it (the edge of stability) while the loss goes on
falling, non-monotonically. No threshold is given for Adam, whose preconditioned steps the
formula does not cover.

The late sharpness of a run is the median λ_max over its watched steps after :data:`LATE` of
training; the table gives the mean over seeds with its 95% t-interval, divided by the threshold,
and a word by this rule: *at the edge* when the interval of that ratio lies within
[:data:`EDGE_LOW`, :data:`EDGE_HIGH`], *below* / *above* when it lies wholly under / over that
band, *undecided* otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analysis.markdown import markdown_table, significant
from bnlab.analysis.statistics import ALPHA, mean_interval

LATE = 0.5  # a run's watched steps after this fraction of its steps
EDGE_LOW, EDGE_HIGH = 0.8, 1.25  # λ_max within these multiples of the threshold is "at the edge"
THRESHOLD_FOR = "sgd"  # the optimizer the threshold is derived for


def stability_threshold(optimizer: str, learning_rate: float, momentum: float) -> float:
    """2(1 + μ)/η under SGD (2/η without momentum); NaN under another optimizer."""
    if optimizer != THRESHOLD_FOR:
        return math.nan
    return 2 * (1 + momentum) / learning_rate


def run_keys(frame: pd.DataFrame) -> list[str]:
    """The columns naming one run: a grid's settings, variant, seed."""
    return list(frame.columns[: list(frame.columns).index("seed") + 1])


def late_sharpness_per_run(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``value`` per run (with its grid columns, variant and seed): the median λ_max over its
    watched steps after :data:`LATE` of its last."""
    keys = run_keys(frame)
    last = frame.groupby(keys, observed=True)["step"].transform("max")
    late = frame[frame["step"] > LATE * last]
    return late.groupby(keys, observed=True, sort=False)["lambda_max"].median().rename("value").reset_index()


def edge_word(low: float, high: float) -> str:
    """The module's rule, on the interval of late λ_max / threshold."""
    if math.isnan(low) or math.isnan(high):
        return "—"
    if EDGE_LOW <= low and high <= EDGE_HIGH:
        return "at the edge"
    if high < EDGE_LOW:
        return "below"
    if low > EDGE_HIGH:
        return "above"
    return "undecided"


def _setting(settings: pd.DataFrame, variant: str, name: str, point: dict):
    rows = settings[settings["variant"] == variant]
    for key, value in point.items():
        rows = rows[np.isclose(rows[key], value)] if key in rows else rows
    return rows[name].iloc[0]


def sharpness_table(frame: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per network (grid point, variant): η, the threshold, λ_max at the first watched
    step and its peak (means over seeds), the late λ_max with its interval over seeds, late
    λ_max / threshold with its interval, and the word for it."""
    keys = run_keys(frame)
    groups = keys[:-1]  # a grid's settings and the variant
    per_run = late_sharpness_per_run(frame)
    found = []
    for group, own in frame.groupby(groups, observed=True, sort=False):
        point = dict(zip(groups, group if isinstance(group, tuple) else (group,)))
        variant = point.pop("variant")
        rate = _setting(settings, variant, "learning_rate", point)
        threshold = stability_threshold(
            _setting(settings, variant, "optimizer", point), rate, _setting(settings, variant, "momentum", point)
        )
        runs = per_run
        for key, value in {**point, "variant": variant}.items():
            runs = runs[runs[key] == value]
        mean, low, high = mean_interval(runs["value"])
        by_step = own.groupby("step", observed=True)["lambda_max"].mean()
        ratio = [v / threshold for v in (mean, low, high)]
        found.append(
            {
                **point,
                "variant": variant,
                "learning_rate": rate,
                "threshold": threshold,
                "first": by_step.iloc[0],
                "peak": by_step.max(),
                "late": mean,
                "late_low": low,
                "late_high": high,
                "ratio": ratio[0],
                "ratio_low": ratio[1],
                "ratio_high": ratio[2],
                "word": edge_word(ratio[1], ratio[2]),
            }
        )
    return pd.DataFrame(found)


def sharpness_markdown(frame: pd.DataFrame, settings: pd.DataFrame, heading: str = "##") -> str:
    """The sharpness table under a ``heading``-level title; empty without sharpness."""
    if frame.empty:
        return ""
    table = sharpness_table(frame, settings)
    n_seeds = frame.groupby("variant", observed=True)["seed"].nunique().min()
    ci = f"{1 - ALPHA:.0%} CI"
    rows = [
        [
            row.variant,
            significant(row.learning_rate),
            significant(row.threshold, 3),
            significant(row.first, 3),
            significant(row.peak, 3),
            f"{significant(row.late, 3)} [{significant(row.late_low, 3)}, {significant(row.late_high, 3)}]",
            f"{significant(row.ratio, 3)} [{significant(row.ratio_low, 3)}, {significant(row.ratio_high, 3)}]",
            row.word,
        ]
        for row in table.itertuples()
    ]
    header = ["variant", "η", "2(1+μ)/η", "λ_max first", "λ_max peak", f"λ_max late [{ci}]", "late / threshold", "edge"]
    return "\n".join(
        [
            "",
            f"{heading} Sharpness: λ_max of the training loss's Hessian (Cohen et al. 2021)",
            "",
            f"λ_max on the probe's fixed training images after each watched step (Lanczos on "
            f"Hessian–vector products). First and peak: means over {n_seeds} seeds at the first "
            f"watched step and at the step where that mean is largest; late: each run's median over "
            f"the watched steps after {LATE:.0%} of training, mean over seeds. The threshold is the "
            f"curvature gradient descent at rate η (momentum μ) is stable on; none for Adam. *At the "
            f"edge*: the interval of late / threshold within [{EDGE_LOW}, {EDGE_HIGH}]; *below* or "
            f"*above*: wholly under or over it; else *undecided*.",
            "",
            markdown_table(header, rows),
            "",
        ]
    )

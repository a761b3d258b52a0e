"""Numbers from weight_norms.csv (:mod:`bnlab.ml.weight_norms`): the hidden kernels' norms and
angular updates, the effective learning rate η/‖w‖², and the equilibrium angular update
measured beside the value theory predicts for it.

Theory (Wan et al. 2021, for SGD with momentum μ and L2 weight decay λ, the form this project
applies): a scale-invariant kernel's norm settles where decay's shrinking balances the gradient's
growing, and its angular update per step then settles at √(2ηλ/(1 + μ)), whatever the initial
norm. Without decay the norm only grows, so the angular update and η/‖w‖² keep falling. Adam
scales each coordinate's step by its own history, which the formula does not cover: no
prediction is given for it.

The equilibrium is measured over the watched steps of each run's second half (:data:`LATE`), one
number per run (the mean over those steps and the hidden layers), then the mean over seeds with
its 95% t-interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analysis.markdown import markdown_table, significant
from bnlab.analysis.statistics import ALPHA, mean_interval

RUN = ["variant", "seed"]
LATE = 0.5  # the equilibrium: a run's watched steps after this fraction of its steps
PREDICTED_FOR = "sgd"  # the optimizer the prediction is derived for


def predicted_angular_update(optimizer: str, learning_rate: float, weight_decay: float, momentum: float) -> float:
    """√(2ηλ/(1 + μ)) (Wan et al. 2021) under SGD; NaN under another optimizer."""
    if optimizer != PREDICTED_FOR:
        return math.nan
    return math.sqrt(2 * learning_rate * weight_decay / (1 + momentum))


def with_effective_rate(frame: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``effective_rate`` = η/‖w‖², η each variant's learning rate."""
    rates = settings.set_index("variant")["learning_rate"]
    return frame.assign(effective_rate=frame["variant"].map(rates) / frame["kernel_norm"] ** 2)


def late_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's rows after :data:`LATE` of its last watched step."""
    last = frame.groupby(RUN, observed=True)["step"].transform("max")
    return frame[frame["step"] > LATE * last]


def angular_update_per_run(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``value`` per run: its mean angular update (radians per step) at equilibrium."""
    return (
        late_rows(frame).groupby(RUN, observed=True, sort=False)["angular_update"].mean().rename("value").reset_index()
    )


def effective_rate_per_run(frame: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One ``value`` per run: log10 of η/‖w‖² at its last watched step, mean over hidden layers."""
    rows = with_effective_rate(frame, settings)
    last = rows[rows["step"] == rows.groupby(RUN, observed=True)["step"].transform("max")]
    return (
        last.assign(value=np.log10(last["effective_rate"]))
        .groupby(RUN, observed=True, sort=False)["value"]
        .mean()
        .reset_index()
    )


def equilibrium_table(frame: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its η, λ, μ, the predicted and measured equilibrium angular update
    (with the interval over seeds), their ratio, and ‖w‖ and η/‖w‖² at the first and last
    watched steps (means over seeds and layers)."""
    per_run = angular_update_per_run(frame)
    rows = with_effective_rate(frame, settings)
    found = []
    for variant in dict.fromkeys(frame["variant"]):
        setting = settings[settings["variant"] == variant].iloc[0]
        predicted = predicted_angular_update(
            setting["optimizer"], setting["learning_rate"], setting["weight_decay"], setting["momentum"]
        )
        mean, low, high = mean_interval(per_run.loc[per_run["variant"] == variant, "value"])
        own = rows[rows["variant"] == variant]
        first, last = own[own["step"] == own["step"].min()], own[own["step"] == own["step"].max()]
        found.append(
            {
                "variant": variant,
                "learning_rate": setting["learning_rate"],
                "weight_decay": setting["weight_decay"],
                "momentum": setting["momentum"],
                "predicted": predicted,
                "measured": mean,
                "measured_low": low,
                "measured_high": high,
                "ratio": mean / predicted if predicted > 0 else math.nan,
                "kernel_norm_first": first["kernel_norm"].mean(),
                "kernel_norm_last": last["kernel_norm"].mean(),
                "effective_rate_first": first["effective_rate"].mean(),
                "effective_rate_last": last["effective_rate"].mean(),
            }
        )
    return pd.DataFrame(found)


def weight_norm_markdown(frame: pd.DataFrame, settings: pd.DataFrame, heading: str = "##") -> str:
    """The equilibrium table under a ``heading``-level title; empty without weight norms."""
    if frame.empty:
        return ""
    table = equilibrium_table(frame, settings)
    n_seeds = frame.groupby("variant", observed=True)["seed"].nunique().min()
    rows = [
        [
            row.variant,
            significant(row.learning_rate),
            significant(row.weight_decay),
            significant(row.momentum),
            significant(row.predicted),
            f"{significant(row.measured)} [{significant(row.measured_low)}, {significant(row.measured_high)}]",
            significant(row.ratio, 3),
            f"{significant(row.kernel_norm_first, 3)} → {significant(row.kernel_norm_last, 3)}",
            f"{significant(row.effective_rate_first, 3)} → {significant(row.effective_rate_last, 3)}",
        ]
        for row in table.itertuples()
    ]
    header = [
        "variant",
        "η",
        "λ (L2)",
        "μ",
        "predicted √(2ηλ/(1+μ)), rad/step",
        f"measured, rad/step [{1 - ALPHA:.0%} CI]",
        "measured / predicted",
        "‖w‖ first → last",
        "η/‖w‖² first → last",
    ]
    return "\n".join(
        [
            "",
            f"{heading} Scale invariance: kernel norms and angular updates (Wan et al. 2021)",
            "",
            f"The hidden kernels' angular update per optimizer step at equilibrium (the watched steps "
            f"after {LATE:.0%} of training; mean over them and the layers per run, then over {n_seeds} "
            f"seeds), beside √(2ηλ/(1+μ)), which Wan et al. derive for SGD with momentum and L2 decay "
            f"(no prediction for another optimizer). ‖w‖ and the effective rate η/‖w‖²: means over "
            f"seeds and layers at the first and last watched steps.",
            "",
            markdown_table(header, rows),
            "",
        ]
    )

"""Numbers from init_gradients.csv (Yang et al. 2019, measured by :mod:`bnlab.ml.init_gradients`)
and from a depth × batch-size grid's sweep.csv: each run's measured growth factor per layer
beside the theory's (:mod:`bnlab.analysis.mean_field`), and the trainability map's cells.

A run's factor λ̂ is fitted over its middle layers: the first :data:`FIT_MARGIN` are left out
(MNIST's correlated images have not yet relaxed to the theory's fixed point there) and so are the
last ones (next to the output layer, which has no BN).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
from scipy import stats

from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.mean_field import (
    PLAIN_HE_RATE,
    SMALLEST_BATCH,
    bn_relu_gradient_rate,
    measured_rate,
    trainable_depth,
)
from bnlab.experiments.params import ExperimentParams

FIT_MARGIN = 5  # layers left out of the fit at each end
RUN = ["variant", "seed"]
NETWORK = ["batch_size", "depth"]


def fitted_layers(depth: int) -> range:
    """The layers a run's factor is fitted over: FIT_MARGIN + 1 .. depth − FIT_MARGIN."""
    return range(FIT_MARGIN + 1, depth - FIT_MARGIN + 1)


def rate_per_run(init_gradients: pd.DataFrame) -> pd.DataFrame:
    """One ``value`` = λ̂ per (variant, seed, batch_size, depth), for networks deep enough to fit
    over at least three layers."""
    rows = []
    for key, group in init_gradients.groupby([*RUN, *NETWORK], observed=True, sort=False):
        layers = fitted_layers(int(key[-1]))
        middle = group[group["layer"].isin(layers)]
        if len(middle) >= 3:
            rows.append(
                {**dict(zip([*RUN, *NETWORK], key)), "value": measured_rate(middle["layer"], middle["grad_sq_norm"])}
            )
    return pd.DataFrame(rows, columns=[*RUN, *NETWORK, "value"])


def predicted_rate(resolved: Callable[[str], object], batch_size: int) -> float:
    """The theory's factor for a network whose estimator settings ``resolved(name)`` gives
    (:meth:`ModelParams.resolved`, or a row of a report's settings.csv): λ(B) for BN (before a
    ReLU, no noise), 1 for a plain ReLU network with He initialization, NaN where the theory says
    nothing (a residual network is not the chain of layers the theory follows)."""
    if (
        resolved("activation") != "relu"
        or not unset(resolved("init_std"))
        or resolved("residual") != "none"
        or batch_size < SMALLEST_BATCH
    ):
        return math.nan
    if not resolved("batch_norm"):
        return PLAIN_HE_RATE if resolved("initializer") == "he_normal" else math.nan
    plain_bn = (
        resolved("normalization") == "batch"
        and resolved("bn_position") == "before"
        and resolved("noise_shift") == 0
        and resolved("noise_scale") == 1
    )
    return bn_relu_gradient_rate(batch_size) if plain_bn else math.nan


def unset(value) -> bool:
    """An optional setting left out: None in params, an empty cell (NaN) in a CSV."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def theory_rates(experiment: ExperimentParams) -> dict[tuple[str, int], float]:
    """:func:`predicted_rate` of every variant at every batch size the experiment trains with."""
    swept = (experiment.grid or {}).get("batch_size")
    return {
        (variant, int(size)): predicted_rate(experiment.settings(variant).resolved, int(size))
        for variant in experiment.variants
        for size in (swept or [experiment.settings(variant).resolved("batch_size")])
    }


def depth_limits(theory: dict[tuple[str, int], float]) -> dict[tuple[str, int], float]:
    """The depth limit 16 / ln λ per (variant, batch size) of :func:`theory_rates` (NaN where
    the theory says nothing)."""
    return {key: trainable_depth(rate) for key, rate in theory.items()}


def limit_text(limit: float) -> str:
    """A depth limit as the tables print it: "none" where gradients do not grow, "n/a" where
    the theory says nothing."""
    return "n/a" if math.isnan(limit) else "none" if math.isinf(limit) else f"{limit:.1f}"


def rate_table(init_gradients: pd.DataFrame, theory: dict[tuple[str, int], float]) -> pd.DataFrame:
    """Per (variant, batch_size, depth): λ̂'s mean, std and 95% t-interval over seeds, the theory's
    λ and the depth limit 16 / ln λ it predicts."""
    rows = []
    for (variant, batch_size, depth), group in rate_per_run(init_gradients).groupby(
        ["variant", *NETWORK], observed=True, sort=False
    ):
        values, n = group["value"], len(group)
        half = stats.t.ppf(0.975, n - 1) * values.std() / math.sqrt(n) if n > 1 else math.nan
        rate = theory.get((variant, int(batch_size)), math.nan)
        rows.append(
            {
                "variant": variant,
                "batch_size": int(batch_size),
                "depth": int(depth),
                "seeds": n,
                "mean": values.mean(),
                "std": values.std(),
                "low": values.mean() - half,
                "high": values.mean() + half,
                "theory": rate,
                "depth_limit": trainable_depth(rate) if not math.isnan(rate) else math.nan,
            }
        )
    return pd.DataFrame(rows)


def init_gradient_markdown(
    init_gradients: pd.DataFrame, theory: dict[tuple[str, int], float], heading: str = "##"
) -> str:
    """The measured factors beside the theory's, under a ``heading``-level title; empty
    without measurements."""
    table = rate_table(init_gradients, theory) if not init_gradients.empty else pd.DataFrame()
    if table.empty:
        return ""
    lines = [
        "",
        f"{heading} Gradients at initialization (Yang et al. 2019)",
        "",
        "λ̂: the factor by which ‖∂L/∂h_l‖² grows per layer going down, fitted over layers "
        f"{FIT_MARGIN + 1} to depth − {FIT_MARGIN} of each run (mean ± std over seeds, 95% t-interval); "
        "λ: the theory's (Theorem 8 for BN, 1 for plain ReLU with He initialization); "
        "depth limit: 16 / ln λ.",
        "",
    ]
    rows = []
    for row in table.itertuples():
        limit = limit_text(row.depth_limit)
        theory = "n/a" if math.isnan(row.theory) else f"{row.theory:.4f}"
        rows.append(
            [
                row.variant,
                row.batch_size,
                row.depth,
                f"{row.mean:.4f} ± {row.std:.4f} (n={row.seeds})",
                f"[{row.low:.4f}, {row.high:.4f}]",
                theory,
                limit,
            ]
        )
    lines.append(
        markdown_table(["variant", "batch size", "depth", "λ̂", "95% interval", "λ (theory)", "depth limit"], rows)
    )
    return "\n".join(lines) + "\n"


def trainability_cells(sweep: pd.DataFrame) -> pd.DataFrame:
    """The trainability map's cells: mean test accuracy over seeds per (variant, depth,
    batch_size) of a depth × batch-size grid."""
    return (
        sweep.groupby(["variant", "depth", "batch_size"], observed=True, sort=False)["test_accuracy"]
        .mean()
        .reset_index()
    )

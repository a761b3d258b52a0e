"""The figures of the mechanisms' probes: the hidden kernels' angular updates and effective
rate (weight_norms.png), λ_max along training beside the stability threshold (sharpness.png)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bnlab.analysis.figures import bands_by_step


def weight_norm_figure(frame: pd.DataFrame, predicted: dict, palette: dict[str, str], n_seeds: int) -> Figure:
    """The hidden kernels' angular update per step and effective rate η/‖w‖² (``frame``: per
    run, step and layer, with ``effective_rate``) against steps, one line per variant (geometric
    mean ± 1 geometric std over seeds and layers), each variant's ``predicted`` equilibrium
    angular update (where defined) dashed."""
    fig = Figure(figsize=(11, 4), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, column, title in zip(axes, ("angular_update", "effective_rate"), ("angular update, rad/step", "η/‖w‖²")):
        bands_by_step(ax, frame, column, palette, log=True)
        ax.set_title(f"hidden kernels: {title}", fontsize=9)
    for variant, value in predicted.items():
        if value > 0:
            axes[0].axhline(value, color=palette[variant], linestyle="--", linewidth=1, label=f"{variant}: predicted")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Scale invariance and weight decay (band over {n_seeds} seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def sharpness_figure(frame: pd.DataFrame, table: pd.DataFrame, palette: dict[str, str], n_seeds: int) -> Figure:
    """λ_max against steps (``frame``: sharpness.csv's rows), one panel per learning rate of a
    grid (one panel without), one line per variant (mean over seeds, the seeds' range shaded),
    each panel's stability threshold (``table``: :func:`bnlab.analysis.sharpness_tables.sharpness_table`)
    dashed where one is defined; log scale."""
    rates = list(dict.fromkeys(frame["learning_rate"])) if "learning_rate" in frame else [None]
    fig = Figure(figsize=(4.2 * len(rates) + 0.6, 4), dpi=100)
    axes = fig.subplots(1, len(rates), squeeze=False)[0]
    for ax, rate in zip(axes, rates):
        rows = frame if rate is None else frame[frame["learning_rate"] == rate]
        for variant, own in rows.groupby("variant", observed=True, sort=False):
            by_step = own.groupby("step")["lambda_max"]
            ax.plot(by_step.mean().index, by_step.mean(), color=palette[variant], label=variant)
            ax.fill_between(by_step.min().index, by_step.min(), by_step.max(), color=palette[variant], alpha=0.2)
        thresholds = table if rate is None else table[np.isclose(table["learning_rate"], rate)]
        threshold = thresholds["threshold"].dropna()
        if len(threshold):
            ax.axhline(threshold.iloc[0], color="black", linestyle="--", linewidth=1, label="2(1+μ)/η")
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("λ_max")
        ax.set_title("" if rate is None else f"η = {rate:g}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Sharpness along training (mean and range over {n_seeds} seeds)", fontsize=11)
    fig.tight_layout()
    return fig

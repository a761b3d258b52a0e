"""Figures from histories, test results and probes: matplotlib's object API, no global state.
Variants get colours in the order given (the baseline last), so any number of variants works."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from bnlab.ml.probe_rows import POOLED

TITLES = {
    "train_loss": "Training loss",
    "train_accuracy": "Training accuracy",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
}
PALETTE = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
BASELINE_COLOR = "tab:orange"


def distinct_colors(n: int) -> list[str]:
    """``n`` colours, none of them the baseline's orange: PALETTE's first, then tab20's
    non-orange ones (18), then as many hues as needed."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    tab20 = [to_hex(c) for i, c in enumerate(colormaps["tab20"].colors) if i not in (2, 3)]  # 2, 3: orange
    if n <= len(tab20):
        return tab20[:n]
    return [to_hex(colormaps["hsv"](i / n)) for i in range(n)]


def colors(variants: list[str], baseline: str) -> dict[str, str]:
    """One colour per variant, each its own; the baseline always orange, as in every figure of
    the project."""
    others = iter(distinct_colors(sum(v != baseline for v in variants)))
    return {v: BASELINE_COLOR if v == baseline else next(others) for v in variants}


def _band(ax, x, mean, std, color, label, marker=None) -> None:
    ax.plot(x, mean, marker=marker, color=color, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)


def curve_figure(
    metric: str, curves: dict[str, tuple[np.ndarray, np.ndarray]], n_seeds: int, palette: dict[str, str]
) -> Figure:
    """A metric per epoch, one line per variant: mean across seeds with a ±1 std band."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for variant, (mean, std) in curves.items():
        _band(ax, np.arange(1, len(mean) + 1), mean, std, palette[variant], variant, marker="o")
    ax.set_title(f"{TITLES[metric]} (mean ± std over {n_seeds} seeds)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.split("_")[-1])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def steps_figure(steps: pd.DataFrame, column: str, title: str, palette: dict[str, str]) -> Figure:
    """``column`` of steps.csv against optimizer steps, one line per variant: mean ± std over
    seeds (Ioffe & Szegedy's Figure 1a with column="test_accuracy")."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for variant in palette:
        rows = steps[steps["variant"] == variant].dropna(subset=[column])
        if rows.empty:
            continue
        stats = rows.groupby("step")[column].agg(["mean", "std"]).fillna(0.0)
        _band(ax, stats.index.to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy(), palette[variant], variant)
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(column.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def percentiles_figure(probes: pd.DataFrame, layer: int, unit: str, seed: int, variants: list[str]) -> Figure:
    """15th, 50th and 85th percentiles of one layer's input to its nonlinearity over training,
    one panel per variant, shared y axis (Ioffe & Szegedy's Figure 1b, c for the fixed unit of
    the last hidden layer)."""
    fig = Figure(figsize=(4 * len(variants), 3.6), dpi=100)
    axes = fig.subplots(1, len(variants), sharey=True, squeeze=False)[0]
    what = "all units pooled" if unit == POOLED else f"unit {unit}"
    for ax, variant in zip(axes, variants):
        rows = probes[
            (probes["variant"] == variant)
            & (probes["seed"] == seed)
            & (probes["layer"] == layer)
            & (probes["unit"] == unit)
        ].sort_values("step")
        for column, style in (("p85", "--"), ("p50", "-"), ("p15", "--")):
            ax.plot(rows["step"], rows[column], style, color="black", label=column)
        ax.set_title(f"{variant}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"input to nonlinearity, layer {layer}")
    axes[0].legend()
    fig.suptitle(f"15/50/85th percentiles, layer {layer}, {what} (seed {seed})")
    fig.tight_layout()
    return fig


def layers_figure(probes: pd.DataFrame, column: str, ylabel: str, palette: dict[str, str]) -> Figure:
    """``column`` of the pooled ("all") probe rows over training, one panel per hidden layer,
    one line per variant: mean ± std over seeds."""
    pooled = probes[probes["unit"] == POOLED]
    layers = sorted(pooled["layer"].unique())
    fig = Figure(figsize=(4 * len(layers), 3.6), dpi=100)
    axes = fig.subplots(1, len(layers), sharey=True, squeeze=False)[0]
    for ax, layer in zip(axes, layers):
        for variant, color in palette.items():
            rows = pooled[(pooled["variant"] == variant) & (pooled["layer"] == layer)]
            stats = rows.groupby("step")[column].agg(["mean", "std"]).fillna(0.0)
            _band(ax, stats.index.to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy(), color, variant)
        ax.set_title(f"hidden layer {layer}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[0].legend()
    fig.tight_layout()
    return fig


def sweep_figure(
    stats: dict[str, pd.DataFrame], x: str, ylabel: str, title: str, palette: dict[str, str], log_y: bool = False
) -> Figure:
    """A metric against a swept setting, one line per variant: mean ± std over seeds, on a log
    x axis when the setting's values span more than a factor of 10 (learning rates)."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for variant, rows in stats.items():
        _band(
            ax,
            rows.index.to_numpy(dtype=float),
            rows["mean"].to_numpy(),
            rows["std"].to_numpy(),
            palette[variant],
            variant,
            marker="o",
        )
    values = np.concatenate([rows.index.to_numpy(dtype=float) for rows in stats.values()])
    if values.min() > 0 and values.max() / values.min() > 10:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def bands_by_step(ax, frame: pd.DataFrame, column: str, palette: dict[str, str], log: bool) -> None:
    """One line per variant against optimizer steps: the mean over seeds ± 1 std (of log10
    where ``log``: the geometric mean, times or divided by the geometric std)."""
    for variant, color in palette.items():
        rows = frame[frame["variant"] == variant]
        if rows.empty:
            continue
        values = np.log10(rows[column]) if log else rows[column]
        stats = rows.assign(value=values).groupby("step")["value"].agg(["mean", "std"]).fillna(0.0)
        mean, std = stats["mean"].to_numpy(), stats["std"].to_numpy()
        if log:
            ax.plot(stats.index, 10**mean, color=color, label=variant)
            ax.fill_between(stats.index, 10 ** (mean - std), 10 ** (mean + std), color=color, alpha=0.2)
            ax.set_yscale("log")
        else:
            _band(ax, stats.index.to_numpy(), mean, std, color, variant)
    ax.set_xscale("log")
    ax.set_xlabel("optimizer step")
    ax.grid(alpha=0.3, which="both")


def landscape_figure(
    per_probe: pd.DataFrame, direction: str, labels: dict[str, str], palette: dict[str, str], n_seeds: int
) -> Figure:
    """Santurkar et al.'s Figure 4 for one direction: each probe's loss variation, gradient
    predictiveness and β-smoothness (``labels``: column → axis label) against steps, one line
    per variant: the geometric mean over seeds with a ±1 geometric-std band."""
    fig = Figure(figsize=(5 * len(labels), 3.8), dpi=100)
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    rows = per_probe[per_probe["direction"] == direction]
    for ax, (column, label) in zip(axes, labels.items()):
        bands_by_step(ax, rows, column, palette, log=True)
        ax.set_title(label, fontsize=9)
    axes[0].legend()
    fig.suptitle(f"The loss landscape along the {direction} direction (band over {n_seeds} seeds)")
    fig.tight_layout()
    return fig


def shift_figure(
    ics: pd.DataFrame, labels: dict[str, str], logged: set[str], palette: dict[str, str], n_seeds: int
) -> Figure:
    """Santurkar et al.'s Figure 3: each of ``labels``' columns (‖G − G′‖₂, cos(G, G′))
    against steps, one column of panels per layer, one line per variant (mean ± std over seeds,
    geometric and on a log scale for the columns in ``logged``)."""
    layers = sorted(ics["layer"].unique())
    fig = Figure(figsize=(max(4.5 * len(layers), 7), 6.4), dpi=100)
    axes = fig.subplots(len(labels), len(layers), squeeze=False)
    for j, layer in enumerate(layers):
        for i, (quantity, label) in enumerate(labels.items()):
            bands_by_step(axes[i][j], ics[ics["layer"] == layer], quantity, palette, log=quantity in logged)
            axes[i][j].set_title(f"layer {layer}: {label}", fontsize=9)
    axes[0][0].legend()
    fig.suptitle(f"Internal covariate shift (Santurkar et al., Def. 2.1; band over {n_seeds} seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def init_gradient_figure(
    init_gradients: pd.DataFrame, theory: dict[tuple[str, int], float], palette: dict[str, str], n_seeds: int
) -> Figure:
    """‖∂L/∂h_l‖² at initialization against the layer l, one panel per batch size, one line per
    variant (geometric mean over seeds; the deepest networks measured), and the theory's slope
    (``theory[(variant, batch_size)]``) dashed, drawn through the measured value at the top layer."""
    deepest = init_gradients[init_gradients["depth"] == init_gradients["depth"].max()]
    sizes = sorted(deepest["batch_size"].unique())
    fig = Figure(figsize=(max(4.2 * len(sizes), 7), 4.4), dpi=100)
    axes = fig.subplots(1, len(sizes), squeeze=False)[0]
    for ax, size in zip(axes, sizes):
        rows = deepest[deepest["batch_size"] == size].assign(log=lambda f: np.log10(f["grad_sq_norm"]))
        for variant, color in palette.items():
            curve = rows[rows["variant"] == variant].groupby("layer")["log"].mean()
            if curve.empty:
                continue
            ax.plot(curve.index, curve.to_numpy(), color=color, label=variant)
            rate = theory.get((variant, size), float("nan"))
            if not np.isnan(rate):
                top = curve.index.max()
                ax.plot(
                    curve.index,
                    curve[top] + (top - curve.index) * np.log10(rate),
                    color=color,
                    linestyle="--",
                    linewidth=1,
                    label=f"{variant}: theory, λ = {rate:.3f}",
                )
        ax.set_title(f"batch size {size}", fontsize=10)
        ax.set_xlabel("hidden layer (1 = first)")
        ax.set_ylabel("log10 ‖∂L/∂h‖² at initialization")
        ax.legend(fontsize=7)
    fig.suptitle(f"Gradients at initialization (Yang et al. 2019), {n_seeds} seeds' geometric mean", fontsize=11)
    fig.tight_layout()
    return fig


def trainability_figure(cells: pd.DataFrame, limits: dict[str, dict[int, float]]) -> Figure:
    """Yang et al.'s trainability map: mean test accuracy over depth × batch size, one panel per
    variant, with the depth limit the theory predicts (``limits[variant][batch_size]``) drawn."""
    variants = list(dict.fromkeys(cells["variant"]))
    fig = Figure(figsize=(4.4 * len(variants) + 1, 4.4), dpi=100)
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        grid = cells[cells["variant"] == variant].pivot(index="depth", columns="batch_size", values="test_accuracy")
        image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(d) for d in grid.index])
        for (i, j), value in np.ndenumerate(grid.to_numpy()):
            ax.text(
                j,
                i,
                f"{value * 100:.0f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if value > 0.5 else "white",
            )
        limit = [limits.get(variant, {}).get(size, np.inf) for size in grid.columns]
        if np.isfinite(limit).any():  # depth → the axis's position: interpolate between the rows
            ax.plot(
                range(len(limit)),
                np.interp(limit, grid.index, range(len(grid.index)), right=np.nan),
                "w--",
                marker="o",
                label="theory: 16 / ln λ(B)",
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(variant, fontsize=10)
        ax.set_xlabel("batch size")
        ax.set_ylabel("hidden layers")
    fig.colorbar(image, ax=list(axes), label="test accuracy")
    fig.suptitle("Trainability after a short budget (Yang et al. 2019, Fig. 3a)", fontsize=11)
    return fig


def save_png(fig: Figure, path) -> None:
    # No timestamps or version in the file: the same figure gives the same bytes.
    fig.savefig(path, format="png", metadata={"Software": None})

"""An experiment report's pictures: the PNG figures (learning curves, probes, the landscape, a
sweep's curves, the gradients at initialization, the trainability map, the kernels' norms and
sharpness) and the per-epoch
curves `dvc plots` draws. :class:`bnlab.analysis.report.Report` writes them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnlab.analysis import figures as plots
from bnlab.analysis import mechanism_figures
from bnlab.analysis.geometry_tables import ICS_LABELS, LANDSCAPE_LABELS, LOGGED, probe_summaries
from bnlab.analysis.init_gradient_tables import depth_limits, trainability_cells
from bnlab.analysis.probe_tables import moving_average_gaps
from bnlab.analysis.sharpness_tables import sharpness_table
from bnlab.analysis.statistics import mean_history
from bnlab.analysis.sweep import curve_stats
from bnlab.analysis.weight_norm_tables import equilibrium_table, with_effective_rate
from bnlab.experiments.params import ExperimentParams


def write_sweep_figures(
    folder: Path, sweep: pd.DataFrame, steps: pd.DataFrame, grid_keys: list[str], palette: dict[str, str], n_seeds: int
) -> None:
    """Test accuracy, final training loss and (with BN probes) BN's training-mode minus
    inference-mode accuracy against the swept setting (a one-setting grid)."""
    if len(grid_keys) != 1:
        return  # several settings: sweep.csv has every job; no figure draws them all
    x = grid_keys[0]
    gaps = moving_average_gaps(steps, grid_keys) if not steps.empty else steps
    for frame, column, ylabel, what, log_y in (
        (sweep, "test_accuracy", "test accuracy", "Test accuracy", False),
        (sweep, "final_train_loss", "final training loss", "Final training loss", True),
        (gaps, "gap", "train − inference mode accuracy", "BN's batch statistics", False),
    ):
        if frame.empty:
            continue
        title = f"{what} vs {x.replace('_', ' ')} (mean ± std, {n_seeds} seeds)"
        name = "train_vs_inference_mode" if column == "gap" else column
        plots.save_png(
            plots.sweep_figure(curve_stats(frame, x, column), x, ylabel, title, palette, log_y),
            folder / f"{name}_vs_{x}.png",
        )


def write_figures(
    folder: Path,
    experiment: ExperimentParams,
    histories: dict,
    probes: pd.DataFrame,
    steps: pd.DataFrame,
    palette: dict[str, str],
) -> None:
    n_seeds = len(experiment.seeds)
    curves = {variant: mean_history(histories[variant]) for variant in palette}
    for metric in plots.TITLES:
        plots.save_png(
            plots.curve_figure(metric, {v: curves[v][metric] for v in palette}, n_seeds, palette),
            folder / f"{metric}.png",
        )
    if probes.empty:
        return
    plots.save_png(
        plots.steps_figure(
            steps, "test_accuracy", f"Test accuracy during training (mean ± std over {n_seeds} seeds)", palette
        ),
        folder / "test_accuracy_by_step.png",
    )
    last_layer, unit, seed = int(probes["layer"].max()), str(experiment.probes.unit), experiment.seeds[0]
    plots.save_png(
        plots.percentiles_figure(probes, last_layer, unit, seed, list(palette)),
        folder / f"percentiles_layer{last_layer}_unit{unit}.png",
    )
    plots.save_png(
        plots.layers_figure(probes, "p50", "median input to nonlinearity (all units)", palette),
        folder / "input_median_by_layer.png",
    )
    if probes["dead_fraction"].max() > 0:
        plots.save_png(
            plots.layers_figure(probes, "dead_fraction", "fraction of dead units", palette), folder / "dead_units.png"
        )
    train_mode = steps.dropna(subset=["train_mode_accuracy"])
    if not train_mode.empty:
        both = pd.concat(
            [
                train_mode.assign(
                    variant=train_mode["variant"] + ": moving averages", accuracy=train_mode["val_accuracy"]
                ),
                train_mode.assign(
                    variant=train_mode["variant"] + ": batch statistics", accuracy=train_mode["train_mode_accuracy"]
                ),
            ]
        )
        names = sorted(both["variant"].unique())
        lines = dict(zip(names, plots.distinct_colors(len(names))))
        plots.save_png(
            plots.steps_figure(both, "accuracy", "Validation accuracy: inference vs training mode", lines),
            folder / "train_vs_inference_mode.png",
        )


def write_geometry_figures(
    folder: Path,
    landscape: pd.DataFrame,
    ics: pd.DataFrame,
    weight_norms: pd.DataFrame,
    palette: dict[str, str],
    n_seeds: int,
) -> None:
    """landscape_<direction>.png (Santurkar et al.'s Figure 4, with β·‖w‖² where the kernels'
    norms were recorded) and covariate_shift.png (their Figure 3), where the experiment measured
    them."""
    if not landscape.empty:
        per_probe, quantities = probe_summaries(landscape, weight_norms)
        labels = {quantity: LANDSCAPE_LABELS[quantity] for quantity in quantities}
        for direction in dict.fromkeys(per_probe["direction"]):
            plots.save_png(
                plots.landscape_figure(per_probe, direction, labels, palette, n_seeds),
                folder / f"landscape_{direction}.png",
            )
    if not ics.empty:
        plots.save_png(plots.shift_figure(ics, ICS_LABELS, LOGGED, palette, n_seeds), folder / "covariate_shift.png")


def write_init_gradient_figures(
    folder: Path,
    init_gradients: pd.DataFrame,
    theory: dict,
    sweep: pd.DataFrame,
    grid_keys: list[str],
    palette: dict[str, str],
    n_seeds: int,
) -> None:
    """init_gradients.png (the gradients by layer beside the theory's slope) where they were
    measured, and trainability_map.png for a grid over depth and batch size (Yang et al.)."""
    if not init_gradients.empty:
        plots.save_png(
            plots.init_gradient_figure(init_gradients, theory, palette, n_seeds), folder / "init_gradients.png"
        )
    if {"depth", "batch_size"} <= set(grid_keys):
        limits = {}
        for (variant, size), limit in depth_limits(theory).items():
            limits.setdefault(variant, {})[size] = limit
        plots.save_png(plots.trainability_figure(trainability_cells(sweep), limits), folder / "trainability_map.png")


def write_weight_norm_figures(
    folder: Path, weight_norms: pd.DataFrame, settings: pd.DataFrame, palette: dict[str, str], n_seeds: int
) -> None:
    """weight_norms.png (angular updates and the effective rate, beside the predicted
    equilibrium) where the experiment measured them."""
    if weight_norms.empty:
        return
    table = equilibrium_table(weight_norms, settings)
    plots.save_png(
        mechanism_figures.weight_norm_figure(
            with_effective_rate(weight_norms, settings),
            dict(zip(table["variant"], table["predicted"])),
            palette,
            n_seeds,
        ),
        folder / "weight_norms.png",
    )


def write_sharpness_figures(
    folder: Path, sharpness: pd.DataFrame, settings: pd.DataFrame, palette: dict[str, str], n_seeds: int
) -> None:
    """sharpness.png (λ_max along training beside the stability threshold) where the experiment
    measured it."""
    if sharpness.empty:
        return
    table = sharpness_table(sharpness, settings)
    plots.save_png(mechanism_figures.sharpness_figure(sharpness, table, palette, n_seeds), folder / "sharpness.png")


def write_curves(folder: Path, histories: dict, seeds: list[int]) -> None:
    """Per-epoch histories for `dvc plots`: one CSV per metric, one row per (variant, seed,
    epoch), the metric last (the template averages over seeds and colours by variant)."""
    for metric in plots.TITLES:
        rows = [
            {"variant": variant, "seed": seed, "epoch": epoch, metric: value}
            for variant, per_seed in histories.items()
            for seed, history in zip(seeds, per_seed)
            for epoch, value in enumerate(history[metric], start=1)
        ]
        pd.DataFrame(rows).round(6).to_csv(folder / f"{metric}.csv", index=False)

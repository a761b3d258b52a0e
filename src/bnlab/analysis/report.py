"""An experiment's report from its models' histories, test results and probes: the comparison
table, the per-seed and sweep tables, figures, the curves `dvc plots` draws, and the flat
metrics the parent run gets. The report stage writes what these return."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bnlab.analysis import figures as plots
from bnlab.analysis.columns import comparison_title
from bnlab.analysis.geometry_tables import ICS_LABELS, LANDSCAPE_LABELS, LOGGED, geometry_markdown, landscape_per_probe
from bnlab.analysis.init_gradient_tables import init_gradient_markdown, theory_rates, trainability_cells
from bnlab.analysis.mean_field import trainable_depth
from bnlab.analysis.probe_tables import grid_probe_markdown, moving_average_gaps, probe_markdown
from bnlab.analysis.statistics import comparison_markdown, format_p, gain_with_interval, mean_history, summarize
from bnlab.analysis.sweep import curve_stats, point_summaries, sweep_frame
from bnlab.experiments.jobs import jobs, model_dir, ordered_variants
from bnlab.experiments.params import COMPARISON_KEY, ExperimentParams
from bnlab.ml.probe_rows import TABLES

FILES = ("metrics.json", "per_seed.csv", "sweep.csv", "comparison.md", *TABLES)
FOLDERS = ("figures", "curves")


@dataclass
class Report:
    """Everything an experiment's report holds, before it is written."""

    name: str
    experiment: ExperimentParams
    histories: dict  # {group: [history per seed]}
    sweep: pd.DataFrame
    summary: dict  # metrics.json
    probes: pd.DataFrame
    steps: pd.DataFrame
    landscape: pd.DataFrame
    ics: pd.DataFrame
    init_gradients: pd.DataFrame
    theory: dict  # Yang et al.'s factor per (variant, batch size): init_gradient_tables.theory_rates

    @property
    def grid_keys(self) -> list[str]:
        return list(self.experiment.grid or {})

    @property
    def per_seed(self) -> pd.DataFrame:
        return self.sweep.drop(columns="final_train_loss")

    def final_val_accuracy(self, job) -> float:
        """A job's validation accuracy after its last epoch (what the registry's champion is
        chosen by: the test set stays for the comparison)."""
        return self.histories[job.group][self.experiment.seeds.index(job.seed)]["val_accuracy"][-1]

    def table(self) -> str:
        """comparison.md: the comparison table(s), then the probes' tables."""
        return (
            comparison_title(self.name, self.experiment.description)
            + "\n\n"
            + comparison_tables(self.summary, self.experiment, self.grid_keys)
            + (
                grid_probe_markdown(self.steps, self.grid_keys)
                if self.grid_keys
                else probe_markdown(self.probes, self.steps) + geometry_markdown(self.landscape, self.ics)
            )
            + init_gradient_markdown(self.init_gradients, self.theory)
        )

    def write(self, paths: dict[str, Path]) -> None:
        """Every file and folder of FILES and FOLDERS, at ``paths[name]``."""
        palette = plots.colors(ordered_variants(self.experiment), self.experiment.baseline)
        n_seeds = len(self.experiment.seeds)
        if self.grid_keys:
            write_sweep_figures(paths["figures"], self.sweep, self.steps, self.grid_keys, palette, n_seeds)
        else:
            write_figures(paths["figures"], self.experiment, self.histories, self.probes, self.steps, palette)
            write_geometry_figures(paths["figures"], self.landscape, self.ics, palette, n_seeds)
        write_init_gradient_figures(paths["figures"], self, palette)
        self.sweep.round(6).to_csv(paths["sweep.csv"], index=False)
        write_curves(paths["curves"], self.histories, self.experiment.seeds)
        paths["metrics.json"].write_text(json.dumps(self.summary, indent=2, sort_keys=True) + "\n")
        self.per_seed.round(6).to_csv(paths["per_seed.csv"], index=False)
        for file, frame in zip(TABLES, (self.probes, self.steps, self.landscape, self.ics, self.init_gradients)):
            frame.to_csv(paths[file], index=False)
        paths["comparison.md"].write_text(self.table())

    def lines(self) -> list[str]:
        """One line per comparison, for the stage's log."""
        points = self.summary.items() if self.grid_keys else [("", self.summary)]
        return [
            f"{' '.join(filter(None, (variant, label)))} vs {self.experiment.baseline}: "
            f"{gain_with_interval(comp)} points over {comp['seeds']} seeds "
            f"(p = {format_p(comp['p_value'])}, Holm {format_p(comp['p_holm'])})"
            for label, point_summary in points
            for variant, comp in point_summary[COMPARISON_KEY].items()
        ]


def build_report(name: str, experiment: ExperimentParams, models: Path, results: dict) -> Report:
    """The report of experiment ``name`` from its models' folder and its test results."""
    variants, grid_keys = ordered_variants(experiment), list(experiment.grid or {})
    job_list = jobs(name, experiment)
    histories = load_per_job(models, name, experiment, "estimator.json")
    sweep = sweep_frame(
        [results[job.name] for job in job_list],
        [histories[job.group][experiment.seeds.index(job.seed)] for job in job_list],
        grid_keys,
        variants,
    )
    summary = (
        point_summaries(sweep, grid_keys, variants, experiment.baseline)
        if grid_keys
        else summarize(sweep.drop(columns="final_train_loss"), experiment.baseline)
    )
    return Report(
        name,
        experiment,
        histories,
        sweep,
        summary,
        *(load_per_job(models, name, experiment, file, columns) for file, columns in TABLES.items()),
        theory_rates(experiment),
    )


def comparison_tables(summary: dict, experiment: ExperimentParams, grid_keys: list[str]) -> str:
    """The comparison table; a grid experiment has one per grid point."""

    def table(point_summary: dict) -> str:
        return comparison_markdown(point_summary, experiment.baseline, experiment.reference)

    if not grid_keys:
        return table(summary)
    return "".join(f"## {label}\n\n{table(point_summary)}\n" for label, point_summary in summary.items())


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


def load_per_job(models: Path, name: str, experiment: ExperimentParams, file: str, columns=None):
    """estimator.json histories as {group: [history per seed]} (group: the variant, at its grid
    point); a CSV as one frame with
    ``variant`` and ``seed`` in front, a grid's settings before them (empty, with its columns,
    where there are no probes)."""
    if file.endswith(".json"):
        found = {}
        for job in jobs(name, experiment):
            meta = json.loads((model_dir(models, job) / file).read_text())
            found.setdefault(job.group, []).append(meta["history"])
        return found
    # A grid's settings first, as in sweep.csv, unless the table has them itself.
    keys = [key for key in (*(experiment.grid or {}), "variant", "seed") if key not in (columns or ())]
    frames = [
        pd.read_csv(model_dir(models, job) / file, dtype={"unit": str}).assign(
            **dict(job.point), variant=job.variant, seed=job.seed
        )
        for job in jobs(name, experiment)
        if (model_dir(models, job) / file).exists()
    ]
    frames = [frame for frame in frames if not frame.empty]  # a job with no probe step: its empty table has no types
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=[*keys, *columns])
    return frame[[*keys, *columns]].reset_index(drop=True)


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
    folder: Path, landscape: pd.DataFrame, ics: pd.DataFrame, palette: dict[str, str], n_seeds: int
) -> None:
    """landscape_<direction>.png (Santurkar et al.'s Figure 4) and covariate_shift.png (their
    Figure 3), where the experiment measured them."""
    if not landscape.empty:
        per_probe = landscape_per_probe(landscape)
        for direction in dict.fromkeys(per_probe["direction"]):
            plots.save_png(
                plots.landscape_figure(per_probe, direction, LANDSCAPE_LABELS, palette, n_seeds),
                folder / f"landscape_{direction}.png",
            )
    if not ics.empty:
        plots.save_png(plots.shift_figure(ics, ICS_LABELS, LOGGED, palette, n_seeds), folder / "covariate_shift.png")


def write_init_gradient_figures(folder: Path, report: Report, palette: dict[str, str]) -> None:
    """init_gradients.png (the gradients by layer beside the theory's slope) where they were
    measured, and trainability_map.png for a grid over depth and batch size (Yang et al.)."""
    if not report.init_gradients.empty:
        plots.save_png(
            plots.init_gradient_figure(report.init_gradients, report.theory, palette, len(report.experiment.seeds)),
            folder / "init_gradients.png",
        )
    if {"depth", "batch_size"} <= set(report.grid_keys):
        limits = {}
        for (variant, size), rate in report.theory.items():
            limits.setdefault(variant, {})[size] = trainable_depth(rate)
        plots.save_png(
            plots.trainability_figure(trainability_cells(report.sweep), limits), folder / "trainability_map.png"
        )


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


def parent_metrics(summary: dict, grid: bool = False) -> list[dict[str, float]]:
    """The summary as flat MLflow metrics of the parent run, one dict per step (undefined values
    left out): each variant's ``<variant>_test_accuracy_mean``, ``_std``, ``_test_loss_mean``,
    ``_seeds``, ``_diverged`` and
    each compared variant's gain, its interval and tests (``<variant>_gain_ci_low``, ...). A grid
    has one step per grid point, in the grid's order (``summary``'s keys name them)."""
    if grid:
        return [parent_metrics(point_summary)[0] for point_summary in summary.values()]
    flat = {
        f"{variant}_{key}": value
        for variant, row in summary.items()
        if variant != COMPARISON_KEY
        for key, value in row.items()
    }
    for variant, comp in summary[COMPARISON_KEY].items():
        flat |= {f"{variant}_{key}": value for key, value in comp.items() if key != "seeds"}
    return [{k: v for k, v in flat.items() if v is not None}]

"""An experiment's report from its models' histories, test results and probes: the comparison
table, the per-seed and sweep tables, figures, the curves `dvc plots` draws, and the flat
metrics the parent run gets. The report stage writes what these return."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bnlab.analysis import figures as plots
from bnlab.analysis.columns import SETTINGS_FILE, comparison_title
from bnlab.analysis.geometry_tables import geometry_markdown
from bnlab.analysis.init_gradient_tables import depth_limits, init_gradient_markdown, theory_rates
from bnlab.analysis.markdown import markdown_table
from bnlab.analysis.probe_tables import grid_probe_markdown, probe_markdown
from bnlab.analysis.report_figures import (
    write_curves,
    write_figures,
    write_geometry_figures,
    write_init_gradient_figures,
    write_sharpness_figures,
    write_sweep_figures,
    write_weight_norm_figures,
)
from bnlab.analysis.selection_tables import selection_markdown
from bnlab.analysis.sharpness_tables import sharpness_markdown
from bnlab.analysis.statistics import comparison_markdown, format_p, gain_with_interval, summarize
from bnlab.analysis.stopping_depth import stopping_markdown
from bnlab.analysis.sweep import point_summaries, sweep_frame
from bnlab.analysis.weight_norm_tables import weight_norm_markdown
from bnlab.core.layout import MODEL_META_FILE
from bnlab.experiments.jobs import Job, job_settings, jobs, model_dir, ordered_variants, point_columns
from bnlab.experiments.params import COMPARISON_KEY, SELECTED_KEY, ExperimentParams
from bnlab.experiments.selection import choose, read_scores, selected_params, selection_rows
from bnlab.ml.hyperparams import BN_STATISTICS, HYPERPARAMETERS
from bnlab.ml.probe_rows import TABLES

SELECTION_FILE = "selection.csv"  # every selection job's score; empty for an experiment that does not tune
# Every BN model's test accuracy with each kind of statistics; empty for an experiment without BN.
BN_STATISTICS_FILE = "bn_statistics.csv"
BN_STATISTICS_COLUMNS = tuple(f"test_accuracy_{kind}" for kind in BN_STATISTICS)
FILES = (
    "metrics.json",
    "per_seed.csv",
    "sweep.csv",
    "comparison.md",
    SELECTION_FILE,
    BN_STATISTICS_FILE,
    SETTINGS_FILE,
    *TABLES,
)
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
    weight_norms: pd.DataFrame
    sharpness: pd.DataFrame
    theory: dict  # Yang et al.'s factor per (variant, batch size): init_gradient_tables.theory_rates
    jobs: list[Job] = field(default_factory=list)  # the comparison's, with the settings chosen
    selection: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["variant", "seed", "chosen"]))
    selected: dict | None = None  # metrics.json's `selected` (bnlab.experiments.selection.selected_params)
    bn_statistics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["variant", "seed"]))

    @property
    def grid_keys(self) -> list[str]:
        return list(self.experiment.grid or {})

    @property
    def metrics(self) -> dict:
        """metrics.json: the summary, and what a selection chose."""
        return self.summary if self.selected is None else {**self.summary, SELECTED_KEY: self.selected}

    @property
    def settings(self) -> pd.DataFrame:
        """settings.csv: each compared network's resolved settings."""
        return settings_frame(self.experiment, self.jobs)

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
            + selection_markdown(self.selection, self.experiment)
            + bn_statistics_markdown(self.bn_statistics, self.grid_keys)
            + (
                grid_probe_markdown(self.steps, self.grid_keys)
                if self.grid_keys
                else probe_markdown(self.probes, self.steps)
                + geometry_markdown(self.landscape, self.ics, self.weight_norms)
            )
            + init_gradient_markdown(self.init_gradients, self.theory)
            + stopping_markdown(self.sweep, depth_limits(self.theory), heading="##")
            + weight_norm_markdown(self.weight_norms, self.settings)
            + sharpness_markdown(self.sharpness, self.settings)
        )

    def write(self, paths: dict[str, Path]) -> None:
        """Every file and folder of FILES and FOLDERS, at ``paths[name]``."""
        palette = plots.colors(ordered_variants(self.experiment), self.experiment.baseline)
        n_seeds = len(self.experiment.seeds)
        if self.grid_keys:
            write_sweep_figures(paths["figures"], self.sweep, self.steps, self.grid_keys, palette, n_seeds)
        else:
            write_figures(paths["figures"], self.experiment, self.histories, self.probes, self.steps, palette)
            write_geometry_figures(paths["figures"], self.landscape, self.ics, self.weight_norms, palette, n_seeds)
        write_init_gradient_figures(
            paths["figures"], self.init_gradients, self.theory, self.sweep, self.grid_keys, palette, n_seeds
        )
        write_weight_norm_figures(paths["figures"], self.weight_norms, self.settings, palette, n_seeds)
        write_sharpness_figures(paths["figures"], self.sharpness, self.settings, palette, n_seeds)
        self.sweep.round(6).to_csv(paths["sweep.csv"], index=False)
        write_curves(paths["curves"], self.histories, self.experiment.seeds)
        paths["metrics.json"].write_text(json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")
        self.per_seed.round(6).to_csv(paths["per_seed.csv"], index=False)
        self.selection.round(6).to_csv(paths[SELECTION_FILE], index=False)
        self.bn_statistics.round(6).to_csv(paths[BN_STATISTICS_FILE], index=False)
        self.settings.to_csv(paths[SETTINGS_FILE], index=False)
        tables = (
            self.probes,
            self.steps,
            self.landscape,
            self.ics,
            self.init_gradients,
            self.weight_norms,
            self.sharpness,
        )
        for file, frame in zip(TABLES, tables, strict=True):
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
    scores = read_scores(models, name, experiment) if experiment.tune else {}
    selected = choose(experiment, scores) if experiment.tune else None
    job_list = jobs(name, experiment, selected)
    histories = load_per_job(models, job_list, experiment, MODEL_META_FILE)
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
    report = Report(
        name,
        experiment,
        histories,
        sweep,
        summary,
        *(load_per_job(models, job_list, experiment, file, columns) for file, columns in TABLES.items()),
        theory_rates(experiment),
        job_list,
    )
    report.bn_statistics = bn_statistics_frame([results[job.name] for job in job_list], grid_keys)
    if selected is not None:
        report.selected = selected_params(experiment, selected)
        report.selection = pd.DataFrame(selection_rows(experiment, scores, selected))
    return report


def settings_frame(experiment: ExperimentParams, job_list: list[Job]) -> pd.DataFrame:
    """settings.csv: one row per compared network (the grid's columns, variant) with every
    estimator setting resolved (a setting params.yaml leaves out: the estimator's default),
    ``hidden_units`` as its layers joined by "-", as its first seed's job trains it (a
    selection's chosen values included)."""
    rows = []
    for job in job_list:
        if job.seed != experiment.seeds[0]:
            continue
        settings = job_settings(experiment, job)
        values = {name: settings.resolved(name) for name in HYPERPARAMETERS}
        values["hidden_units"] = "-".join(str(units) for units in settings.hidden_layers())
        rows.append({**point_columns(job.point), "variant": job.variant, **values})
    return pd.DataFrame(rows)


def bn_statistics_frame(results: list[dict], grid_keys: list[str]) -> pd.DataFrame:
    """bn_statistics.csv: one row per BN model (variant, seed, the grid's columns) with its test
    accuracy under each kind of statistics."""
    columns = ["variant", "seed", *grid_keys, *BN_STATISTICS_COLUMNS]
    rows = [{k: result[k] for k in columns} for result in results if BN_STATISTICS_COLUMNS[0] in result]
    return pd.DataFrame(rows, columns=columns)


def bn_statistics_markdown(frame: pd.DataFrame, grid_keys: list[str]) -> str:
    """Each BN variant's mean test accuracy with the moving averages and with recomputed
    statistics (per grid point), if the experiment has BN."""
    if frame.empty:
        return ""
    keys = [*grid_keys, "variant"]
    means = frame.groupby(keys, sort=False)[list(BN_STATISTICS_COLUMNS)].mean().reset_index()
    rows = [
        [*(row[k] for k in keys), *(f"{100 * row[c]:.2f}%" for c in BN_STATISTICS_COLUMNS)]
        for _, row in means.iterrows()
    ]
    header = [*keys, *(f"test accuracy, {kind} statistics" for kind in BN_STATISTICS)]
    return (
        "\n## BN's statistics: moving averages or recomputed after training (mean over seeds)\n\n"
        + markdown_table(header, rows)
        + "\n"
    )


def comparison_tables(summary: dict, experiment: ExperimentParams, grid_keys: list[str]) -> str:
    """The comparison table; a grid experiment has one per grid point."""

    def table(point_summary: dict) -> str:
        return comparison_markdown(point_summary, experiment.baseline, experiment.reference)

    if not grid_keys:
        return table(summary)
    return "".join(f"## {label}\n\n{table(point_summary)}\n" for label, point_summary in summary.items())


def load_per_job(models: Path, job_list: list[Job], experiment: ExperimentParams, file: str, columns=None):
    """estimator.json histories as {group: [history per seed]} (group: the variant, at its grid
    point); a CSV as one frame with
    ``variant`` and ``seed`` in front, a grid's settings before them (empty, with its columns,
    where there are no probes)."""
    if file.endswith(".json"):
        found = {}
        for job in job_list:
            meta = json.loads((model_dir(models, job) / file).read_text())
            found.setdefault(job.group, []).append(meta["history"])
        return found
    # A grid's settings first, as in sweep.csv, unless the table has them itself.
    keys = [key for key in (*(experiment.grid or {}), "variant", "seed") if key not in (columns or ())]
    frames = [
        pd.read_csv(model_dir(models, job) / file, dtype={"unit": str}).assign(
            **dict(job.point), variant=job.variant, seed=job.seed
        )
        for job in job_list
        if (model_dir(models, job) / file).exists()
    ]
    frames = [frame for frame in frames if not frame.empty]  # a job with no probe step: its empty table has no types
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=[*keys, *columns])
    return frame[[*keys, *columns]].reset_index(drop=True)


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

"""Stage `report@<experiment>`: statistics across seeds, the comparison table, probe tables and
figures → reports/<experiment>/, all of it also on the experiment's parent run in MLflow."""

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab import layout, plots
from bnlab.atomic import atomic_path
from bnlab.comparison import comparison_markdown, format_p, mean_history, summarize
from bnlab.config import ExperimentParams, load_params
from bnlab.experiments import jobs, model_dir, ordered_variants
from bnlab.columns import PROBE_COLUMNS, STEP_COLUMNS
from bnlab.probe_summary import probe_markdown
from bnlab.sweep import curve_stats, point_summaries, sweep_frame

FILES = ("metrics.json", "per_seed.csv", "sweep.csv", "comparison.md", "probes.csv", "steps.csv")
FOLDERS = ("figures", "curves")


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    models, output = layout.models_dir(experiment_name), layout.reports_dir(experiment_name)
    variants, grid_keys = ordered_variants(experiment), list(experiment.grid or {})
    results = json.loads((layout.eval_dir(experiment_name) / "test_metrics.json").read_text())
    job_list = jobs(experiment_name, experiment)
    histories = load_per_job(models, experiment_name, experiment, "estimator.json")
    sweep = sweep_frame([results[job.name] for job in job_list],
                        [histories[job.group][experiment.seeds.index(job.seed)] for job in job_list],
                        grid_keys, variants)
    per_seed = sweep.drop(columns="final_train_loss")
    summary = (point_summaries(sweep, grid_keys, variants, experiment.baseline) if grid_keys
               else summarize(per_seed, experiment.baseline))
    probes = load_per_job(models, experiment_name, experiment, "probes.csv", PROBE_COLUMNS)
    steps = load_per_job(models, experiment_name, experiment, "steps.csv", STEP_COLUMNS)
    n_seeds = len(experiment.seeds)
    table = (f"# {experiment_name}: {experiment.description}\n\n"
             + comparison_tables(summary, experiment, grid_keys, n_seeds) + probe_markdown(probes, steps))

    meta = json.loads((models / "pipeline.json").read_text())
    # Only now the import that takes seconds (MLflow): bad inputs are reported first.
    from bnlab import mlflow_logging, tracking

    client, experiment_id = tracking.connect()
    lineage = tracking.lineage(f"report@{experiment_name}", meta["data_fingerprint"])
    parent_id, owned = tracking.parent_for_results(client, experiment_id, experiment_name,
                                                   meta["pipeline_key"], lineage)

    with tracking.terminated_on_exit(client, parent_id, owned), ExitStack() as outputs:
        # Each output is written under a temporary name and renamed into place at the end.
        tmp = {name: outputs.enter_context(atomic_path(output / name, directory=name in FOLDERS))
               for name in (*FILES, *FOLDERS)}
        palette = plots.colors(variants, experiment.baseline)
        if grid_keys:
            write_sweep_figures(tmp["figures"], sweep, grid_keys, palette, n_seeds)
        else:
            write_figures(tmp["figures"], experiment, histories, results, probes, steps, palette)
        sweep.round(6).to_csv(tmp["sweep.csv"], index=False)
        write_curves(tmp["curves"], histories, experiment.seeds)
        tmp["metrics.json"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        per_seed.round(6).to_csv(tmp["per_seed.csv"], index=False)
        probes.to_csv(tmp["probes.csv"], index=False)
        steps.to_csv(tmp["steps.csv"], index=False)
        tmp["comparison.md"].write_text(table)
        client.log_artifacts(parent_id, str(tmp["figures"]), "figures")  # the same PNGs
        client.log_text(parent_id, table, "comparison.md")
        client.log_dict(parent_id, summary, "metrics.json")
        mlflow_logging.log_metrics(client, parent_id, aggregate_metrics(summary, bool(grid_keys)))
    for label, point_summary in (summary.items() if grid_keys else [("", summary)]):
        for variant, comp in point_summary["comparison"].items():
            print(f"wrote {output}/: {' '.join(filter(None, (variant, label)))} vs {experiment.baseline}: "
                  f"{100 * comp['test_accuracy_gain']:+.2f} points over {comp['seeds']} seeds "
                  f"(p = {format_p(comp['p_value'])})")


def comparison_tables(summary: dict, experiment: ExperimentParams, grid_keys: list[str], n_seeds: int) -> str:
    """The comparison table; a grid experiment has one per grid point."""
    def table(point_summary: dict) -> str:
        seeds = {variant: n_seeds for variant in experiment.variants}
        return comparison_markdown(point_summary, experiment.baseline, seeds, experiment.reference)

    if not grid_keys:
        return table(summary)
    return "".join(f"## {label}\n\n{table(point_summary)}\n" for label, point_summary in summary.items())


def write_sweep_figures(folder: Path, sweep: pd.DataFrame, grid_keys: list[str], palette: dict[str, str],
                        n_seeds: int) -> None:
    """Test accuracy and final training loss against the swept setting (a one-setting grid)."""
    if len(grid_keys) != 1:
        return  # several settings: sweep.csv has every job; no figure draws them all
    x = grid_keys[0]
    for column, ylabel, log_y in (("test_accuracy", "test accuracy", False),
                                  ("final_train_loss", "final training loss", True)):
        title = f"{ylabel.capitalize()} vs {x.replace('_', ' ')} (mean ± std, {n_seeds} seeds)"
        plots.save_png(plots.sweep_figure(curve_stats(sweep, x, column), x, ylabel, title, palette, log_y),
                       folder / f"{column}_vs_{x}.png")


def load_per_job(models: Path, name: str, experiment: ExperimentParams, file: str, columns=None):
    """estimator.json histories as {group: [history per seed]} (group: the variant, at its grid
    point); a CSV as one frame with
    ``variant`` and ``seed`` in front (empty, with its columns, where there are no probes)."""
    if file.endswith(".json"):
        found = {}
        for job in jobs(name, experiment):
            meta = json.loads((model_dir(models, job) / file).read_text())
            found.setdefault(job.group, []).append(meta["history"])
        return found
    frames = [pd.read_csv(model_dir(models, job) / file, dtype={"unit": str}).assign(
        variant=job.variant, seed=job.seed) for job in jobs(name, experiment)
        if (model_dir(models, job) / file).exists()]
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=["variant", "seed", *columns])
    return frame[["variant", "seed", *columns]].reset_index(drop=True)


def write_figures(folder: Path, experiment: ExperimentParams, histories: dict, results: dict,
                  probes: pd.DataFrame, steps: pd.DataFrame, palette: dict[str, str]) -> None:
    n_seeds = len(experiment.seeds)
    curves = {variant: mean_history(histories[variant]) for variant in palette}
    for metric in plots.TITLES:
        plots.save_png(plots.curve_figure(metric, {v: curves[v][metric] for v in palette}, n_seeds, palette),
                       folder / f"{metric}.png")
    confusion = {v: np.sum([r["confusion_matrix"] for r in results.values() if r["variant"] == v], axis=0)
                 for v in palette}
    plots.save_png(plots.confusion_figure(confusion, list(range(10)), n_seeds), folder / "confusion_matrices.png")
    if probes.empty:
        return
    plots.save_png(plots.steps_figure(steps, "test_accuracy", f"Test accuracy during training "
                                      f"(mean ± std over {n_seeds} seeds)", palette),
                   folder / "test_accuracy_by_step.png")
    last_layer, unit, seed = int(probes["layer"].max()), str(experiment.probes.unit), experiment.seeds[0]
    plots.save_png(plots.percentiles_figure(probes, last_layer, unit, seed, list(palette)),
                   folder / f"percentiles_layer{last_layer}_unit{unit}.png")
    plots.save_png(plots.layers_figure(probes, "p50", "median input to nonlinearity (all units)", palette),
                   folder / "input_median_by_layer.png")
    if probes["dead_fraction"].max() > 0:
        plots.save_png(plots.layers_figure(probes, "dead_fraction", "fraction of dead units", palette),
                       folder / "dead_units.png")
    train_mode = steps.dropna(subset=["train_mode_accuracy"])
    if not train_mode.empty:
        both = pd.concat([train_mode.assign(variant=train_mode["variant"] + ": moving averages",
                                            accuracy=train_mode["val_accuracy"]),
                          train_mode.assign(variant=train_mode["variant"] + ": batch statistics",
                                            accuracy=train_mode["train_mode_accuracy"])])
        lines = dict(zip(sorted(both["variant"].unique()), plots.PALETTE))
        plots.save_png(plots.steps_figure(both, "accuracy", "Validation accuracy: inference vs training mode",
                                          lines), folder / "train_vs_inference_mode.png")


def write_curves(folder: Path, histories: dict, seeds: list[int]) -> None:
    """Per-epoch histories for `dvc plots`: one CSV per metric, one row per (variant, seed,
    epoch), the metric last (the template averages over seeds and colours by variant)."""
    for metric in plots.TITLES:
        rows = [{"variant": variant, "seed": seed, "epoch": epoch, metric: value}
                for variant, per_seed in histories.items() for seed, history in zip(seeds, per_seed)
                for epoch, value in enumerate(history[metric], start=1)]
        pd.DataFrame(rows).round(6).to_csv(folder / f"{metric}.csv", index=False)


def aggregate_metrics(summary: dict, grid: bool = False) -> dict[str, float]:
    """The summary as flat MLflow metrics on the parent run (undefined ones left out); a grid's
    per point, e.g. ``learning_rate_0.001/batchnorm_test_accuracy_mean`` (MLflow's metric names
    allow no '=' or ',')."""
    if grid:
        return {f"{label.replace('=', '_').replace(',', '/')}/{key}": value
                for label, point_summary in summary.items()
                for key, value in aggregate_metrics(point_summary).items()}
    flat = {f"{variant}_{key}": value for variant, row in summary.items() if variant != "comparison"
            for key, value in row.items()}
    for variant, comp in summary["comparison"].items():
        flat[f"{variant}_test_accuracy_gain"] = comp["test_accuracy_gain"]
        flat[f"{variant}_p_value"] = comp["p_value"]
    return {k: v for k, v in flat.items() if v is not None}

"""The report of an experiment with many variants: every variant in every file, each with a
colour of its own; and the names the report's files reserve."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bnlab.analysis import figures
from bnlab.analysis.report import FILES, FOLDERS, Report, parent_metrics, settings_frame
from bnlab.analysis.statistics import summarize
from bnlab.analysis.sweep import sweep_frame
from bnlab.experiments.jobs import jobs, ordered_variants, point_label
from bnlab.experiments.params import COMPARISON_KEY, ExperimentParams, ParamsError, parse_params
from bnlab.ml.probe_rows import TABLES

from helpers import unpadded
from test_config import default_raw

SEEDS = [0, 1]


def experiment_with(n_variants: int) -> ExperimentParams:
    variants = {f"v{i}": {"batch_norm": i % 2 == 0, "learning_rate": 0.001 * (i + 1)} for i in range(n_variants - 1)}
    return ExperimentParams.model_validate(
        {
            "description": "many variants",
            "model": {"epochs": 2},
            "variants": {**variants, "plain": {"batch_norm": False}},
            "baseline": "plain",
            "seeds": SEEDS,
            "probes": None,
            "reference": None,
            "grid": None,
            "tune": None,
            "train_images": None,
        }
    )


def synthetic_report(experiment: ExperimentParams) -> Report:
    """What the report stage would read, made up: two epochs, made-up accuracies."""
    rng = np.random.default_rng(0)
    job_list = jobs("many", experiment)
    results = {
        job.name: {
            "variant": job.variant,
            "seed": job.seed,
            "test_accuracy": float(rng.uniform(0.9, 1)),
            "test_loss": float(rng.uniform(0.1, 0.3)),
        }
        for job in job_list
    }
    history = {
        "train_loss": [0.5, 0.3],
        "train_accuracy": [0.9, 0.95],
        "val_loss": [0.4, 0.3],
        "val_accuracy": [0.9, 0.94],
    }
    histories = {variant: [history for _ in SEEDS] for variant in experiment.variants}
    sweep = sweep_frame(
        [results[job.name] for job in job_list], [history for _ in job_list], [], ordered_variants(experiment)
    )
    summary = summarize(sweep.drop(columns="final_train_loss"), experiment.baseline)
    return Report(
        "many",
        experiment,
        histories,
        sweep,
        summary,
        *(pd.DataFrame(columns=["variant", "seed", *columns]) for columns in TABLES.values()),
        {},
    )


def test_twelve_variants_make_a_report_each_variant_with_its_own_colour(tmp_path):
    experiment = experiment_with(12)
    report = synthetic_report(experiment)
    paths = {name: tmp_path / name for name in (*FILES, *FOLDERS)}
    for folder in FOLDERS:
        paths[folder].mkdir()
    report.write(paths)
    assert set(json.loads(paths["metrics.json"].read_text())) == {*experiment.variants, COMPARISON_KEY}
    assert len(json.loads(paths["metrics.json"].read_text())[COMPARISON_KEY]) == 11
    assert all(f"| {variant} |" in unpadded(paths["comparison.md"].read_text()) for variant in experiment.variants)
    assert {p.name for p in paths["figures"].iterdir()} >= {"val_accuracy.png", "train_loss.png"}
    palette = figures.colors(ordered_variants(experiment), experiment.baseline)
    assert len(set(palette.values())) == 12 and palette["plain"] == figures.BASELINE_COLOR


def test_landscape_and_shift_get_tables_figures_and_their_csvs(tmp_path):
    from test_verdicts import geometry_frames

    experiment = experiment_with(2)
    report = synthetic_report(experiment)
    geometry = {
        file: frame.replace({"batchnorm": "v0", "plain": experiment.baseline})
        for file, frame in geometry_frames(0.5).items()
    }
    report.landscape, report.ics = geometry["landscape.csv"], geometry["ics.csv"]
    paths = {name: tmp_path / name for name in (*FILES, *FOLDERS)}
    for folder in FOLDERS:
        paths[folder].mkdir()
    report.write(paths)
    assert {p.name for p in paths["figures"].iterdir()} >= {"landscape_gradient.png", "covariate_shift.png"}
    assert pd.read_csv(paths["landscape.csv"]).equals(report.landscape.reset_index(drop=True))
    table = unpadded(paths["comparison.md"].read_text())
    # β-smoothness of each probe = max(grad_change / distance) = 0.5 * noise for v0: log10 ≈ -0.3
    v0 = next(line for line in table.splitlines() if line.startswith("| v0 | gradient |"))
    assert float(v0.split("|")[5].split("±")[0]) == pytest.approx(np.log10(0.5), abs=0.05)
    assert "| v0 | 2 |" in table and "| plain | 2 |" in table  # covariate shift per layer


@pytest.mark.parametrize("n", [1, 7, 8, 18, 19, 40])
def test_any_number_of_variants_gets_distinct_colours_none_of_them_the_baselines(n):
    colours = figures.distinct_colors(n)
    assert len(colours) == n == len(set(colours))
    assert figures.BASELINE_COLOR not in colours and "#ff7f0e" not in colours  # tab:orange


def test_a_variant_named_like_the_comparison_key_is_refused_with_its_name():
    raw = default_raw()
    raw["experiments"]["notebook"]["variants"][COMPARISON_KEY] = {"batch_norm": True}
    with pytest.raises(ParamsError, match=f"a variant may not be named '{COMPARISON_KEY}'"):
        parse_params(raw)


def test_a_grids_summary_goes_to_the_parent_run_one_step_per_grid_point():
    experiment = experiment_with(2)
    point = synthetic_report(experiment).summary
    other = json.loads(json.dumps(point))
    other["plain"]["test_accuracy_mean"] = 0.5
    other[COMPARISON_KEY]["v0"]["gain_ci_low"] = None  # undefined: left out
    summary = {"learning_rate=0.001": point, "learning_rate=0.01": other}
    steps = parent_metrics(summary, grid=True)
    assert len(steps) == 2 and steps[0] == parent_metrics(point)[0]
    assert steps[1]["plain_test_accuracy_mean"] == 0.5 and "v0_gain_ci_low" not in steps[1]
    assert {"v0_test_accuracy_std", "v0_gain_ci_high", "v0_p_holm"} <= set(steps[0])


def test_a_depth_by_batch_grid_gets_the_theorys_table_and_the_trainability_map(tmp_path):
    from test_verdicts import init_gradient_frames

    from bnlab.analysis.init_gradient_tables import init_gradient_markdown, theory_rates
    from bnlab.analysis.mean_field import bn_relu_gradient_rate
    from bnlab.analysis.report_figures import write_init_gradient_figures
    from bnlab.experiments.params import load_params

    from helpers import PROJECT

    experiment = load_params(PROJECT / "params.yaml").experiment("yang2019_depth")
    theory = theory_rates(experiment)
    assert theory[("batchnorm", 8)] == bn_relu_gradient_rate(8) and theory[("plain", 128)] == 1.0
    assert theory[("plain_agc", 128)] == 1.0  # clipping acts on steps, not on the network at initialization
    assert math.isnan(theory[("skipinit", 128)])  # a residual network is not the chain the theory follows
    cells = [
        {"depth": d, "batch_size": b, "variant": v, "seed": s, "test_accuracy": 0.9 - 0.01 * d * (v == "batchnorm")}
        for d in experiment.grid["depth"]
        for b in experiment.grid["batch_size"]
        for v in experiment.variants
        for s in experiment.seeds
    ]
    gradients = init_gradient_frames(1.8)["init_gradients.csv"]
    palette = figures.colors(["batchnorm", "plain"], "plain")
    grid = list(experiment.grid)
    write_init_gradient_figures(tmp_path, gradients, theory, pd.DataFrame(cells), grid, palette, len(experiment.seeds))
    assert {p.name for p in tmp_path.iterdir()} == {"init_gradients.png", "trainability_map.png"}
    table = unpadded(init_gradient_markdown(gradients, theory))
    assert "| batchnorm | 8 | 20 | 1.7" in table and f"{bn_relu_gradient_rate(8):.4f}" in table
    assert "| plain | 8 | 20 | 1.0" in table and "| 1.0000 | none |" in table


def test_settings_name_each_compared_network_as_the_estimator_resolves_it_with_what_a_selection_chose():
    params = parse_params(default_raw())
    grid = params.experiment("small_batches")  # a grid, and a rate chosen per variant and point
    rate = {size: 0.001 * (1 + index) for index, size in enumerate(grid.grid["batch_size"])}
    chosen = {
        (variant, point_label(point)): (("learning_rate", rate[dict(point)["batch_size"]]),)
        for variant in grid.variants
        for point in grid.grid_points()
    }
    frame = settings_frame(grid, jobs("small_batches", grid, chosen))
    assert len(frame) == len(grid.variants) * len(grid.grid_points())  # one row per network and point
    for _, row in frame.iterrows():
        expected = grid.settings(row["variant"], (("batch_size", row["batch_size"]),))
        assert row["batch_size"] == expected.batch_size and row["learning_rate"] == rate[row["batch_size"]]
        assert row["hidden_units"] == "-".join(str(u) for u in expected.hidden_layers())
    tuned = params.experiment("notebook_tuned")
    rates = {"batchnorm": 0.003, "plain": 0.001, "plain_agc": 0.001, "skipinit": 0.01}
    assert set(rates) == set(tuned.variants)
    chosen = {(variant, ""): (("learning_rate", rate),) for variant, rate in rates.items()}
    frame = settings_frame(tuned, jobs("notebook_tuned", tuned, chosen)).set_index("variant")
    assert frame.loc["batchnorm", "learning_rate"] == 0.003 and frame.loc["plain", "learning_rate"] == 0.001
    assert frame.loc["skipinit", "residual"] == "skipinit" and frame.loc["plain_agc", "gradient_clipping"] == "adaptive"
    assert frame.loc["batchnorm", "bn_statistics"] == "moving"  # left out of params.yaml: the estimator's default


def test_a_choice_at_the_selection_grids_edge_is_marked_as_such():
    from bnlab.analysis.selection_tables import EDGE_NOTE, selection_markdown

    tuned = parse_params(default_raw()).experiment("notebook_tuned")
    rates = tuned.tune.grid["learning_rate"]
    best = {"batchnorm": rates[-1], "plain": rates[1], "plain_agc": rates[0]}  # the highest, inside, the lowest
    selection = pd.DataFrame(
        [
            {
                "variant": v,
                "learning_rate": r,
                "seed": s,
                "val_accuracy": 0.9 + 0.01 * (r == best.get(v)),
                "chosen": r == best.get(v),
            }
            for v in ("batchnorm", "plain", "plain_agc")
            for r in rates
            for s in tuned.tune.seeds
        ]
    )
    table = unpadded(selection_markdown(selection, tuned))
    assert f"| batchnorm | {rates[-1]} | 0.9100 | **chosen**, at the grid's edge (the highest learning_rate) |" in table
    assert f"| plain | {rates[1]} | 0.9100 | **chosen** |" in table
    assert f"| plain_agc | {rates[0]} | 0.9100 | **chosen**, at the grid's edge (the lowest learning_rate) |" in table
    assert EDGE_NOTE in table

"""Where a trainability map's networks stop training, beside Yang et al.'s 16 / ln λ(B): each
cell's state by the stated rule, the verdict against the predicted limit, and the same table in
a report and on the results page, read from the report's own settings."""

import math
from dataclasses import astuple

import pandas as pd
import pytest
from test_verdicts import experiment as results_of
from test_verdicts import sweep as plain_sweep

from bnlab.analysis.depth_limit_page import reported_depth_limits
from bnlab.analysis.init_gradient_tables import depth_limits, theory_rates
from bnlab.analysis.mean_field import bn_relu_gradient_rate, trainable_depth
from bnlab.analysis.published import ExperimentResults
from bnlab.analysis.report import settings_frame
from bnlab.analysis.results_page import ResultsPage
from bnlab.analysis.stopping_depth import (
    FAILED,
    TRAINED,
    TRAINS,
    UNDECIDED,
    cell_states,
    limit_verdict,
    stopping_depths,
    stopping_markdown,
)
from bnlab.analysis.sweep import point_summaries
from bnlab.analysis.verdicts import AGREES, DISAGREES
from bnlab.experiments.jobs import jobs, point_label
from bnlab.experiments.params import load_params

from helpers import PROJECT, unpadded

SEEDS = (0, 1, 2)


def cells(accuracy, depths=(10, 30, 50), sizes=(8, 32, 128), variants=("batchnorm", "plain"), spread=0.005):
    """sweep.csv of a depth × batch-size map: ``accuracy(variant, batch_size, depth)`` per cell,
    the seeds ``spread`` apart."""
    rows = [
        {"depth": d, "batch_size": b, "variant": v, "seed": s}
        | {"test_accuracy": accuracy(v, b, d) + spread * (s - 1), "test_loss": 1.0, "final_train_loss": 1.0}
        for d in depths
        for b in sizes
        for v in variants
        for s in SEEDS
    ]
    return pd.DataFrame(rows)


def test_a_cell_trains_fails_or_is_undecided_by_where_its_interval_lies_against_the_threshold():
    accuracy = {10: TRAINS + 0.2, 30: TRAINS - 0.2, 50: TRAINS}
    states = cell_states(cells(lambda v, b, d: accuracy[d], sizes=(32,), variants=("batchnorm",)))
    assert dict(zip(states["depth"], states["state"])) == {10: TRAINED, 30: FAILED, 50: UNDECIDED}
    wide = cell_states(cells(lambda v, b, d: TRAINS + 0.05, (10,), (32,), ("batchnorm",), spread=0.2))
    assert wide["state"].tolist() == [UNDECIDED]  # above 50% on average, but the seeds disagree


@pytest.mark.parametrize(
    "states, limit, word",
    [
        ({10: TRAINED, 30: FAILED, 50: FAILED}, 28.4, AGREES),
        ({10: TRAINED, 30: FAILED, 50: FAILED}, 38.2, DISAGREES),  # stops short of the limit
        ({10: TRAINED, 30: TRAINED, 50: FAILED}, 28.4, DISAGREES),  # trains beyond it
        ({10: TRAINED, 30: UNDECIDED, 50: FAILED}, 28.4, UNDECIDED),
        ({10: TRAINED, 30: TRAINED, 50: TRAINED}, math.inf, AGREES),  # the plain network's control
        ({10: TRAINED, 30: FAILED, 50: FAILED}, math.inf, DISAGREES),  # a budget too short for the map
    ],
)
def test_the_predicted_limit_agrees_only_when_every_depth_falls_on_its_side(states, limit, word):
    assert limit_verdict(states, limit) == word


def yang_map():
    experiment = load_params(PROJECT / "params.yaml").experiment("yang2019_depth")
    assert experiment.grid["batch_size"] == [8, 128]  # the limits below: ~28 and ~41 layers
    return experiment


def map_cells(accuracy, experiment, variants=("batchnorm", "plain")):
    return cells(accuracy, tuple(experiment.grid["depth"]), tuple(experiment.grid["batch_size"]), variants)


def map_jobs(experiment):
    """The map's comparison jobs, as if its selection had chosen the same rate everywhere."""
    rate = experiment.tune.candidates()[1]
    chosen = {(v, point_label(point)): rate for v in experiment.variants for point in experiment.grid_points()}
    return jobs("yang2019_depth", experiment, chosen)


def bn_stops_at_30(variant, batch_size, depth):
    """BN trains at 10 layers and stops by 30 at every batch size; the plain network trains."""
    return 0.9 if variant == "plain" or depth == 10 else 0.1


def test_bn_stopping_by_30_layers_agrees_with_the_limit_at_batch_8_only():
    experiment = yang_map()
    table = stopping_depths(map_cells(bn_stops_at_30, experiment), depth_limits(theory_rates(experiment)))
    words = {(row.variant, row.batch_size): row.verdict for row in table.itertuples()}
    limits = {size: trainable_depth(bn_relu_gradient_rate(size)) for size in (8, 128)}
    assert limits[8] < 30 < limits[128]
    assert words == {
        ("batchnorm", 8): AGREES,
        ("batchnorm", 128): DISAGREES,
        ("plain", 8): AGREES,
        ("plain", 128): AGREES,
    }
    assert set(table["stops"][table["variant"] == "batchnorm"]) == {"after 10, by 30"}


def test_the_page_reads_the_limits_from_the_reports_settings_and_says_where_the_theory_fails():
    experiment = yang_map()
    frame = map_cells(bn_stops_at_30, experiment, variants=tuple(experiment.variants))
    # What the report writes: its settings.csv, and the limits it puts in comparison.md.
    settings = settings_frame(experiment, map_jobs(experiment))
    metrics = point_summaries(
        frame.drop(columns="final_train_loss"), ["depth", "batch_size"], experiment.variants, "plain"
    )
    made = results_of("made", plain_sweep({"batchnorm": 0.01}))
    found = ExperimentResults(
        "yang2019_depth", "a map", "# yang2019_depth: a map\n", metrics, frame, *astuple(made)[5:-1], settings
    )
    assert reported_depth_limits(found) == pytest.approx(depth_limits(theory_rates(experiment)), nan_ok=True)
    report_section = stopping_markdown(frame, depth_limits(theory_rates(experiment)))
    page = unpadded(ResultsPage({"yang2019_depth": found}, [], (), [], "figures").markdown())
    assert unpadded(report_section).strip() in page  # the report's table, as the grid's section shows it
    assert "skipinit" not in unpadded(report_section)  # the theory says nothing of a residual network
    contrary = [line for line in page.splitlines() if line.startswith("- batchnorm stops training")]
    assert len(contrary) == 1 and f"**{DISAGREES}**" in contrary[0]
    assert "`yang2019_depth` at batch_size=128" in contrary[0]

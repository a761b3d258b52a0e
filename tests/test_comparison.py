"""Statistics across seeds and the figures, as units: the numbers and series they must show."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bnlab.analysis import figures as plots
from bnlab.analysis.statistics import comparison_markdown, format_p, paired_p_value, per_seed_frame, summarize
from bnlab.analysis.probe_tables import dead_units, drift


def results(rows):
    return per_seed_frame([{"variant": v, "seed": s, "test_accuracy": a, "test_loss": l} for v, s, a, l in rows],
                          ["bn", "plain"])


def test_the_paired_test_is_scipys_on_varied_pairs():
    a, b = np.array([0.97, 0.975, 0.964]), np.array([0.954, 0.957, 0.951])
    assert paired_p_value(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)


@pytest.mark.parametrize("a, b, expected", [
    ([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], 0.0),  # the same gain for every seed: t is infinite
    ([0.9, 0.8], [0.9, 0.8], 1.0),            # identical pairs: no difference at all
    ([0.9], [0.8], math.nan),                 # one seed: undefined
    ([0.9, math.nan], [0.8, 0.7], math.nan),  # a missing value: undefined, not a number
])
def test_the_paired_test_at_its_edges(a, b, expected):
    found = paired_p_value(np.array(a), np.array(b))
    assert (math.isnan(found) and math.isnan(expected)) or found == expected


def test_summary_per_variant_and_against_the_baseline():
    summary = summarize(results([("bn", 0, 0.97, 0.10), ("bn", 1, 0.96, 0.12),
                                 ("plain", 0, 0.95, 0.20), ("plain", 1, 0.95, 0.22)]), "plain")
    assert summary["bn"] == {"test_accuracy_mean": 0.965, "test_accuracy_std": pytest.approx(0.007071, abs=1e-6),
                             "test_loss_mean": 0.11}
    assert set(summary["comparison"]) == {"bn"}  # the baseline is not compared with itself
    assert summary["comparison"]["bn"]["test_accuracy_gain"] == pytest.approx(0.015)
    assert summary["comparison"]["bn"]["seeds"] == 2


def test_one_seed_gives_no_p_value_and_the_table_says_so():
    summary = summarize(results([("bn", 0, 0.97, 0.1), ("plain", 0, 0.95, 0.2)]), "plain")
    assert summary["comparison"]["bn"]["p_value"] is None and summary["bn"]["test_accuracy_std"] == 0.0
    table = comparison_markdown(summary, "plain", {"bn": 1, "plain": 1}, {"bn": 0.9713})
    assert "| bn | 97.00% ± 0.00% | 0.1000 | 1 | +2.00 points | n/a (needs 2 seeds) | 97.13% |" in table
    assert "| plain | 95.00% ± 0.00% | 0.2000 | 1 | — | — | n/a |" in table
    assert format_p(None) == "n/a (needs 2 seeds)" and format_p(0.00795) == "0.00795"


def probe_rows():
    rows = []
    for variant, start, end in (("bn", 0.0, 0.1), ("plain", 0.0, -4.0)):
        for seed in (0, 1):
            for step, p50 in ((500, start), (1000, end)):
                rows.append({"variant": variant, "seed": seed, "step": step, "layer": 1, "unit": "all",
                             "p15": p50 - 1, "p50": p50, "p85": p50 + 1,
                             "dead_fraction": 0.5 if variant == "plain" and step == 500 else 0.25 * (variant == "plain")})
    return pd.DataFrame(rows)


def test_drift_is_the_median_move_in_widths_and_dead_units_final_and_peak():
    moved = drift(probe_rows()).set_index("variant")
    assert moved.loc["bn", "mean"] == pytest.approx(0.05) and moved.loc["plain", "mean"] == pytest.approx(2.0)
    dead = dead_units(probe_rows()).set_index("variant")
    assert dead.loc["plain", "mean_final"] == 0.25 and dead.loc["plain", "mean_peak"] == 0.5
    assert dead.loc["bn", "mean_peak"] == 0.0


def lines_of(fig):
    return [(line.get_label(), line.get_color()) for ax in fig.axes for line in ax.get_lines()]


def test_curve_figure_draws_one_line_per_variant_in_its_colour():
    palette = plots.colors(["bn", "bn_after", "plain"], baseline="plain")
    assert palette["plain"] == plots.BASELINE_COLOR and len(set(palette.values())) == 3
    curves = {v: (np.array([0.9, 0.95, 0.97]), np.array([0.01, 0.01, 0.0])) for v in palette}
    fig = plots.curve_figure("val_accuracy", curves, 3, palette)
    assert [(label, color) for label, color in lines_of(fig)] == [(v, palette[v]) for v in palette]
    ax = fig.axes[0]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3] and ax.get_xlabel() == "epoch"
    assert "Validation accuracy" in ax.get_title() and "3 seeds" in ax.get_title()


def test_steps_figure_averages_over_seeds():
    steps = pd.DataFrame({"variant": ["bn"] * 4, "seed": [0, 0, 1, 1], "step": [500, 1000] * 2,
                          "test_accuracy": [0.8, 0.9, 0.6, 0.7]})
    fig = plots.steps_figure(steps, "test_accuracy", "t", {"bn": "tab:blue"})
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [500, 1000] and list(line.get_ydata()) == pytest.approx([0.7, 0.8])


def test_percentiles_figure_has_a_panel_per_variant_with_three_percentiles():
    probes = probe_rows().assign(unit="0")
    fig = plots.percentiles_figure(probes, layer=1, unit="0", seed=0, variants=["bn", "plain"])
    assert [ax.get_title() for ax in fig.axes] == ["bn", "plain"]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["p85", "p50", "p15"]
    assert list(fig.axes[1].get_lines()[1].get_ydata()) == [0.0, -4.0]

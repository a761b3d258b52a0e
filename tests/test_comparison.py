"""Statistics across seeds and the figures, as units: the numbers and series they must show."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bnlab.analysis import figures as plots
from bnlab.analysis.probe_tables import dead_units, drift
from bnlab.analysis.statistics import (
    ALPHA,
    POWER,
    adjusted_interval,
    comparison_markdown,
    format_p,
    holm,
    paired,
    per_seed_frame,
    summarize,
)

from helpers import unpadded


def results(rows):
    return per_seed_frame(
        [{"variant": v, "seed": s, "test_accuracy": a, "test_loss": loss} for v, s, a, loss in rows], ["bn", "plain"]
    )


DIFFS = np.array([0.021, 0.030, 0.012, 0.026, -0.004, 0.019])


def test_the_interval_and_effect_size_are_the_textbook_ones():
    test = paired(DIFFS)
    n, mean, sd = len(DIFFS), DIFFS.mean(), DIFFS.std(ddof=1)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert (test.ci_low, test.ci_high) == pytest.approx((mean - half, mean + half))
    assert test.d_z == pytest.approx(mean / sd) and test.mean == pytest.approx(mean) and test.n == 6
    assert test.p_value == pytest.approx(2 * stats.t.sf(mean / (sd / math.sqrt(n)), n - 1))


def test_the_exact_test_counts_every_sign_pattern():
    flips = [np.mean(DIFFS * signs) for signs in itertools.product((1, -1), repeat=len(DIFFS))]
    expected = np.mean(np.abs(flips) >= abs(DIFFS.mean()) - 1e-12)
    assert paired(DIFFS).p_exact == pytest.approx(expected)
    assert paired(np.full(6, 0.01)).p_exact == pytest.approx(2 / 2**6)  # its floor with 6 pairs
    assert paired(np.full(3, 0.01)).p_exact == pytest.approx(0.25)  # 3 pairs can never reach 0.05


def test_the_detectable_difference_has_the_stated_power():
    test = paired(DIFFS)
    n, sd = len(DIFFS), DIFFS.std(ddof=1)
    critical = stats.t.ppf(1 - ALPHA / 2, n - 1)
    shift = test.detectable / (sd / math.sqrt(n))  # the noncentral t's noncentrality
    power = stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)
    assert power == pytest.approx(POWER, abs=1e-4)
    assert paired(DIFFS[:3]).detectable > test.detectable  # fewer seeds detect less


def test_holm_steps_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    assert holm([0.001, 0.2]) == pytest.approx([0.002, 0.2])


def test_the_adjusted_interval_excludes_zero_exactly_when_the_holm_p_is_below_alpha():
    test = paired(DIFFS)
    for p_holm in (test.p_value, 0.049, 0.051, 0.5):
        low, high = adjusted_interval(DIFFS, test.p_value, max(p_holm, test.p_value))
        assert (low > 0) == (max(p_holm, test.p_value) < ALPHA), p_holm
    assert adjusted_interval(DIFFS, test.p_value, test.p_value) == pytest.approx((test.ci_low, test.ci_high))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], 0.0),  # the same gain for every seed: t is infinite
        ([0.9, 0.8], [0.9, 0.8], 1.0),  # identical pairs: no difference at all
        ([0.9], [0.8], math.nan),  # one seed: undefined
    ],
)
def test_the_paired_test_at_its_edges(a, b, expected):
    found = paired(np.array(a) - np.array(b)).p_value
    assert (math.isnan(found) and math.isnan(expected)) or found == expected


def test_a_missing_pair_is_left_out():
    assert paired(np.array([0.01, math.nan, 0.02])).n == 2


def test_summary_per_variant_and_against_the_baseline():
    summary = summarize(
        results(
            [
                ("bn", 0, 0.97, 0.10),
                ("bn", 1, 0.96, 0.12),
                ("bn", 2, 0.975, 0.1),
                ("plain", 0, 0.95, 0.20),
                ("plain", 1, 0.95, 0.22),
                ("plain", 2, 0.951, 0.2),
            ]
        ),
        "plain",
    )
    assert summary["bn"] == {
        "test_accuracy_mean": pytest.approx(0.968333, abs=1e-6),
        "test_accuracy_std": pytest.approx(0.007638, abs=1e-6),
        "test_loss_mean": 0.106667,
        "seeds": 3,
        "diverged": 0,
    }
    assert set(summary["comparison"]) == {"bn"}  # the baseline is not compared with itself
    comp = summary["comparison"]["bn"]
    test = paired(np.array([0.02, 0.01, 0.024]))
    assert comp["test_accuracy_gain"] == pytest.approx(test.mean, abs=1e-6) and comp["seeds"] == 3
    assert (comp["gain_ci_low"], comp["gain_ci_high"]) == pytest.approx((test.ci_low, test.ci_high), abs=1e-6)
    assert comp["p_exact"] == 0.25 and comp["p_holm"] == comp["p_value"]  # one comparison: nothing to adjust
    assert comp["effect_size_dz"] == pytest.approx(test.d_z, abs=1e-6)


def test_holm_within_an_experiment_covers_every_variant():
    rows = [("bn", s, 0.97 + 0.001 * s, 0.1) for s in range(4)] + [("plain", s, 0.95, 0.2) for s in range(4)]
    rows += [("other", s, 0.95 + 0.002 * (s % 2), 0.2) for s in range(4)]
    frame = per_seed_frame(
        [{"variant": v, "seed": s, "test_accuracy": a, "test_loss": loss} for v, s, a, loss in rows],
        ["bn", "other", "plain"],
    )
    comps = summarize(frame, "plain")["comparison"]
    expected = holm([comps["bn"]["p_value"], comps["other"]["p_value"]])
    assert [comps["bn"]["p_holm"], comps["other"]["p_holm"]] == pytest.approx(expected, abs=1e-6)
    assert comps["bn"]["p_holm"] == pytest.approx(2 * comps["bn"]["p_value"], abs=1e-6)  # the smaller of two


def test_one_seed_gives_no_p_value_and_the_table_says_so():
    summary = summarize(results([("bn", 0, 0.97, 0.1), ("plain", 0, 0.95, 0.2)]), "plain")
    assert summary["comparison"]["bn"]["p_value"] is None and summary["bn"]["test_accuracy_std"] == 0.0
    table = unpadded(comparison_markdown(summary, "plain", {"bn": 0.9713}))
    assert (
        "| bn | 97.00% ± 0.00% | 0.1000 | 1 | +2.00 | n/a | n/a (needs 2 seeds) | n/a (needs 2 seeds) "
        "| n/a (needs 2 seeds) | n/a | 97.13% |"
    ) in table
    assert "| plain | 95.00% ± 0.00% | 0.2000 | 1 | — | — | — | — | — | — | n/a |" in table
    assert format_p(None) == "n/a (needs 2 seeds)" and format_p(0.00795) == "0.008"


def probe_rows():
    rows = []
    for variant, start, end in (("bn", 0.0, 0.1), ("plain", 0.0, -4.0)):
        for seed in (0, 1):
            for step, p50 in ((500, start), (1000, end)):
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "step": step,
                        "layer": 1,
                        "unit": "all",
                        "p15": p50 - 1,
                        "p50": p50,
                        "p85": p50 + 1,
                        "dead_fraction": 0.5 if variant == "plain" and step == 500 else 0.25 * (variant == "plain"),
                    }
                )
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
    steps = pd.DataFrame(
        {"variant": ["bn"] * 4, "seed": [0, 0, 1, 1], "step": [500, 1000] * 2, "test_accuracy": [0.8, 0.9, 0.6, 0.7]}
    )
    fig = plots.steps_figure(steps, "test_accuracy", "t", {"bn": "tab:blue"})
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [500, 1000] and list(line.get_ydata()) == pytest.approx([0.7, 0.8])


def test_percentiles_figure_has_a_panel_per_variant_with_three_percentiles():
    probes = probe_rows().assign(unit="0")
    fig = plots.percentiles_figure(probes, layer=1, unit="0", seed=0, variants=["bn", "plain"])
    assert [ax.get_title() for ax in fig.axes] == ["bn", "plain"]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["p85", "p50", "p15"]
    assert list(fig.axes[1].get_lines()[1].get_ydata()) == [0.0, -4.0]


def test_diverged_networks_leave_the_loss_undefined_and_the_accuracy_compared():
    rows = [("bn", s, 0.10, float("nan")) for s in range(3)] + [("plain", s, 0.90 + 0.01 * s, 0.3) for s in range(3)]
    summary = summarize(results(rows), "plain")
    assert summary["bn"]["test_loss_mean"] is None and summary["comparison"]["bn"]["p_value"] is not None
    table = unpadded(comparison_markdown(summary, "plain"))
    assert "| bn | 10.00% ± 0.00% | n/a | 3 (3 diverged) |" in table


def test_a_diverged_seed_is_counted_not_silently_dropped_from_the_loss():
    losses = [0.2, 0.4, float("nan")]
    rows = [("bn", s, 0.95 + 0.01 * s, loss) for s, loss in enumerate(losses)] + [
        ("plain", s, 0.90 + 0.01 * s, 0.3) for s in range(3)
    ]
    summary = summarize(results(rows), "plain")
    assert summary["bn"]["seeds"] == 3 and summary["bn"]["diverged"] == 1
    assert summary["bn"]["test_loss_mean"] == pytest.approx(0.3)  # over the two that did not diverge
    assert summary["plain"]["diverged"] == 0
    table = unpadded(comparison_markdown(summary, "plain"))
    assert "| bn | 96.00% ± 1.00% | 0.3000 (2 seeds) | 3 (1 diverged) |" in table
    assert "| plain | 91.00% ± 1.00% | 0.3000 | 3 |" in table

"""The verdict table and the results page: words from the stated rules, Holm over the table,
claims the experiments cannot test, the page from reports read back from disk, and a missing
report refused by the stage with its name and nothing written."""

import fnmatch
import json
import math
import os
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest

from bnlab.analysis import claims as shipped
from bnlab.analysis import generalizations
from bnlab.analysis.answer import against_bn, layers_text
from bnlab.analysis.measures import ModelMetric, ProbeMeasure
from bnlab.analysis.published import ExperimentResults, read_results
from bnlab.analysis.results_page import SHOWN_FIGURES, ResultsPage
from bnlab.analysis.statistics import ALPHA, format_p, gain_with_interval, holm, paired, summarize
from bnlab.analysis.sweep import point_summaries
from bnlab.analysis.verdicts import (
    AGREES,
    DISAGREES,
    NO_EFFECT,
    PARTLY,
    T_TEST_ONLY,
    TOO_FEW,
    Claim,
    Generalization,
    generalization_word,
    judge,
    unmeasurable,
    verdict_word,
)
from bnlab.core import layout
from bnlab.experiments.params import load_params
from bnlab.ml.probe_rows import POOLED, TABLES
from bnlab.pipeline.stages import results as results_stage

from helpers import PROJECT, unpadded

ACCURACY = ModelMetric("test accuracy", unit="%", difference_unit=" points", scale=100)
SEEDS = list(range(8))


@pytest.mark.parametrize(
    "direction, mean, p_holm, n, p_exact, word",
    [
        (+1, 0.02, 0.001, 8, 0.008, AGREES),
        (-1, 0.02, 0.001, 8, 0.008, DISAGREES),
        (+1, 0.02, 0.001, 6, 0.0625, AGREES + T_TEST_ONLY),  # a pair against: the exact test cannot follow
        (-1, 0.02, 0.001, 6, 0.0625, DISAGREES + T_TEST_ONLY),
        (+1, 0.02, 0.2, 8, 0.008, NO_EFFECT),
        (+1, 0.02, ALPHA, 8, 0.008, NO_EFFECT),  # "below α", not "at most"
        (+1, 0.02, math.nan, 1, math.nan, TOO_FEW),
    ],
)
def test_a_verdict_word_follows_the_rule(direction, mean, p_holm, n, p_exact, word):
    assert verdict_word(direction, mean, p_holm, n, p_exact) == word


@pytest.mark.parametrize(
    "words, expected",
    [
        ([AGREES, AGREES], AGREES),
        ([AGREES, NO_EFFECT], PARTLY),
        ([AGREES, DISAGREES], DISAGREES),
        ([AGREES, AGREES + T_TEST_ONLY], AGREES),
        ([NO_EFFECT, DISAGREES + T_TEST_ONLY], DISAGREES),
        ([NO_EFFECT, NO_EFFECT], NO_EFFECT),
    ],
)
def test_a_generalization_is_judged_from_its_claims(words, expected):
    assert generalization_word(words) == expected


def sweep(gains: dict[str, float], spread: float = 0.002, seed: int = 0) -> pd.DataFrame:
    """sweep.csv of an experiment: plain, and each variant better by its gain (plus noise)."""
    rng = np.random.default_rng(seed)
    plain = 0.95 + rng.normal(0, 0.004, len(SEEDS))
    rows = [
        {"variant": "plain", "seed": s, "test_accuracy": a, "test_loss": 0.2, "final_train_loss": 0.1}
        for s, a in zip(SEEDS, plain)
    ]
    for variant, gain in gains.items():
        rows += [
            {
                "variant": variant,
                "seed": s,
                "test_accuracy": a + gain + rng.normal(0, spread),
                "test_loss": 0.1,
                "final_train_loss": 0.05,
            }
            for s, a in zip(SEEDS, plain)
        ]
    return pd.DataFrame(rows)


def probes(drifts: dict[str, float]) -> pd.DataFrame:
    """Pooled probe rows whose median moves by ``drifts[variant]`` widths (width 2) in each layer."""
    rows = [
        {
            "variant": v,
            "seed": s,
            "step": step,
            "layer": layer,
            "unit": POOLED,
            "p15": p50 - 1,
            "p50": p50,
            "p85": p50 + 1,
            "dead_fraction": 0.0,
        }
        for v, d in drifts.items()
        for s in SEEDS
        for layer in (1, 2)
        for step, p50 in ((500, 0.0), (1000, 2 * d * (1 + 0.05 * s)))
    ]
    return pd.DataFrame(rows)


def experiment(
    name: str,
    frame: pd.DataFrame,
    probe_rows: pd.DataFrame | None = None,
    geometry: dict[str, pd.DataFrame] | None = None,
) -> ExperimentResults:
    variants = list(dict.fromkeys(frame["variant"]))
    ordered = [*[v for v in variants if v != "plain"], "plain"]
    frame["variant"] = pd.Categorical(frame["variant"], categories=ordered, ordered=True)
    frame = frame.sort_values(["variant", "seed"]).reset_index(drop=True)
    metrics = summarize(frame.drop(columns="final_train_loss"), "plain")
    frame["variant"] = frame["variant"].astype(str)
    empty = {file: pd.DataFrame(columns=["variant", "seed", *columns]) for file, columns in TABLES.items()}
    tables = {**empty, "probes.csv": empty["probes.csv"] if probe_rows is None else probe_rows, **(geometry or {})}
    return ExperimentResults(
        name,
        f"{name}'s description",
        f"# {name}: {name}'s description\n",
        metrics,
        frame,
        *tables.values(),
        PROJECT / "nowhere",
        settings(ordered),
    )


BN_FREE = ("plain_agc", "skipinit")  # the alternatives' variant names in these fixtures


def settings(variants, **differ) -> pd.DataFrame:
    """settings.csv: every variant at Adam 0.01, batch 32, 32-32, moving statistics, BN but in
    the plain network and :data:`BN_FREE`; ``differ`` = {setting: {variant: value}}."""
    rows = [
        {"variant": v, "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "hidden_units": "32-32"}
        | {"bn_statistics": "moving", "batch_norm": v not in ("plain", *BN_FREE)}
        | {name: values[v] for name, values in differ.items() if v in values}
        for v in variants
    ]
    return pd.DataFrame(rows)


def test_judge_measures_each_claim_and_adjusts_over_the_whole_table():
    results = {
        "big": experiment("big", sweep({"batchnorm": 0.02})),
        "none": experiment("none", sweep({"batchnorm": 0.0}, spread=0.004, seed=1)),
        "drifty": experiment("drifty", sweep({"batchnorm": 0.0}), probes({"batchnorm": 0.05, "plain": 0.5})),
    }
    claims = (
        Claim("big", "BN helps", "s", "big", ACCURACY, +1),
        Claim("hurts", "BN hurts", "s", "big", ACCURACY, -1),
        Claim("none", "BN helps here too", "s", "none", ACCURACY, +1),
        Claim("drift", "BN stops drift", "s", "drifty", ProbeMeasure("drift", quantity="drift"), -1),
    )
    verdicts = judge(claims, results)
    assert [v.word for v in verdicts] == [AGREES, DISAGREES, NO_EFFECT, AGREES]
    # "BN helps" and "BN hurts" are one comparison of the same numbers: one member of the family
    distinct = [verdicts[i] for i in (0, 2, 3)]
    assert [v.p_holm for v in distinct] == pytest.approx(holm([v.test.p_value for v in distinct]))
    assert verdicts[1].p_holm == verdicts[0].p_holm and verdicts[1].same_as == "big"
    assert [v.same_as for v in distinct] == [None, None, None]
    table = unpadded(ResultsPage(results, verdicts, (), [], "figures").verdict_table())
    assert "BN hurts (`big`) is measured from the same numbers as BN helps (`big`): one comparison" in table
    diff = results["big"].sweep.pivot(index="seed", columns="variant", values="test_accuracy")
    expected = paired((diff["batchnorm"] - diff["plain"]).to_numpy())
    assert verdicts[0].test.mean == pytest.approx(expected.mean) and verdicts[0].test.n == len(SEEDS)
    low, high = verdicts[0].interval
    assert 0 < low < expected.ci_low and high > expected.ci_high  # wider than the unadjusted interval
    assert verdicts[3].test.mean == pytest.approx(-0.45 * np.mean([1 + 0.05 * s for s in SEEDS]))
    # detectable at the level Holm tests each row at: α/3, α/2, α by rank of p among the 3
    ranks = np.argsort(np.argsort([v.test.p_value for v in distinct]))
    assert [v.level for v in distinct] == pytest.approx([ALPHA / (3 - r) for r in ranks])
    none = verdicts[2]
    assert none.level == pytest.approx(ALPHA) and none.detectable == pytest.approx(none.test.detectable)
    first = distinct[int(np.argmin(ranks))]
    assert first.level == pytest.approx(ALPHA / 3) and first.detectable > first.test.detectable


def test_claims_these_experiments_cannot_test_are_named_with_the_reason():
    results = {"big": experiment("big", sweep({"batchnorm": 0.02}))}
    assert (
        unmeasurable(Claim("a", "c", "s", "gone", ACCURACY, +1), results)
        == "no experiment gone was reported (reports/gone/)"
    )
    assert (
        unmeasurable(Claim("b", "c", "s", "big", ACCURACY, +1, variant="noisy_bn"), results)
        == "big has no variant noisy_bn"
    )
    assert (
        unmeasurable(Claim("c", "c", "s", "big", ACCURACY, +1, point={"learning_rate": 0.1}), results)
        == "big has no grid point learning_rate=0.1"
    )
    drift = ProbeMeasure("drift", quantity="drift")
    assert unmeasurable(Claim("f", "c", "s", "big", drift, -1), results) == "big has no probes"
    claim = Claim("d", "BN helps", "s", "big", ACCURACY, +1)
    gone = Claim("e", "BN helps elsewhere", "s", "gone", ACCURACY, +1)
    page = ResultsPage(
        results,
        judge((claim, gone), results),
        (Generalization("always", "s", ("d", "e")),),
        [(gone, unmeasurable(gone, results))],
        "figures",
    )
    text = unpadded(page.markdown())
    assert "Not tested here: BN helps elsewhere (s): no experiment gone was reported (reports/gone/)." in text
    assert "| always |" not in text  # a generalization over an untested claim is not judged


def test_a_grid_experiment_has_one_table_row_per_point_with_each_variants_numbers():
    low, high = sweep({"batchnorm": 0.02}, seed=2), sweep({"batchnorm": -0.01}, seed=3)
    frame = pd.concat([low.assign(learning_rate=0.001), high.assign(learning_rate=0.1)], ignore_index=True)
    frame = frame[["learning_rate", *low.columns]]
    frame["variant"] = pd.Categorical(frame["variant"], categories=["batchnorm", "plain"], ordered=True)
    frame = frame.sort_values(["learning_rate", "variant", "seed"]).reset_index(drop=True)
    metrics = point_summaries(
        frame.drop(columns="final_train_loss"), ["learning_rate"], ["batchnorm", "plain"], "plain"
    )
    frame["variant"] = frame["variant"].astype(str)
    made = experiment("sweep", low)  # its tables; the grid's own sweep and metrics below
    grid = ExperimentResults("sweep", "a sweep", "# sweep\n", metrics, frame, *astuple(made)[5:])
    text = unpadded(ResultsPage({"sweep": grid}, [], (), [], "figures").markdown())
    rows = [line for line in text.splitlines() if line.startswith(("| 0.001 |", "| 0.1 |"))]
    assert len(rows) == 2
    for row, label in zip(rows, ("learning_rate=0.001", "learning_rate=0.1")):
        comp = metrics[label]["comparison"]["batchnorm"]
        assert f"| {gain_with_interval(comp)}, {format_p(comp['p_value'])}, {format_p(comp['p_holm'])} |" in row
        assert row.endswith("| 0.050 / 0.100 |")  # the final training loss of each variant


def write_reports(
    folder, frame: pd.DataFrame, metrics: dict, description: str = "the description", made: pd.DataFrame | None = None
) -> None:
    (folder / "figures").mkdir(parents=True)
    (settings(["batchnorm", "plain"]) if made is None else made).to_csv(folder / "settings.csv", index=False)
    (folder / "comparison.md").write_text(f"# {folder.name}: {description}\n\n| the table |\n\n## Probes\n")
    (folder / "figures" / "val_accuracy.png").write_bytes(b"png")
    (folder / "figures" / "train_loss.png").write_bytes(b"png")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    frame.to_csv(folder / "sweep.csv", index=False)
    probes({"batchnorm": 0.05, "plain": 0.5}).to_csv(folder / "probes.csv", index=False)
    steps = [
        {
            "variant": v,
            "seed": s,
            "step": step,
            "val_accuracy": 0.9,
            "test_accuracy": 0.9 + 0.01 * (v == "batchnorm"),
            "train_mode_accuracy": None,
        }
        for v in ("batchnorm", "plain")
        for s in SEEDS
        for step in (500, 1000)
    ]
    pd.DataFrame(steps).to_csv(folder / "steps.csv", index=False)
    for file in set(TABLES) - {"probes.csv", "steps.csv"}:
        pd.DataFrame(columns=["variant", "seed", *TABLES[file]]).to_csv(folder / file, index=False)


def test_the_page_shows_the_numbers_of_metrics_json_and_the_figures_it_names(tmp_path):
    made = experiment("notebook", sweep({"batchnorm": 0.02}))
    write_reports(tmp_path / "notebook", made.sweep, made.metrics, "784-32-32-10: BN vs plain")
    read = read_results(tmp_path / "notebook")
    assert read.baseline == "plain" and read.variants == ["batchnorm", "plain"] and read.seeds == SEEDS
    assert read.description == "784-32-32-10: BN vs plain"  # from comparison.md's title
    verdicts = judge(shipped.CLAIMS, {"notebook": read})
    assert {v.claim.key for v in verdicts} == {c.key for c in shipped.CLAIMS if c.experiment == "notebook"}
    page = ResultsPage({"notebook": read}, verdicts, generalizations.GENERALIZATIONS, [], "figures")
    text = unpadded(page.markdown())
    comp = made.metrics["comparison"]["batchnorm"]
    row = next(line for line in text.splitlines() if line.startswith("| `notebook` | batchnorm vs plain"))
    assert (
        f"{100 * comp['test_accuracy_gain']:+.2f} [{100 * comp['gain_ci_low']:+.2f}, "
        f"{100 * comp['gain_ci_high']:+.2f}]" in row
    )
    assert f"| {comp['p_exact']:.2g} |" in row and f"| {len(SEEDS)} |" in row
    assert "### `notebook`: 784-32-32-10: BN vs plain\n" in text and "| the table |" in text  # comparison.md
    assert "\n#### Probes\n" in text  # its headings below the page's
    assert set(page.figures()) == {"notebook_val_accuracy.png"}  # not the training loss
    assert "![val_accuracy.png](figures/notebook_val_accuracy.png)" in text


def test_a_tuned_comparison_heads_the_headline_naming_each_networks_chosen_setting(tmp_path):
    shared, tuned = (
        experiment(name, sweep({"batchnorm": 0.02}, seed=s)) for name, s in (("notebook", 0), ("notebook_tuned", 1))
    )
    selected = {"batchnorm": {"learning_rate": 0.003}, "plain": {"learning_rate": 0.001}}
    write_reports(tmp_path / "notebook", shared.sweep, shared.metrics)
    write_reports(tmp_path / "notebook_tuned", tuned.sweep, {**tuned.metrics, "selected": selected})
    read = {name: read_results(tmp_path / name) for name in ("notebook", "notebook_tuned")}
    page = ResultsPage(read, judge(shipped.CLAIMS, read), generalizations.GENERALIZATIONS, [], "figures")
    headline = unpadded(page.headline()).splitlines()
    rows = [line for line in headline if line.startswith("| `")]
    assert rows[0].startswith("| `notebook_tuned` | batchnorm at learning_rate=0.003 vs plain at learning_rate=0.001 |")
    assert rows[1].startswith("| `notebook` | batchnorm vs plain |")  # one shared setting: no settings named


def test_a_comparison_whose_runs_experiments_share_is_one_headline_row_and_one_member_of_holms_family(tmp_path):
    runs = sweep({"batchnorm": 0.02, "noisy_bn": 0.01}, seed=4)
    made = {
        "notebook": experiment("notebook", runs[runs["variant"] != "noisy_bn"].copy()),
        "noisy_bn": experiment("noisy_bn", runs.copy()),
        "santurkar": experiment("santurkar", runs.copy()),
        "other": experiment("other", sweep({"batchnorm": 0.01}, seed=5)),
    }
    for name, r in made.items():
        write_reports(tmp_path / name, r.sweep, r.metrics)
    read = {name: read_results(tmp_path / name) for name in made}
    headline = unpadded(ResultsPage(read, [], (), [], "figures").headline())
    rows = [line for line in headline.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| `notebook` (the same runs: `noisy_bn`, `santurkar`)", "batchnorm vs plain"],
        ["| `noisy_bn` (the same runs: `santurkar`)", "noisy_bn vs plain"],
        ["| `other`", "batchnorm vs plain"],
    ]
    comps = [made["notebook"], made["noisy_bn"], made["other"]]
    p_values = [comps[0].metrics["comparison"]["batchnorm"]["p_value"]]
    p_values += [
        comps[1].metrics["comparison"]["noisy_bn"]["p_value"],
        comps[2].metrics["comparison"]["batchnorm"]["p_value"],
    ]
    assert [row.split(" | ")[7] for row in rows] == [format_p(p) for p in holm(p_values)]  # over 3 rows, not 5


def test_the_page_opens_with_when_bn_helps_each_row_at_its_settings_and_the_generalization_judged_from_them(tmp_path):
    made = {
        "notebook": experiment("notebook", sweep({"batchnorm": 0.02}, seed=6)),
        "tuned": experiment("tuned", sweep({"batchnorm": 0.0}, spread=0.004, seed=7)),
        "small": experiment("small", sweep({"batchnorm": -0.02}, seed=8)),
    }
    tuned_rates = settings(["batchnorm", "plain"], learning_rate={"batchnorm": 0.003, "plain": 0.001})
    selected = {"batchnorm": {"learning_rate": 0.003}, "plain": {"learning_rate": 0.001}}
    small = settings(
        ["batchnorm", "plain"], batch_size={"batchnorm": 2, "plain": 2}, bn_statistics={"batchnorm": "recomputed"}
    )
    write_reports(tmp_path / "notebook", made["notebook"].sweep, made["notebook"].metrics)
    write_reports(
        tmp_path / "tuned", made["tuned"].sweep, {**made["tuned"].metrics, "selected": selected}, made=tuned_rates
    )
    write_reports(tmp_path / "small", made["small"].sweep, made["small"].metrics, made=small)
    read = {name: read_results(tmp_path / name) for name in made}
    claims = tuple(Claim(name, "BN's accuracy is higher", "s", name, ACCURACY, +1) for name in made)
    always = Generalization("always use BN", "the notebook", tuple(made), answers=True)
    page = ResultsPage(read, judge(claims, read), (always,), [], "figures")
    text = unpadded(page.markdown())
    assert [line for line in text.splitlines() if line.startswith("## ")][0] == "## When BN helps"
    rows = [line.split(" | ") for line in unpadded(page.answer()).splitlines() if line.startswith("| `")]
    assert [row[1:6] for row in rows] == [
        ["adam 0.01", "32", "32-32", "moving", "no: one shared setting"],
        ["adam batchnorm 0.003, plain 0.001", "32", "32-32", "moving", "yes"],
        ["adam 0.01", "2", "32-32", "recomputed", "no: one shared setting"],
    ]
    assert [row[7] for row in rows] == ["**helps**", "**no effect shown**", "**hurts**"]
    assert [row[8] for row in rows] == ["— |"] * 3  # no BN-free network measured there
    assert "**always use BN** (the notebook): **disagrees**" in text  # judged from the rows above


def test_each_bn_free_alternative_measured_at_a_row_is_set_against_bn_by_the_stated_rule(tmp_path):
    # plain_agc: BN's accuracy to within noise; skipinit: 3 points short of it.
    made = experiment("sweep", sweep({"batchnorm": 0.02, "plain_agc": 0.02, "skipinit": -0.01}, spread=0.001, seed=3))
    write_reports(
        tmp_path / "sweep", made.sweep, made.metrics, made=settings(["batchnorm", "plain_agc", "skipinit", "plain"])
    )
    read = {"sweep": read_results(tmp_path / "sweep")}
    claim = Claim("sweep", "BN's accuracy is higher", "s", "sweep", ACCURACY, +1)
    always = Generalization("always use BN", "the notebook", ("sweep",), answers=True)
    page = ResultsPage(read, judge((claim,), read), (always,), [], "figures")
    (row,) = [line for line in unpadded(page.answer()).splitlines() if line.startswith("| `sweep`")]
    cell = row.split(" | ")[8]
    assert cell.startswith("plain_agc +0.0") and "**matches BN**" in cell
    assert "skipinit -2.9" in cell and "**falls short of BN**" in cell
    assert "within ±1 point" in page.answer()
    assert "**beats BN**" == f"**{against_bn(paired(np.array([0.02, 0.021, 0.019, 0.02])))}**"
    assert against_bn(paired(np.array([0.02, -0.03, 0.01]))) == "undecided"
    # Within the margin but clearly below: not "matches".
    assert against_bn(paired(np.array([-0.008, -0.0078, -0.0081, -0.0079]))) == "within 1 point of BN, below it"
    assert layers_text("-".join(["384"] * 50)) == "50 × 384" and layers_text("32-32") == "32-32"


def test_every_figure_a_claim_links_to_is_copied_beside_the_page():
    for claim in shipped.CLAIMS:
        for figure in claim.figures:
            assert any(fnmatch.fnmatch(figure, pattern) for pattern in SHOWN_FIGURES), (claim.key, figure)


def test_the_stage_reads_every_report_the_default_first(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for name in ("zeta", "notebook", "alpha"):
        made = experiment(name, sweep({"batchnorm": 0.02}))
        write_reports(layout.reports_dir(name), made.sweep, made.metrics)
    assert results_stage.main([]) == 0
    page = layout.RESULTS_PAGE.read_text()
    assert page.index("### `notebook`") < page.index("### `alpha`") < page.index("### `zeta`")
    assert "wrote docs/results.md" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["missing", "not the report's table"])
def test_the_stage_refuses_a_broken_report_by_name_and_writes_nothing(tmp_path, monkeypatch, capsys, damage):
    (tmp_path / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for name in ("notebook", "noisy_bn"):
        made = experiment(name, sweep({"batchnorm": 0.02}))
        write_reports(layout.reports_dir(name), made.sweep, made.metrics)
    broken = layout.reports_dir("noisy_bn") / ("probes.csv" if damage == "missing" else "comparison.md")
    if damage == "missing":
        os.remove(broken)
    else:
        broken.write_text("| a table someone pasted |\n")
    assert results_stage.main([]) != 0
    error = capsys.readouterr().err
    assert str(broken) in error and damage in error and "Traceback" not in error
    assert not layout.RESULTS_PAGE.exists() and not layout.RESULTS_FIGURES.exists()


def bn_accuracy_rows(claims) -> set[str]:
    """The rows that bear on "always use BN": BN's test accuracy against the plain network's,
    in any experiment and at any grid point, whatever the row's words or verdict."""
    return {
        c.key for c in claims if c.measure == shipped.ACCURACY and (c.variant, c.baseline) == ("batchnorm", "plain")
    }


def always_use_bn(found=None):
    found = found or generalizations.GENERALIZATIONS
    return next(g for g in found if g.claim.startswith("always use BN"))


def test_always_use_bn_is_judged_from_every_row_that_bears_on_it_contrary_ones_included():
    rows = bn_accuracy_rows(shipped.CLAIMS)
    assert {"small_batch_accuracy_2", "notebook_best", "large_rate"} <= rows  # the rule sees them
    assert set(always_use_bn().spans) == rows


def test_leaving_out_a_contrary_row_is_caught_and_changes_the_verdict():
    """BN loses at batch 2 (small_batches): a generalization without that row would read
    *agrees*; with it, the page's rule makes it *disagrees*."""
    without = Generalization(
        "always use BN", "x", tuple(k for k in always_use_bn().spans if k != "small_batch_accuracy_2")
    )
    assert set(without.spans) != bn_accuracy_rows(shipped.CLAIMS)
    words = dict.fromkeys(always_use_bn().spans, AGREES) | {"small_batch_accuracy_2": DISAGREES}
    assert generalization_word([words[k] for k in without.spans]) == AGREES
    assert generalization_word([words[k] for k in always_use_bn().spans]) == DISAGREES


def test_every_cited_experiment_has_seeds_enough_for_the_exact_test():
    """At least 6 pairs: the sign-flip test's smallest p, 2 / 2^n, is then below α."""
    params = load_params(PROJECT / "params.yaml")
    for name in {claim.experiment for claim in shipped.CLAIMS}:
        n = len(params.experiment(name).seeds)
        assert n >= 6 and paired(np.full(n, 0.01)).p_exact < ALPHA, name


def test_every_claim_at_a_grid_point_names_a_point_its_experiment_measures():
    """The claims name grid points (the map's cells, small_batches' batch sizes) that
    params.yaml declares: a grid edited without its claims fails here, not on the page."""
    params = load_params(PROJECT / "params.yaml")
    pointed = [claim for claim in shipped.CLAIMS if claim.point]
    assert {"deep_bn_50_8", "skipinit_depth_128", "small_batch_accuracy_2"} <= {c.key for c in pointed}
    for claim in pointed:
        grid = params.experiment(claim.experiment).grid
        assert all(value in grid[key] for key, value in claim.point.items()), claim.key


PROBE_STEPS = (1, 10, 100)


def geometry_frames(bn_factor: float, direction: str = "gradient") -> dict[str, pd.DataFrame]:
    """landscape.csv (along ``direction``) and ics.csv of 6 seeds, 3 probes: BN's gradient
    changes and shift ``bn_factor`` times the plain network's, with seed-to-seed noise."""
    rng = np.random.default_rng(4)
    landscape, ics = [], []
    for variant, factor in (("batchnorm", bn_factor), ("plain", 1.0)):
        for seed in SEEDS:
            for step in PROBE_STEPS:
                noise = rng.uniform(0.9, 1.1)
                for eta in (0.5, 1.0, 2.0):
                    landscape.append(
                        {
                            "variant": variant,
                            "seed": seed,
                            "step": step,
                            "direction": direction,
                            "eta": eta,
                            "loss": 1.0 + factor * noise * eta,
                            "grad_change": factor * noise * eta,
                            "distance": eta,
                        }
                    )
                ics.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "step": step,
                        "layer": 2,
                        "ics_l2": factor * noise,
                        "ics_cosine": 0.9,
                    }
                )
    return {"landscape.csv": pd.DataFrame(landscape), "ics.csv": pd.DataFrame(ics)}


def test_landscape_and_shift_claims_are_judged_from_the_runs_log_averages():
    frame = sweep({"batchnorm": 0.0})
    claims = (
        Claim("smooth", "BN smooths", "s", "geo", shipped.SMOOTHNESS, -1),
        Claim("loss", "BN varies less", "s", "geo", shipped.LOSS_VARIATION, -1),
        Claim("ics", "BN shifts less", "s", "geo", shipped.SHIFT_NORM, -1),
    )
    smoother = judge(claims, {"geo": experiment("geo", frame.copy(), geometry=geometry_frames(0.5))})
    assert [v.word for v in smoother] == [AGREES, AGREES, AGREES]
    # β-smoothness of a probe: max(grad_change / distance) = factor * noise; log10 of 0.5 per run.
    assert smoother[0].test.mean == pytest.approx(np.log10(0.5), abs=0.05)
    rougher = judge(claims, {"geo": experiment("geo", frame.copy(), geometry=geometry_frames(2.0))})
    assert [v.word.removesuffix(T_TEST_ONLY) for v in rougher] == [DISAGREES] * 3
    without = experiment("geo", frame.copy())
    assert unmeasurable(claims[0], {"geo": without}) == "geo has no landscape probes"
    assert unmeasurable(claims[2], {"geo": without}) == "geo has no covariate-shift probes"


def kernel_norm_frame(norms: dict[str, float], steps=PROBE_STEPS) -> pd.DataFrame:
    """weight_norms.csv: two hidden kernels per run, each of norm ``norms[variant]`` at ``steps``."""
    return pd.DataFrame(
        [
            {"variant": v, "seed": seed, "step": step, "layer": layer, "kernel_norm": n, "angular_update": 0.01}
            for v, n in norms.items()
            for seed in SEEDS
            for step in steps
            for layer in (1, 2)
        ]
    )


def test_beta_at_equal_weight_scale_multiplies_each_probe_by_its_steps_kernel_norms_squared():
    frame = sweep({"batchnorm": 0.0})
    claims = (Claim("scaled", "BN smooths at equal ‖w‖", "s", "geo", shipped.SCALED_SMOOTHNESS, -1),)
    geometry = geometry_frames(0.5, direction="gradient_fixed_length")

    def judged(norms: dict[str, float]):
        tables = {**geometry, "weight_norms.csv": kernel_norm_frame(norms)}
        return judge(claims, {"geo": experiment("geo", frame.copy(), geometry=tables)})[0]

    # BN's β is half the plain network's: at equal norms it stays half ...
    assert judged({"batchnorm": 1.0, "plain": 1.0}).test.mean == pytest.approx(np.log10(0.5), abs=0.05)
    # ... but kernels twice as long make β·‖w‖² twice the plain network's: the claim falls.
    longer = judged({"batchnorm": 2.0, "plain": 1.0})
    assert longer.test.mean == pytest.approx(np.log10(2.0), abs=0.05)
    assert longer.word.removesuffix(T_TEST_ONLY) == DISAGREES
    assert (
        unmeasurable(claims[0], {"geo": experiment("geo", frame.copy(), geometry=geometry)})
        == "geo has no weight norms"
    )
    tables = {**geometry, "weight_norms.csv": kernel_norm_frame({"batchnorm": 1.0, "plain": 1.0}, steps=(1, 10))}
    with pytest.raises(ValueError, match="no kernel norms at landscape probe step 100"):
        judge(claims, {"geo": experiment("geo", frame.copy(), geometry=tables)})


def init_gradient_frames(bn_rate: float) -> dict[str, pd.DataFrame]:
    """init_gradients.csv of 6 seeds, 20 layers at batch 8: BN's ‖∂L/∂h‖² grows by ``bn_rate`` per
    layer going down, the plain network's by 1, each seed's rate off by up to 2%."""
    rng = np.random.default_rng(5)
    rows = [
        {
            "variant": variant,
            "seed": seed,
            "batch_size": 8,
            "depth": 20,
            "width": 4,
            "layer": layer,
            "grad_sq_norm": (rate * jitter) ** (20 - layer),
        }
        for variant, rate in (("batchnorm", bn_rate), ("plain", 1.0))
        for seed in SEEDS
        for jitter in [rng.uniform(0.98, 1.02)]
        for layer in range(1, 21)
    ]
    return {"init_gradients.csv": pd.DataFrame(rows)}


def test_the_gradient_growth_claim_is_judged_from_each_runs_fitted_factor():
    frame = sweep({"batchnorm": 0.0})
    claim = Claim("yang", "BN's gradients grow", "y", "init", shipped.GRADIENT_GROWTH, +1)
    (growing,) = judge((claim,), {"init": experiment("init", frame.copy(), geometry=init_gradient_frames(1.5))})
    assert growing.word == AGREES and growing.variant_mean == pytest.approx(1.5, rel=0.02)
    assert growing.baseline_mean == pytest.approx(1.0, rel=0.02)
    (shrinking,) = judge((claim,), {"init": experiment("init", frame.copy(), geometry=init_gradient_frames(0.8))})
    assert shrinking.word.removesuffix(T_TEST_ONLY) == DISAGREES
    assert unmeasurable(claim, {"init": experiment("init", frame.copy())}) == "init has no gradients at initialization"

"""Each variant at its best (``tune``): the selection's rule, its jobs and names, a bad block
refused by key path, and a tuned experiment declared in params.yaml alone, run by the real
`dvc repro`: selected on the validation split, compared at the chosen settings, the selection's
models never tested or served, and a selection job that equals a job trained before restored, not trained."""

import json
import math

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from bnlab.core import layout
from bnlab.experiments.jobs import jobs, selection_jobs
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.experiments.selection import choose
from bnlab.tracking.runs import PROVENANCE_TAG, ROLE_TAG, SELECTION_ROLE

from helpers import PROJECT, make_mnist, run, split_project, store_env

RATES = [0.01, 0.003]
TUNE = {"grid": {"learning_rate": RATES}, "seeds": [100, 101], "metric": "val_accuracy"}


def notebook_with(tune: dict | None, **changes):
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["experiments"]["notebook"].update(tune=tune, **changes)
    return parse_params(raw).experiment("notebook")


def scored(experiment, score):
    return [(job, score(job)) for job in selection_jobs("notebook", experiment)]


def test_selection_jobs_cover_every_candidate_variant_and_seed_under_selection():
    experiment = notebook_with(TUNE)
    found = selection_jobs("notebook", experiment)
    names = [job.name for job in found]
    assert len(set(names)) == len(names) == len(RATES) * 2 * 2  # candidates × variants × selection seeds
    assert names[0] == "selection/batchnorm-learning_rate=0.01-seed100"
    assert all(job.selection and job.seed in (100, 101) for job in found)
    assert selection_jobs("notebook", notebook_with(None)) == []


def test_the_highest_mean_wins_a_diverged_seed_loses_and_a_tie_goes_to_the_first_declared():
    experiment = notebook_with(TUNE)
    rate = lambda job: job.tuned[0][1]  # noqa: E731
    # batchnorm: 0.003 is better on average though worse on seed 5; plain: a tie, 0.01 declared first
    table = {("batchnorm", 0.01): (0.95, 0.90), ("batchnorm", 0.003): (0.94, 0.93)}
    table |= {("plain", 0.01): (0.9, 0.9), ("plain", 0.003): (0.9, 0.9)}
    scores = scored(experiment, lambda job: table[(job.variant, rate(job))][job.seed - 100])
    assert choose(experiment, scores) == {
        ("batchnorm", ""): (("learning_rate", 0.003),),
        ("plain", ""): (("learning_rate", 0.01),),
    }
    diverged = [(job, math.nan if rate(job) == 0.003 and job.seed == 101 else 0.5) for job, _ in scores]
    assert choose(experiment, diverged)[("batchnorm", "")] == (("learning_rate", 0.01),)


def test_a_loss_is_minimized_and_each_grid_point_gets_its_own_choice():
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    sweep = raw["experiments"]["small_batches"]
    sweep["tune"] = {"grid": {"learning_rate": [0.1, 0.01]}, "seeds": [100], "metric": "val_loss"}
    experiment = parse_params(raw).experiment("small_batches")
    found = selection_jobs("small_batches", experiment)

    def loss(job):  # the smaller rate is better at the smallest batch size only
        small = job.point[0][1] == min(experiment.grid["batch_size"])
        return 0.1 if (job.tuned[0][1] == 0.01) == small else 0.2

    selected = choose(experiment, [(job, loss(job)) for job in found])
    assert len(selected) == len(experiment.variants) * len(experiment.grid_points())
    for (_, label), chosen in selected.items():
        assert chosen == (
            ("learning_rate", 0.01 if label == f"batch_size={min(experiment.grid['batch_size'])}" else 0.1),
        )
    comparison = jobs("small_batches", experiment, selected)
    assert {job.tuned for job in comparison} == {(("learning_rate", 0.01),), (("learning_rate", 0.1),)}
    assert not any("learning_rate" in job.name for job in comparison)  # one chosen setting per variant and point


def test_a_tuned_experiments_comparison_needs_the_selection():
    with pytest.raises(ValueError, match="tunes: its jobs need the settings its selection chose"):
        jobs("notebook", notebook_with(TUNE))


@pytest.mark.parametrize(
    "tune, changes, message",
    [
        ({**TUNE, "seeds": [0, 100]}, {}, "experiments.notebook: Value error, tune.seeds must be apart from seeds"),
        ({**TUNE, "grid": {"batch_norm": [True]}}, {}, "variant 'batchnorm' sets batch_norm, which tune.grid selects"),
        ({**TUNE, "grid": {}}, {}, "experiments.notebook.tune.grid: Value error, is empty"),
        ({**TUNE, "grid": {"learning_rat": [0.1]}}, {}, "'learning_rat' is not an estimator setting"),
        ({**TUNE, "grid": {"learning_rate": [0.1, 0]}}, {}, "learning_rate: value 0: Input should be greater than 0"),
        (TUNE, {"grid": {"learning_rate": [0.1]}}, "tune.grid and grid both set learning_rate"),
        ({**TUNE, "seed": [7]}, {}, "experiments.notebook.tune.seed: Extra inputs are not permitted"),
    ],
)
def test_a_bad_tune_block_is_refused_by_its_key_path(tune, changes, message):
    with pytest.raises(ParamsError, match="invalid params") as refused:
        notebook_with(tune, **changes)
    assert message in str(refused.value)


# Every test of the tuned project is slow: its set-up runs `dvc repro` of two experiments (about
# a minute), and a fast test on it would have both suites run that set-up.
@pytest.fixture(scope="module")
def tuned_project(tmp_path_factory):
    """A project whose params.yaml declares, beside the notebook (seed 5, no probes), a tuned
    copy of it ("tuned") whose selection seed 5 at rate 0.01 is exactly the notebook's job."""
    tiny = {"epochs": 1, "seeds": [5], "hidden_units": [8], "probes": None, "learning_rate": 0.01}
    root = split_project(tmp_path_factory.mktemp("tune") / "proj", make_mnist(300, 100), tiny)
    params = yaml.safe_load((root / "params.yaml").read_text())
    tuned = json.loads(json.dumps(params["experiments"]["notebook"]))
    del tuned["model"]["learning_rate"]  # what the selection chooses
    tuned.update(
        seeds=[0, 1], reference=None, tune={"grid": {"learning_rate": RATES}, "seeds": [5], "metric": "val_accuracy"}
    )
    params["experiments"]["tuned"] = tuned
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-qam", "a tuned experiment"], root)
    run(["dvc", "repro", "train@notebook"], root, env=store_env())
    done = run(["dvc", "repro"], root, env=store_env())
    return root, done.stdout


@pytest.mark.slow
def test_a_tuned_experiment_selects_on_validation_and_compares_at_the_chosen_settings(tuned_project):
    root, log = tuned_project
    selection = pd.read_csv(root / layout.reports_dir("tuned") / "selection.csv")
    assert list(selection.columns) == ["variant", "learning_rate", "seed", "val_accuracy", "chosen"]
    assert len(selection) == 2 * len(RATES)
    selected = json.loads((root / layout.reports_dir("tuned") / "metrics.json").read_text())["selected"]
    for variant, rows in selection.groupby("variant"):
        best = rows.sort_values("val_accuracy", ascending=False, kind="stable").iloc[0]["learning_rate"]
        assert rows.loc[rows.chosen, "learning_rate"].tolist() == [best] == [selected[variant]["learning_rate"]]
        assert f"selected for {variant}: learning_rate={best:g}" in log
        for seed in (0, 1):  # the comparison trained at the chosen rate
            meta = json.loads((root / "models/tuned" / f"{variant}-seed{seed}" / layout.MODEL_META_FILE).read_text())
            assert meta["params"]["learning_rate"] == best
    table = (root / layout.reports_dir("tuned") / "comparison.md").read_text()
    assert "## Selection: val_accuracy on the validation split, mean over seeds 5" in table
    assert table.count("**chosen**") == 2  # one candidate per variant
    tested = json.loads((root / layout.eval_dir("tuned") / layout.TEST_METRICS_FILE).read_text())
    assert sorted(tested) == [
        "batchnorm-seed0",
        "batchnorm-seed1",
        "plain-seed0",
        "plain-seed1",
    ]  # never the selection's


@pytest.mark.slow
def test_a_selection_job_that_equals_a_job_trained_before_is_restored(tuned_project):
    root, log = tuned_project
    restored = [line for line in log.splitlines() if line.startswith("restored tuned/selection/")]
    assert sorted(line.split()[1] for line in restored) == [
        "tuned/selection/batchnorm-learning_rate=0.01-seed5",
        "tuned/selection/plain-learning_rate=0.01-seed5",
    ]
    assert "trained tuned/selection/batchnorm-learning_rate=0.003-seed5" in log


@pytest.mark.slow
def test_an_experiment_that_does_not_tune_has_an_empty_selection_table(tuned_project):
    root, _ = tuned_project
    table = pd.read_csv(root / layout.reports_dir("notebook") / "selection.csv")
    assert table.empty and "chosen" in table.columns
    assert "selected" not in json.loads((root / layout.reports_dir("notebook") / "metrics.json").read_text())


@pytest.mark.slow
def test_only_the_comparisons_models_are_served(tuned_project):
    """A selection job's model is never tested or served: its run, trained or restored, logs no
    MLflow model; each comparison job's does."""
    root, _ = tuned_project
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-mnist")
    runs = client.search_runs([experiment.experiment_id], "tags.experiment = 'tuned'")
    served = {m.source_run_id for m in client.search_logged_models([experiment.experiment_id])}
    selection = {r.info.run_id: r for r in runs if r.data.tags.get(ROLE_TAG) == SELECTION_ROLE}
    compared = {r.info.run_id for r in runs if r.data.tags.get("seed") in ("0", "1")}
    provenances = {r.data.tags.get(PROVENANCE_TAG) for r in selection.values()}
    assert len(selection) == 2 * len(RATES) and provenances == {"trained", "restored"}
    assert len(compared) == 4 and compared <= served and not served & selection.keys()

"""Yang et al. (2019)'s experiments through the real `dvc repro` on tiny data: the gradients at
initialization (yang2019: init_gradients.csv, its table beside the theory, the MLflow metrics,
the verdict rows) and the trainability map over depth × batch size (yang2019_depth)."""

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from bnlab.analysis.mean_field import bn_relu_gradient_rate
from bnlab.core import layout
from bnlab.ml.probe_rows import INIT_GRADIENT_COLUMNS

from helpers import make_mnist, make_project, run, unpadded

# Two experiments, 28 small jobs: five to nine minutes on 2 shared cores (14 on an AMD EPYC of
# family 25 model 1, beside the other slow tests, with an empty XLA program cache), the module's
# set-up in its first test's time: beyond the suite's 10-minute guard against hangs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SEEDS = [0, 1]
DEPTH = 14  # the fit spans layers 6..9
BATCH_SIZES = [8, 32, 128]  # every verdict row's point: the generalization needs all three
MAP_BATCH_SIZES = [8, 32]
DEPTHS = [2, 4]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(
        tmp_path_factory.mktemp("yang") / "proj",
        make_mnist(1200, 100),
        {"seeds": SEEDS, "hidden_units": [16]},
        experiments=("yang2019", "yang2019_depth"),
    )
    params = yaml.safe_load((root / "params.yaml").read_text())
    gradients, trainability = params["experiments"]["yang2019"], params["experiments"]["yang2019_depth"]
    gradients["model"]["depth"] = DEPTH
    gradients["grid"] = {"batch_size": BATCH_SIZES}
    trainability["model"]["steps"] = 6
    trainability["grid"] = {"depth": DEPTHS, "batch_size": MAP_BATCH_SIZES}
    # One rate for every cell: the map's selection is the machinery test_tuning.py runs
    trainability["model"]["learning_rate"], trainability["tune"] = 0.01, None
    for experiment in (gradients, trainability):
        experiment["probes"] = {**experiment["probes"], "images": 128, "every_steps": 3}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro"], root, timeout=1200)
    return root


def test_the_gradients_at_initialization_follow_the_contract_and_meet_the_theory(project):
    report = project / layout.reports_dir("yang2019")
    table = pd.read_csv(report / "init_gradients.csv")
    assert set(table.columns) == {"variant", "seed", *INIT_GRADIENT_COLUMNS}
    keys = ["variant", "batch_size", "depth", "width", "seed", "layer"]
    assert not table.duplicated(keys).any() and len(table) == 2 * len(BATCH_SIZES) * len(SEEDS) * DEPTH
    assert set(table["layer"]) == set(range(1, DEPTH + 1)) and set(table["width"]) == {16}
    assert (table["grad_sq_norm"] > 0).all()
    comparison = unpadded((report / "comparison.md").read_text())
    assert "Gradients at initialization (Yang et al. 2019)" in comparison
    assert f"| batchnorm | 8 | {DEPTH} |" in comparison and f"{bn_relu_gradient_rate(8):.4f}" in comparison
    assert "init_gradients.png" in {p.name for p in (report / "figures").iterdir()}


def test_each_layers_gradient_goes_to_mlflow_at_step_0(project):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.experiment = 'yang2019' and tags.variant = 'batchnorm' and tags.seed = '1'",
    )
    run_ = next(
        r for r in runs if r.data.tags.get("bnlab.provenance") == "trained" and "batch_size=32" in r.info.run_name
    )
    table = pd.read_csv(project / layout.reports_dir("yang2019") / "init_gradients.csv")
    expected = table.query("variant == 'batchnorm' and seed == 1 and batch_size == 32 and layer == 3")["grad_sq_norm"]
    (metric,) = client.get_metric_history(run_.info.run_id, "init_gradient/layer3/grad_sq_norm")
    assert metric.step == 0 and metric.value == pytest.approx(float(expected.iloc[0]), rel=1e-6)


def test_the_trainability_map_covers_depth_and_batch_size(project):
    report = project / layout.reports_dir("yang2019_depth")
    sweep = pd.read_csv(report / "sweep.csv")
    assert list(sweep.columns[:4]) == ["depth", "batch_size", "variant", "seed"]
    # BN, plain and the BN-free alternatives (SkipInit, AGC) at every cell
    assert set(sweep["variant"]) == {"batchnorm", "skipinit", "plain_agc", "plain"}
    assert len(sweep) == len(DEPTHS) * len(MAP_BATCH_SIZES) * 4 * len(SEEDS)
    assert "trainability_map.png" in {p.name for p in (report / "figures").iterdir()}


def test_the_results_page_has_the_gradient_verdict_rows(project):
    page = unpadded((project / layout.RESULTS_PAGE).read_text())
    rows = [line for line in page.splitlines() if line.startswith("| at initialization a BN network's gradients")]
    assert len(rows) == len(BATCH_SIZES)
    assert all(row.split("|")[-2].strip().startswith("**") for row in rows)
    assert "| BN networks' gradients explode with depth at initialization, as Yang et al. predict |" in page

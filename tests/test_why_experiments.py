"""The experiments that ask why BN helps, through the real `dvc repro` on tiny data: Santurkar
et al.'s landscape and covariate shift (santurkar), batch sizes against LayerNorm, GroupNorm
and batch renormalization (small_batches), scale invariance under weight decay
(effective_lr) and sharpness under full-batch gradient descent (edge_of_stability): their
tables, figures, MLflow metrics and verdict rows."""

import hashlib
import json

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from bnlab.core import layout, numpy_dispatch
from bnlab.ml.probe_rows import ICS_COLUMNS, LANDSCAPE_COLUMNS, SHARPNESS_COLUMNS, WEIGHT_NORM_COLUMNS

from helpers import make_mnist, make_project, project_env, run, unpadded

# Four experiments, 44 jobs, with an empty XLA program cache: two and a half minutes on 2 idle
# cores and five beside the other slow tests on an AMD EPYC of family 25 model 17; 7 and 17.5
# minutes on one of model 1. The module's set-up is in its first test's time, so the guard
# against hangs is the trainability map's (tests/test_yang_experiments.py).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SEEDS = [0, 1]
GEOMETRY_STEPS = [1, 5, 20]
BATCH_SIZES = [2, 128]
SMALL_BATCH_RATES = [0.001, 0.003]  # each variant's Adam rate, chosen per batch size
EDGE_STEPS, EDGE_IMAGES = 20, 200


def why_project(root):
    """The four experiments' project on tiny data, not yet run (benchmarks/tiny_jobs.py times
    its train stages too)."""
    root = make_project(
        root,
        make_mnist(1200, 100),
        {"epochs": 1, "seeds": SEEDS, "hidden_units": [8]},
        experiments=("santurkar", "small_batches", "effective_lr", "edge_of_stability"),
    )
    params = yaml.safe_load((root / "params.yaml").read_text())
    santurkar, small = params["experiments"]["santurkar"], params["experiments"]["small_batches"]
    santurkar["probes"] = {
        "every_steps": 10,
        "images": 40,
        "unit": 0,
        "weight_norms": True,
        "geometry": {**santurkar["probes"]["geometry"], "steps": GEOMETRY_STEPS},
        "sharpness": {"images": 40, "steps": "geometry"},
    }
    edge = params["experiments"]["edge_of_stability"]
    edge["model"] = {**edge["model"], "epochs": None, "steps": EDGE_STEPS}
    edge["train_images"] = EDGE_IMAGES
    edge["probes"] = {
        "every_steps": 10,
        "images": EDGE_IMAGES,
        "unit": 0,
        "sharpness": {"images": EDGE_IMAGES, "every_steps": 5},
    }
    params["experiments"]["effective_lr"]["probes"] = {"every_steps": 10, "images": 40, "unit": 0, "weight_norms": True}
    small["probes"] = {"every_steps": 8, "images": 128, "unit": 0}  # batch 128: 8 steps an epoch
    small["grid"] = {"batch_size": BATCH_SIZES}
    small["tune"] = {**small["tune"], "grid": {"learning_rate": SMALL_BATCH_RATES}, "seeds": [100]}
    small["variants"]["groupnorm"]["norm_groups"] = 2  # 8 units: groups of 4
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = why_project(tmp_path_factory.mktemp("why") / "proj")
    run(["dvc", "repro"], root, timeout=1200)
    return root


def test_the_landscape_and_covariate_shift_are_reported_per_variant_seed_and_step(project):
    report = project / layout.reports_dir("santurkar")
    landscape, ics = pd.read_csv(report / "landscape.csv"), pd.read_csv(report / "ics.csv")
    assert list(landscape.columns) == ["variant", "seed", *LANDSCAPE_COLUMNS]
    assert list(ics.columns) == ["variant", "seed", *ICS_COLUMNS]
    keys = ["variant", "seed", "step", "direction", "eta"]
    assert not landscape.duplicated(keys).any()
    directions = yaml.safe_load((project / "params.yaml").read_text())["experiments"]["santurkar"]["probes"]
    directions = directions["geometry"]["directions"]
    assert len(landscape) == 3 * len(SEEDS) * len(GEOMETRY_STEPS) * len(directions) * 7  # variants, etas
    # At a fixed length every variant steps the same distances, at every probe step.
    fixed = landscape[landscape["direction"] == "gradient_fixed_length"].groupby("eta")["distance"]
    assert len(fixed) == 7 and ((fixed.max() / fixed.min()) < 1 + 1e-5).all()
    assert set(landscape["eta"].round(6)) == {0.5, 0.707107, 1.0, 1.414214, 2.0, 2.828427, 4.0}
    assert set(ics["layer"]) == {2} and len(ics) == 3 * len(SEEDS) * len(GEOMETRY_STEPS)
    assert ics["ics_cosine"].between(-1, 1).all() and (landscape["distance"] > 0).all()
    figures = {p.name for p in (report / "figures").iterdir()}
    assert {f"landscape_{direction}.png" for direction in directions} | {"covariate_shift.png"} <= figures
    # β at equal weight scale: the kernels' norms are recorded at every probe step.
    norms = pd.read_csv(report / "weight_norms.csv")
    assert set(GEOMETRY_STEPS) <= set(norms["step"])
    assert "β-smoothness × ‖w‖² of the kernels BN follows" in (report / "comparison.md").read_text()
    assert "internal covariate shift" in (report / "comparison.md").read_text()


def test_the_kernels_norms_and_angular_updates_are_reported_beside_the_theory(project):
    report = project / layout.reports_dir("effective_lr")
    norms = pd.read_csv(report / "weight_norms.csv")
    assert list(norms.columns) == ["variant", "seed", *WEIGHT_NORM_COLUMNS]
    steps_per_epoch = -(-1000 // 32)  # make_mnist(1200, ...) less the 200 validation images; batch 32
    assert sorted(norms["step"].unique()) == [1, *range(10, steps_per_epoch + 1, 10)]
    assert set(norms["layer"]) == {1} and set(norms["variant"]) == {"decay", "strong_decay", "no_decay"}
    assert (norms["kernel_norm"] > 0).all() and (norms["angular_update"] > 0).all()
    comparison = unpadded((report / "comparison.md").read_text())
    assert "√(2ηλ/(1+μ))" in comparison and "| decay | 0.1 | 0.0005 | 0.9 | 0.007255 |" in comparison
    assert "weight_norms.png" in {p.name for p in (report / "figures").iterdir()}
    santurkar = pd.read_csv(project / layout.reports_dir("santurkar") / "weight_norms.csv")
    assert set(santurkar["variant"]) == {"batchnorm", "noisy_bn", "plain"}
    assert "| batchnorm | 0.01 | 0 | 0 | — |" in unpadded(
        (project / layout.reports_dir("santurkar") / "comparison.md").read_text()
    )  # Adam: no prediction


def test_sharpness_is_reported_beside_the_stability_threshold(project):
    report = project / layout.reports_dir("edge_of_stability")
    sharpness = pd.read_csv(report / "sharpness.csv")
    assert list(sharpness.columns) == ["learning_rate", "variant", "seed", *SHARPNESS_COLUMNS]
    assert sorted(sharpness["step"].unique()) == [1, 5, 10, 15, 20]
    assert sorted(sharpness["learning_rate"].unique()) == [0.2, 0.4, 0.8]
    assert len(sharpness) == 3 * 2 * len(SEEDS) * 5 and (sharpness["lambda_max"] > 0).all()
    settings = pd.read_csv(report / "settings.csv")
    assert set(settings["batch_size"]) == {EDGE_IMAGES}  # full: the whole training subset
    table = unpadded((report / "comparison.md").read_text())
    assert "2(1+μ)/η" in table and "| plain | 0.4 | 5 |" in table and "| batchnorm | 0.8 | 2.5 |" in table
    assert "sharpness.png" in {p.name for p in (report / "figures").iterdir()}
    santurkar = pd.read_csv(project / layout.reports_dir("santurkar") / "sharpness.csv")
    assert sorted(santurkar["step"].unique()) == GEOMETRY_STEPS
    assert set(santurkar["variant"]) == {"batchnorm", "noisy_bn", "plain"}
    santurkar_table = unpadded((project / layout.reports_dir("santurkar") / "comparison.md").read_text())
    assert "| batchnorm | 0.01 | — |" in santurkar_table  # Adam: no threshold


def test_each_probe_goes_to_mlflow_with_its_step(project):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.experiment = 'santurkar' and tags.variant = 'noisy_bn' and tags.seed = '1'",
    )
    (run_,) = [r for r in runs if r.data.tags.get("bnlab.provenance") == "trained"]
    names = ("landscape/gradient/beta_smoothness", "landscape/gradient_fixed_length/loss_variation")
    for name in (*names, "landscape/random/loss_variation", "ics/layer2/cosine"):
        history = client.get_metric_history(run_.info.run_id, name)
        assert sorted(m.step for m in history) == GEOMETRY_STEPS, name
    assert run_.data.tags["runtime.numpy_dispatch"] == "X86_V3"  # numpy's AVX2 kernels, pinned
    norms = client.get_metric_history(run_.info.run_id, "weights/layer1/angular_update")
    assert [m.step for m in norms] == sorted({1, 10, 20, 30, *GEOMETRY_STEPS})  # every 10th and the probes' steps
    sharpness = client.get_metric_history(run_.info.run_id, "sharpness/lambda_max")
    assert sorted(m.step for m in sharpness) == GEOMETRY_STEPS


def test_the_report_keeps_its_bytes_whatever_numpys_kernels_the_user_asked_for(project):
    # Its landscape tables are log10 geometric means: numpy's AVX-512 log10 gives other last bits.
    report = project / layout.reports_dir("santurkar")
    found = []
    for value in ["", " ".join(numpy_dispatch.AVX512_TARGETS)]:
        run(
            ["python", "-m", "bnlab.pipeline.stages.report", "santurkar"],
            project,
            {**project_env(), numpy_dispatch.VARIABLE: value},
        )
        found.append(
            {
                str(p.relative_to(report)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(report.rglob("*"))
                if p.is_file()
            }
        )
    assert "metrics.json" in found[0] and "landscape.csv" in found[0]
    assert found[0] == found[1]
    assert "up to date" in run(["dvc", "status", "report@santurkar"], project).stdout  # the bytes DVC recorded


def test_the_batch_size_grid_reports_each_point_and_bns_batch_statistics(project):
    report = project / layout.reports_dir("small_batches")
    sweep = pd.read_csv(report / "sweep.csv")
    assert list(sweep.columns[:3]) == ["batch_size", "variant", "seed"]
    assert set(sweep["variant"]) == {"batchnorm", "batch_renorm", "layernorm", "groupnorm", "plain"}
    assert sorted(sweep["batch_size"].unique()) == BATCH_SIZES
    steps = pd.read_csv(report / "steps.csv")
    assert list(steps.columns[:3]) == ["batch_size", "variant", "seed"]
    measured = steps.dropna(subset=["train_mode_accuracy"])
    assert set(measured["variant"]) == {"batchnorm", "batch_renorm"}  # LayerNorm, GroupNorm: no batch statistics
    table = unpadded((report / "comparison.md").read_text())
    assert "| 2 | batchnorm |" in table and "| 128 | batch_renorm |" in table
    figures = {p.name for p in (report / "figures").iterdir()}
    assert {"test_accuracy_vs_batch_size.png", "train_vs_inference_mode_vs_batch_size.png"} <= figures
    # each variant's rate chosen at each batch size, on validation, from the same selection jobs
    selection = pd.read_csv(report / "selection.csv")
    assert len(selection) == len(BATCH_SIZES) * 5 * len(SMALL_BATCH_RATES)  # one selection seed
    assert set(selection["batch_size"]) == set(BATCH_SIZES) and set(selection["learning_rate"]) == set(
        SMALL_BATCH_RATES
    )
    selected = json.loads((report / "metrics.json").read_text())["selected"]
    assert set(selected) == set(sweep["variant"])
    for by_point in selected.values():
        assert set(by_point) == {f"batch_size={size}" for size in BATCH_SIZES}
        assert all(chosen["learning_rate"] in SMALL_BATCH_RATES for chosen in by_point.values())


def test_the_results_page_has_their_verdict_rows(project):
    page = unpadded((project / layout.RESULTS_PAGE).read_text())
    for claim in (
        "BN reduces internal covariate shift",
        "BN makes the loss landscape smoother",
        "BN needs large batches: from batch 128 to 2",
        "LayerNorm does not",
        "GroupNorm does not",
        "BN lowers the sharpness λ_max of the training loss at a given rate",
        "BN lowers the sharpness λ_max of the training loss along training",
    ):
        row = next(line for line in page.splitlines() if line.startswith(f"| {claim}"))
        assert row.split("|")[-2].strip().startswith("**"), row  # a verdict word, derived
    assert "| BN needs large batches; LayerNorm and GroupNorm do not |" in page

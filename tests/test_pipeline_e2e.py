"""The whole pipeline with the real `dvc repro` on small generated data, then the real MLflow
store read back with MlflowClient. The project declares a third variant (BN after the
activation) in params only: every output must show it with no code change."""

import json
import re
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from bnlab.data import splits

from helpers import PROJECT, make_mnist, make_project, run, store_env, unpadded

SEEDS = [0, 1]
EPOCHS = 2
PROBE_EVERY = 5
VARIANTS = {
    "batchnorm": {"batch_norm": True},
    "bn_after": {"batch_norm": True, "bn_position": "after"},
    "plain": {"batch_norm": False},
}
CHALLENGERS = ("batchnorm", "bn_after")  # compared with the baseline, plain
REPORTS = "reports/notebook"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(
        tmp_path_factory.mktemp("e2e") / "proj",
        make_mnist(600, 200),
        {
            "epochs": EPOCHS,
            "seeds": SEEDS,
            "hidden_units": [16],
            "variants": VARIANTS,
            "probes": {"every_steps": PROBE_EVERY, "images": 50, "unit": 0},
        },
    )
    done = run(["dvc", "repro"], root, env=store_env())
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-mnist")
    # The runs of this first execution, read now: tests that run later (in any order) add more.
    return root, done, (client, experiment, client.search_runs([experiment.experiment_id]))


@pytest.fixture(scope="module")
def store(project):
    return project[2]


def test_outputs_follow_the_contracts(project):
    root, done, _ = project
    assert "bn_after vs plain" in done.stdout
    metrics = json.loads((root / REPORTS / "metrics.json").read_text())
    assert set(metrics) == {*VARIANTS, "comparison"}
    per_seed = pd.read_csv(root / REPORTS / "per_seed.csv")
    assert list(per_seed.columns) == ["variant", "seed", "test_accuracy", "test_loss"]
    assert sorted(zip(per_seed["variant"], per_seed["seed"])) == sorted((v, s) for v in VARIANTS for s in SEEDS)
    for variant in VARIANTS:
        assert set(metrics[variant]) == {
            "test_accuracy_mean",
            "test_accuracy_std",
            "test_loss_mean",
            "seeds",
            "diverged",
        }
        accs = per_seed.loc[per_seed["variant"] == variant, "test_accuracy"]
        assert metrics[variant]["test_accuracy_mean"] == pytest.approx(accs.mean(), abs=1e-6)
    assert set(metrics["comparison"]) == set(CHALLENGERS)
    for variant in CHALLENGERS:
        comp = metrics["comparison"][variant]
        assert (
            set(comp)
            == {
                "test_accuracy_gain",
                "gain_ci_low",
                "gain_ci_high",
                "effect_size_dz",
                "p_value",
                "p_exact",
                "p_holm",
                "detectable_gain",
                "seeds",
            }
            and comp["seeds"] == 2
        )
        gain = metrics[variant]["test_accuracy_mean"] - metrics["plain"]["test_accuracy_mean"]
        assert comp["test_accuracy_gain"] == pytest.approx(gain, abs=1e-5)
        assert 0 <= comp["p_value"] <= comp["p_holm"] <= 1 and comp["p_exact"] >= 0.5  # 2 pairs: 2 / 2^2 at least
    figures = {p.name for p in (root / REPORTS / "figures").iterdir()}
    assert {
        "train_loss.png",
        "train_accuracy.png",
        "val_loss.png",
        "val_accuracy.png",
        "test_accuracy_by_step.png",
        "percentiles_layer1_unit0.png",
        "input_median_by_layer.png",
        "train_vs_inference_mode.png",
    } <= figures
    table = unpadded((root / REPORTS / "comparison.md").read_text())
    assert all(f"| {variant} |" in table for variant in VARIANTS)
    assert "97.13%" in table and "94.49%" in table  # the notebook's reference runs
    curve = pd.read_csv(root / REPORTS / "curves/val_accuracy.csv")
    assert list(curve.columns) == ["variant", "seed", "epoch", "val_accuracy"]
    assert len(curve) == len(VARIANTS) * len(SEEDS) * EPOCHS


def test_every_bn_model_is_tested_with_its_moving_and_its_recomputed_statistics(project):
    root, _, _ = project
    table = pd.read_csv(root / REPORTS / "bn_statistics.csv")
    assert list(table.columns) == ["variant", "seed", "test_accuracy_moving", "test_accuracy_recomputed"]
    assert sorted(zip(table["variant"], table["seed"])) == sorted((v, s) for v in CHALLENGERS for s in SEEDS)
    tested = json.loads((root / "eval/notebook/test_metrics.json").read_text())
    for row in table.itertuples():
        # The models predict with the moving averages (the default): their test accuracy is that one.
        assert tested[f"{row.variant}-seed{row.seed}"]["test_accuracy"] == pytest.approx(row.test_accuracy_moving)
    assert (
        "## BN's statistics: moving averages or recomputed after training"
        in (root / REPORTS / "comparison.md").read_text()
    )
    assert all(
        (root / "models/notebook" / f"{v}-seed{s}" / "bn_statistics.npz").exists() for v in CHALLENGERS for s in SEEDS
    )
    assert not any((root / "models/notebook" / f"plain-seed{s}" / "bn_statistics.npz").exists() for s in SEEDS)


def test_probes_are_written_for_every_job(project):
    root, _, _ = project
    probes = pd.read_csv(root / REPORTS / "probes.csv", dtype={"unit": str})
    steps = pd.read_csv(root / REPORTS / "steps.csv")
    assert list(probes.columns) == ["variant", "seed", "step", "layer", "unit", "p15", "p50", "p85", "dead_fraction"]
    assert list(steps.columns) == ["variant", "seed", "step", "val_accuracy", "test_accuracy", "train_mode_accuracy"]
    n_steps = EPOCHS * -(-500 // 32)  # 500 training images, batch 32
    expected_steps = list(range(PROBE_EVERY, n_steps + 1, PROBE_EVERY))
    for variant in VARIANTS:
        for seed in SEEDS:
            rows = steps[(steps["variant"] == variant) & (steps["seed"] == seed)]
            assert rows["step"].tolist() == expected_steps
            assert rows["train_mode_accuracy"].notna().all() == (variant != "plain")
            job = probes[(probes["variant"] == variant) & (probes["seed"] == seed)]
            assert set(job["unit"]) == {"0", "all"} and set(job["layer"]) == {1}
            assert (job["p15"] <= job["p50"]).all() and (job["p50"] <= job["p85"]).all()


def test_the_results_page_is_generated_from_the_reports(project):
    root, done, _ = project
    page = unpadded((root / "docs/results.md").read_text())
    comp = json.loads((root / REPORTS / "metrics.json").read_text())["comparison"]["bn_after"]
    row = next(line for line in page.splitlines() if line.startswith("| `notebook` | bn_after vs plain |"))
    assert f"| {100 * comp['test_accuracy_gain']:+.2f} [{100 * comp['gain_ci_low']:+.2f}, " in row
    assert "| with BN the test accuracy is higher" in page  # the notebook's claims are measured
    assert "Not tested here: " in page and "no experiment ioffe2015 was reported" in page
    assert (root / "docs/figures/notebook_val_accuracy.png").read_bytes() == (
        root / REPORTS / "figures/val_accuracy.png"
    ).read_bytes()
    assert "wrote docs/results.md" in done.stdout


def test_second_repro_does_nothing_and_params_rerun_only_what_follows(project):
    root, _, _ = project
    again = run(["dvc", "repro"], root, env=store_env())
    assert "Running stage" not in again.stdout
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["experiments"]["notebook"]["model"]["learning_rate"] = 0.02
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = run(["dvc", "repro", "--dry"], root, env=store_env()).stdout
    finally:
        params["experiments"]["notebook"]["model"]["learning_rate"] = 0.01
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    assert "train@notebook" in ran and not ran & {"download", "split"}


def test_plots_are_declared_for_dvc_plots_show(project):
    root, _, _ = project
    done = run(["dvc", "plots", "show", "--json"], root, env=store_env())
    shown = json.loads(done.stdout)
    assert "errors" not in shown
    plots = shown["data"]
    assert {f"{REPORTS}/curves/val_accuracy.csv", f"{REPORTS}/steps.csv", f"{REPORTS}/figures/val_accuracy.png"} <= set(
        plots
    )
    curve = plots[f"{REPORTS}/curves/val_accuracy.csv"][0]["content"]
    assert curve["encoding"]["color"]["field"] == "variant"  # the project's template
    assert {row["variant"] for row in curve["data"]["values"]} == set(VARIANTS)


def test_dvc_plots_show_writes_a_page_that_draws_every_plot_offline(project, tmp_path):
    root, _, _ = project
    run(["dvc", "plots", "show", "-o", str(tmp_path / "page")], root, env=store_env())
    page = (tmp_path / "page" / "index.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched: no CDN, no file
    assert "/* vega-embed/build/vega-embed.min.js */" in page
    specs = re.findall(r"var spec = (\{.*?\});\s*vegaEmbed", page, re.S)
    shown = json.loads(run(["dvc", "plots", "show", "--json"], root, env=store_env()).stdout)["data"]
    interactive = [path for path, plots in shown.items() if plots[0]["type"] == "vega"]
    assert len(specs) == len(interactive) >= 5  # the per-epoch curves and test accuracy by step
    files = []
    for index, spec in enumerate(specs):
        files.append(tmp_path / f"spec{index}.json")
        files[-1].write_text(spec)
    node = shutil.which("node")
    assert node, "Node.js is a set-up prerequisite (README)"
    drawn = run([node, str(PROJECT / "tests" / "render_vega.mjs"), *map(str, files)], PROJECT)
    assert len(drawn.stdout.splitlines()) == len(specs)
    assert all(int(line.split()[-1]) > 1000 for line in drawn.stdout.splitlines())  # not empty


def model_runs(runs: list) -> list:
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("bnlab.role") != "evaluation"]


def evaluation_of(runs: list, model_run):
    [found] = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == model_run.info.run_id]
    return found


def test_one_parent_run_holds_every_model_run(store):
    client, _, runs = store
    parents = [r for r in runs if r.data.tags.get("bnlab.role") == "pipeline"]
    children = model_runs(runs)
    assert len(parents) == 1 and len(children) == len(VARIANTS) * len(SEEDS)
    assert parents[0].data.tags["experiment"] == "notebook"
    assert parents[0].data.tags["bnlab.provenance"] == "trained" and "bnlab.source_run" not in parents[0].data.tags
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.info.run_name for r in children) == sorted(f"notebook/{v}-seed{s}" for v in VARIANTS for s in SEEDS)
    assert {r.data.tags["experiment"] for r in children} == {"notebook"}
    assert {r.data.tags["bnlab.provenance"] for r in children} == {"trained"}
    assert {r.info.status for r in runs} == {"FINISHED"}  # nothing left RUNNING
    old_tags = {"restored", "bnlab.restored_from", "bnlab.copied_from", "results_from", "test_metrics_from"}
    assert not old_tags & {tag for r in runs for tag in r.data.tags}


def test_evaluation_runs_beside_each_model_run_leave_it_as_training_ended_it(store):
    """Each model's evaluation is a run of its own under the model's run: the model's run is
    not reopened, so it ended when its training did, before its evaluation began."""
    _, _, runs = store
    for model_run in model_runs(runs):
        evaluation = evaluation_of(runs, model_run)
        assert evaluation.info.run_name == f"{model_run.info.run_name}/evaluation"
        assert evaluation.data.tags["bnlab.role"] == "evaluation"
        assert evaluation.data.tags["model_digest"] == model_run.data.tags["model_digest"]
        # grouping the runs table by variant or seed counts each model once, by its own run
        assert not {"variant", "seed"} & set(evaluation.data.tags)
        assert model_run.info.end_time <= evaluation.info.start_time <= evaluation.info.end_time
        assert model_run.data.metrics["test_accuracy"] == evaluation.data.metrics["accuracy_score"]


def test_the_default_store_keeps_artifacts_beside_mlflow_db(project, store):
    root, _, _ = project
    _, experiment, _ = store
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    assert any((root / "mlartifacts").rglob("MLmodel")) and not (root / "mlruns").exists()


def test_model_runs_have_params_tags_and_metrics(store):
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/plain-seed1")
    tags, params, metrics = run_.data.tags, run_.data.params, run_.data.metrics
    assert tags["variant"] == "plain" and tags["seed"] == "1"
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] == "false"  # a committed tree, the repro aside
    assert len(tags["data_fingerprint"]) == 64 and tags["dvc_stage"] == "train@notebook"
    assert params["model.batch_norm"] == "False" and params["model.learning_rate"] == "0.01"
    assert params["model.epochs"] == str(EPOCHS) and params["model.random_state"] == "1"
    assert params["data.val_size"] == "100" and params["data.n_train"] == "500"
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        history = client.get_metric_history(run_.info.run_id, name)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1))
    assert 0 < metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    probe = client.get_metric_history(run_.info.run_id, "probe/layer1/all/dead_fraction")
    assert [m.step for m in probe] == list(range(PROBE_EVERY, EPOCHS * 16 + 1, PROBE_EVERY))
    assert "probe/test_accuracy" in metrics and "probe/train_mode_accuracy" not in metrics  # no BN


def test_a_variant_declared_in_params_only_is_trained_as_declared(project, store):
    root, _, _ = project
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/bn_after-seed0")
    assert run_.data.params["model.bn_position"] == "after" and run_.data.params["model.batch_norm"] == "True"
    estimator = json.loads((root / "models/notebook/bn_after-seed0/estimator.json").read_text())
    assert estimator["params"]["bn_position"] == "after"


def test_model_runs_record_their_datasets(store):
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/batchnorm-seed0")
    inputs = {d.dataset.name: d for d in run_.inputs.dataset_inputs}
    assert set(inputs) == {"mnist-train", "mnist-validation", "mnist-test"}
    assert all(d.dataset.digest for d in inputs.values())
    assert {d.tags[0].value for d in inputs.values()} == {"train", "validation", "test"}
    predictions = {d.dataset.name for d in evaluation_of(runs, run_).inputs.dataset_inputs}
    assert predictions == {"mnist-test-predictions"}  # evaluate's, in its own run


def test_model_runs_hold_mlflows_classifier_evaluation(project, store, tmp_path):
    root, _, _ = project
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/plain-seed0")
    metrics = run_.data.metrics
    assert metrics["accuracy_score"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
    assert metrics["example_count"] == 200 and 0 < metrics["f1_score"] <= 1
    evaluation = evaluation_of(runs, run_)
    assert {a.path for a in client.list_artifacts(evaluation.info.run_id)} >= {
        "confusion_matrix.png",
        "per_class_metrics.csv",
    }
    per_class = pd.read_csv(client.download_artifacts(evaluation.info.run_id, "per_class_metrics.csv", str(tmp_path)))
    assert sorted(per_class["positive_class"]) == list(range(10))
    assert {"precision_score", "recall_score", "f1_score"} <= set(per_class.columns)
    predicted = pd.read_csv(root / "eval/notebook/predictions.csv").query("variant == 'plain' and seed == 0")
    recall_of_0 = (predicted.query("actual == 0")["predicted"] == 0).mean()
    assert per_class.set_index("positive_class").loc[0, "recall_score"] == pytest.approx(recall_of_0)
    [model] = client.search_logged_models(
        [run_.info.experiment_id], filter_string=f"source_run_id = '{run_.info.run_id}'"
    )
    assert "accuracy_score" in {m.key for m in model.metrics}  # on the UI's Models tab too


def test_model_runs_record_the_step_time_and_the_systems_load(store):
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/batchnorm-seed1")
    step_time = client.get_metric_history(run_.info.run_id, "seconds_per_step")
    assert [m.step for m in step_time] == list(range(1, EPOCHS + 1)) and all(m.value > 0 for m in step_time)
    assert "system/cpu_utilization_percentage" in run_.data.metrics


def test_each_variant_is_registered_with_its_champion_and_seed_aliases(project, store):
    root, _, _ = project
    client, _, runs = store
    for variant in VARIANTS:
        name = f"bnlab-notebook-{variant}"
        versions = {v.version: v for v in client.search_model_versions(f"name = '{name}'")}
        assert len(versions) == len(SEEDS)
        aliases = client.get_registered_model(name).aliases
        assert set(aliases) == {"champion", *(f"seed-{s}" for s in SEEDS)}
        val = {
            s: json.loads((root / f"models/notebook/{variant}-seed{s}/estimator.json").read_text())["history"][
                "val_accuracy"
            ][-1]
            for s in SEEDS
        }
        best = max(SEEDS, key=lambda s: (val[s], -s))
        assert aliases["champion"] == aliases[f"seed-{best}"]
        for seed in SEEDS:
            version = versions[aliases[f"seed-{seed}"]]
            assert version.tags["seed"] == str(seed)
            assert version.run_id == next(
                r.info.run_id for r in runs if r.info.run_name == f"notebook/{variant}-seed{seed}"
            )
    # Reporting the same models again adds no version (only the report: --force alone would
    # re-run every stage above it too).
    run(["dvc", "repro", "--force", "--single-item", "report@notebook"], root, env=store_env())
    assert len(client.search_model_versions("name = 'bnlab-notebook-batchnorm'")) == len(SEEDS)


def test_parent_run_carries_the_comparison(project, store):
    root, _, _ = project
    client, _, runs = store
    parent = next(r for r in runs if r.data.tags.get("bnlab.role") == "pipeline")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert {"comparison.md", "metrics.json", "figures"} <= artifacts
    assert "figures/val_accuracy.png" in figures and "figures/input_median_by_layer.png" in figures
    summary = json.loads((root / REPORTS / "metrics.json").read_text())
    for variant in VARIANTS:  # the seed-level summary, the same numbers as metrics.json
        for key in ("test_accuracy_mean", "test_accuracy_std", "test_loss_mean"):
            assert parent.data.metrics[f"{variant}_{key}"] == pytest.approx(summary[variant][key], abs=0)
    for variant in CHALLENGERS:
        for key in ("test_accuracy_gain", "gain_ci_low", "gain_ci_high", "p_value", "p_holm"):
            assert parent.data.metrics[f"{variant}_{key}"] == pytest.approx(summary["comparison"][variant][key], abs=0)


def test_logged_model_loads_and_predicts_digits(project, store):
    root, _, _ = project
    client, _, runs = store
    run_ = next(r for r in runs if r.info.run_name == "notebook/batchnorm-seed1")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"runs:/{run_.info.run_id}/model")
    x_test, y_test = splits.load_split(root / "data/prepared/test.npz")
    digits = np.asarray(model.predict(x_test.reshape(len(x_test), -1).astype(np.float32))).ravel()
    assert digits.shape == (len(y_test),) and set(np.unique(digits)) <= set(range(10))
    assert np.mean(digits == y_test) == pytest.approx(run_.data.metrics["test_accuracy"], abs=1e-9)


def test_retraining_to_identical_models_carries_the_results_over(project):
    """Train re-runs (forced) and writes the same bytes, so DVC skips evaluate and report:
    the new runs still get their test metrics and comparison."""
    root, _, _ = project
    done = run(["dvc", "repro", "--force", "train@notebook"], root, env=store_env())
    assert "copied" in done.stdout
    assert "Running stage 'evaluate@notebook'" not in run(["dvc", "repro"], root, env=store_env()).stdout
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-mnist")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`bnlab.role` = 'pipeline'", order_by=["attributes.start_time DESC"]
    )
    newest = parents[0]
    assert newest.data.tags["bnlab.source_run"] == parents[1].info.run_id
    assert newest.data.tags["bnlab.provenance"] == "trained"
    assert "batchnorm_p_value" in newest.data.metrics
    assert "figures/val_loss.png" in {a.path for a in client.list_artifacts(newest.info.run_id, "figures")}
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{newest.info.run_id}'")
    assert len(children) == len(VARIANTS) * len(SEEDS) and all("test_accuracy" in c.data.metrics for c in children)
    earlier = {
        r.info.run_name: r.info.run_id
        for r in client.search_runs(
            [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[1].info.run_id}'"
        )
    }
    assert all(c.data.tags["bnlab.source_run"] == earlier[c.info.run_name] for c in children)


def test_models_restored_into_a_store_that_never_saw_them_get_runs(project, tmp_path, bnlab_in, monkeypatch):
    """As after `dvc pull` on another machine: evaluate and report find no runs for these
    models, so they make them from what was saved with the models, tagged restored. The stages
    run in this process (the pipeline's own processes ran them in the module's set-up)."""
    root, _, _ = project
    store = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(store)
    # Artifacts in tmp_path too: a new SQLite store would put them in ./mlruns of the shared
    # project, where a later test (in any order) would find them.
    client.create_experiment("batchnorm-mnist", artifact_location=(tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("BNLAB_WORKERS", "1")
    for stage in ("evaluate", "report"):
        status, stderr = bnlab_in(root, f"{stage} notebook")
        assert status == 0, stderr
    experiment = client.get_experiment_by_name("batchnorm-mnist")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("bnlab.role") == "pipeline"]
    children = model_runs(runs)
    assert len(parents) == 1 and parents[0].data.tags["bnlab.provenance"] == "restored"
    assert "batchnorm_p_value" in parents[0].data.metrics
    assert len(children) == len(VARIANTS) * len(SEEDS)
    assert all(
        c.data.tags["bnlab.provenance"] == "restored"
        and "bnlab.source_run" not in c.data.tags
        and "test_accuracy" in c.data.metrics
        for c in children
    )
    history = client.get_metric_history(children[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == list(range(1, EPOCHS + 1))
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert run(["dvc", "status", "--json"], root, env=store_env()).stdout.strip() == "{}"  # same bytes

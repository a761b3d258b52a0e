"""The pipeline against a real `mlflow server` (PostgreSQL or SQLite backend, proxied
artifacts), read back over the server's REST API."""

import os
import signal
import time

import mlflow
import numpy as np
import pytest

from bnlab.data import splits

from helpers import make_mnist, project_env, run, split_project
from servers import mlflow_server, postgres, rest

SMALL = {"epochs": 2, "seeds": [0], "hidden_units": [16]}


def pipeline_against(url: str, root):
    env = project_env()
    env["MLFLOW_TRACKING_URI"] = url
    return run(["dvc", "repro"], root, env=env)


def check_runs_over_rest(url: str, root, artifacts) -> None:
    experiment = rest(url, "experiments/get-by-name", params="?experiment_name=batchnorm-mnist")["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # proxied by the server
    runs = rest(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    by_name = {r["info"]["run_name"]: r for r in runs}
    assert {"notebook/batchnorm-seed0", "notebook/plain-seed0"} <= set(by_name)
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}
    child = by_name["notebook/batchnorm-seed0"]
    metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
    assert 0 < metrics["test_accuracy"] <= 1
    history = rest(url, "metrics/get-history", params=f"?run_id={child['info']['run_id']}&metric_key=val_loss")
    assert [m["step"] for m in history["metrics"]] == [1, 2]
    # artifacts live on the server's side, not in the project
    assert any(artifacts.rglob("MLmodel")) and not (root / "mlartifacts").exists()
    # the model, fetched through the server, predicts digits
    mlflow.set_tracking_uri(url)
    model = mlflow.pyfunc.load_model(f"runs:/{child['info']['run_id']}/model")
    x_test, y_test = splits.load_split(root / "data/prepared/test.npz")
    digits = np.asarray(model.predict(x_test.reshape(len(x_test), -1).astype(np.float32))).ravel()
    assert np.mean(digits == y_test) == pytest.approx(metrics["test_accuracy"])
    # the registry works the same on the server: the champion, served by its registry URI
    champion = rest(url, "registered-models/alias", params="?name=bnlab-notebook-batchnorm&alias=champion")
    assert champion["model_version"]["run_id"] == child["info"]["run_id"]  # one seed: it is the champion
    registered = mlflow.pyfunc.load_model("models:/bnlab-notebook-batchnorm@champion")
    assert np.array_equal(
        np.asarray(registered.predict(x_test.reshape(len(x_test), -1).astype(np.float32))).ravel(), digits
    )
    # the experiment says it is model training, and the summary's address opens its runs table
    assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
    env = {**project_env(), "MLFLOW_TRACKING_URI": url}
    summary = run(["bnlab", "summary", "--url"], root, env=env).stdout
    assert f"{url}/#/experiments/{experiment['experiment_id']}/runs?workflowType=machine_learning" in summary


@pytest.mark.slow
def test_pipeline_on_a_tracking_server_with_postgresql(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), SMALL)
    artifacts = tmp_path / "server-artifacts"
    with postgres() as database, mlflow_server(database, artifacts) as (url, _):
        pipeline_against(url, root)
        check_runs_over_rest(url, root, artifacts)


@pytest.mark.slow
def test_server_killed_mid_training_fails_the_stage_cleanly(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), {**SMALL, "epochs": 1000})
    env = project_env()
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as (url, server):
        env["MLFLOW_TRACKING_URI"] = url
        import subprocess

        train = subprocess.Popen(
            ["bnlab", "train", "notebook"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = rest(url, "runs/search", {"experiment_ids": ["1"], "filter": "metrics.train_loss > 0"})
            if found.get("runs"):
                break
            time.sleep(0.3)
        os.killpg(server.pid, signal.SIGKILL)
        started = time.monotonic()
        _, stderr = train.communicate(timeout=120)
    assert time.monotonic() - started < 60
    assert train.returncode == 1
    assert url in stderr and "Traceback" not in stderr
    assert not (root / "models/notebook").exists() and not list(root.glob("models/.notebook.tmp-*"))


SECRET = "s3cret-Pa55word"


def assert_no_secret(root, outputs: str, runs: list[dict]) -> None:
    """The password is nowhere the project writes: output, tags, params, reports, dvc.lock."""
    assert SECRET not in outputs
    for run_ in runs:
        data = run_["data"]
        assert not [t for t in data.get("tags", []) if SECRET in t["value"]]
        assert not [p for p in data.get("params", []) if SECRET in p["value"]]
    for path in [root / "dvc.lock", *(root / "reports").rglob("*.*")]:
        if path.suffix != ".png":
            assert SECRET not in path.read_text(), path


@pytest.mark.slow
def test_pipeline_on_a_tracking_server_with_sqlite_and_credentials_in_its_uri(tmp_path):
    # One pipeline for both: the server (no auth of its own) ignores the credentials.
    root = split_project(tmp_path / "proj", make_mnist(300, 100), SMALL)
    artifacts = tmp_path / "server-artifacts"
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", artifacts) as (url, _):
        done = pipeline_against(url.replace("http://", f"http://alice:{SECRET}@"), root)
        check_runs_over_rest(url, root, artifacts)
        experiment = rest(url, "experiments/get-by-name", params="?experiment_name=batchnorm-mnist")["experiment"]
        runs = rest(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    assert len(runs) == 5  # a parent, 2 model runs and their evaluation runs
    assert_no_secret(root, done.stdout + done.stderr, runs)


@pytest.mark.slow
def test_a_plain_postgresql_uri_uses_the_installed_driver(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), SMALL)
    with postgres() as database:
        plain = database.replace("postgresql+psycopg2://mlflow@", f"postgresql://mlflow:{SECRET}@")
        env = project_env()
        env["MLFLOW_TRACKING_URI"] = plain
        done = run(["dvc", "repro"], root, env=env)
        from mlflow import MlflowClient

        client = MlflowClient(database)
        experiment = client.get_experiment_by_name("batchnorm-mnist")
        runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 5 and {r.info.status for r in runs} == {"FINISHED"}  # a parent, 2 models, 2 evaluations
    as_rest = [
        {
            "data": {
                "tags": [{"value": v} for v in r.data.tags.values()],
                "params": [{"value": v} for v in r.data.params.values()],
            }
        }
        for r in runs
    ]
    assert_no_secret(root, done.stdout + done.stderr, as_rest)

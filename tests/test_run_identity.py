"""Runs stay true after faults and checkouts, with the real `dvc repro`, MLflow store and
`bnlab serve`: evaluation never reopens a training run, and after code A → code B → code A every
metric lands on the run whose model produced it, and the registry serves the evaluated model."""

import json
import os
import signal
import subprocess
import urllib.request

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from bnlab.data import splits
from bnlab.data.mnist import file_digest

from helpers import make_mnist, make_project, run, store_env
from servers import free_port, stop, wait_for_health

pytestmark = pytest.mark.slow

SETTINGS = {"epochs": 1, "seeds": [0, 1], "hidden_units": [16], "probes": None}
# Code B: a real change to training (another initializer), so its models differ from A's.
CODE_A = "init = initializer if init_std is None else"
CODE_B = 'init = ("he_normal" if initializer == "glorot_uniform" else initializer) if init_std is None else'


def store(root):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client, client.get_experiment_by_name("batchnorm-mnist").experiment_id


def model_runs(client, experiment_id):
    return [
        r
        for r in client.search_runs([experiment_id], "tags.`bnlab.provenance` = 'trained'")
        if "mlflow.parentRunId" in r.data.tags
    ]


def project_code_env(root) -> dict[str, str]:
    """The project's own copy of src/ first on the path: a checkout changes the code that runs."""
    env = store_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env["PYTHONPATH"]])
    return env


def test_evaluate_killed_half_way_leaves_training_runs_finished_and_the_next_repro_completes(tmp_path):
    root = make_project(tmp_path / "proj", make_mnist(600, 200), SETTINGS)
    run(["dvc", "repro", "train@notebook"], root, env=store_env())
    client, experiment_id = store(root)
    trained = {r.info.run_id: (r.info.status, r.info.end_time) for r in model_runs(client, experiment_id)}
    assert {status for status, _ in trained.values()} == {"FINISHED"} and len(trained) == 4

    evaluate = subprocess.Popen(
        ["bnlab", "evaluate", "notebook"],
        cwd=root,
        env=store_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = evaluate.stdout.readline()  # the first model is evaluated: the rest are to come
        while first and not first.startswith("evaluated "):
            first = evaluate.stdout.readline()
        assert first.startswith("evaluated "), "evaluate ended before evaluating a model"
        os.killpg(evaluate.pid, signal.SIGKILL)
    finally:
        evaluate.wait(timeout=60)
    assert evaluate.returncode == -signal.SIGKILL and not (root / "eval/notebook").exists()

    now = {r.info.run_id: (r.info.status, r.info.end_time) for r in model_runs(client, experiment_id)}
    assert now == trained  # still FINISHED, each with the end time its training gave it

    done = run(["dvc", "repro"], root, env=store_env())
    assert "Running stage 'train@notebook'" not in done.stdout and "trained " not in done.stdout
    runs = client.search_runs([experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    killed = [r for r in runs if r.info.status == "KILLED"]  # an evaluation run open at the kill, if any
    assert {r.data.tags["bnlab.role"] for r in killed} <= {"evaluation"}
    assert {r.info.run_id: (r.info.status, r.info.end_time) for r in model_runs(client, experiment_id)} == trained
    assert all("test_accuracy" in r.data.metrics for r in model_runs(client, experiment_id))


def commit(root, message: str) -> str:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", message], root)
    return run(["git", "rev-parse", "HEAD"], root).stdout.strip()


def model_digests(root) -> dict[str, str]:
    return {
        folder.name: file_digest(folder / "weights.npz")
        for folder in sorted((root / "models/notebook").iterdir())
        if folder.is_dir()
    }


def served_digits(root, env, pixels: np.ndarray) -> np.ndarray:
    port = free_port()
    server = subprocess.Popen(
        ["bnlab", "serve", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, seconds=120)
        request = urllib.request.Request(
            f"{url}/invocations",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"inputs": {"pixels": pixels.tolist()}}).encode(),
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return np.array(json.loads(response.read())["predictions"])
    finally:
        stop(server)


def test_code_a_then_b_then_a_again_every_metric_lands_on_the_run_whose_model_made_it(tmp_path):
    root = make_project(tmp_path / "proj", make_mnist(600, 200), SETTINGS)
    env = project_code_env(root)
    model_code = root / "src/bnlab/ml/model.py"
    assert model_code.read_text().count(CODE_A) == 1, "model.py changed: update CODE_A"
    run(["dvc", "repro"], root, env=env)
    commit_a = commit(root, "code A's outputs")
    digests_a = model_digests(root)
    key_a = json.loads((root / "models/notebook/pipeline.json").read_text())["pipeline_key"]

    model_code.write_text(model_code.read_text().replace(CODE_A, CODE_B))
    run(["dvc", "repro"], root, env=env)
    commit(root, "code B and its outputs")
    digests_b = model_digests(root)
    assert set(digests_a.values()).isdisjoint(digests_b.values())  # B's training made other models

    assert json.loads((root / "models/notebook/pipeline.json").read_text())["pipeline_key"] != key_a  # code in key

    run(["git", "checkout", "-q", commit_a], root)  # code A and its lock again
    run(["dvc", "checkout", "-q"], root, env=env)
    assert model_digests(root) == digests_a
    client, experiment_id = store(root)
    killed = client.create_run(
        experiment_id,
        run_name="notebook-killed",  # a newer execution of A, killed
        tags={"bnlab.pipeline_key": key_a, "bnlab.role": "pipeline"},
    )
    client.set_terminated(killed.info.run_id, "KILLED")
    for stage in ("evaluate@notebook", "report@notebook"):
        run(["dvc", "repro", "--force", "--single-item", stage], root, env=env)

    runs = client.search_runs([experiment_id])
    assert not [r for r in runs if r.data.tags.get("mlflow.parentRunId") == killed.info.run_id]
    by_id = {r.info.run_id: r for r in runs}
    evaluations = [r for r in runs if r.data.tags.get("bnlab.role") == "evaluation"]
    assert len(evaluations) == 3 * 4  # A, B, and A again: 2 variants × 2 seeds each time
    for evaluation in evaluations:  # each evaluation sits under the run holding the model it evaluated
        model_run = by_id[evaluation.data.tags["mlflow.parentRunId"]]
        assert model_run.data.tags["model_digest"] == evaluation.data.tags["model_digest"]
    predictions = pd.read_csv(root / "eval/notebook/predictions.csv")
    for model_run in model_runs(client, experiment_id):
        history = client.get_metric_history(model_run.info.run_id, "test_accuracy")
        name = model_run.info.run_name.removeprefix("notebook/")
        if model_run.data.tags["model_digest"] == digests_a.get(name):
            variant, seed = model_run.data.tags["variant"], int(model_run.data.tags["seed"])
            mine = predictions.query(f"variant == '{variant}' and seed == {seed}")
            accuracy = float((mine["predicted"] == mine["actual"]).mean())
            assert [m.value for m in history] == pytest.approx([accuracy, accuracy], abs=0)  # A's, twice
        else:
            assert model_run.data.tags["model_digest"] == digests_b[name] and len(history) == 1  # B's, once
        assert model_run.info.status == "FINISHED"

    champion = client.get_model_version_by_alias("bnlab-notebook-batchnorm", "champion")
    seed = int(champion.tags["seed"])
    assert champion.tags["model_digest"] == digests_a[f"batchnorm-seed{seed}"]
    assert by_id[champion.run_id].data.tags["model_digest"] == champion.tags["model_digest"]
    x_test, _ = splits.load_split(root / "data/prepared/test.npz")
    served = served_digits(root, env, x_test.reshape(len(x_test), -1).astype(np.float32))
    expected = predictions.query(f"variant == 'batchnorm' and seed == {seed}")["predicted"].to_numpy()
    assert np.array_equal(served, expected)  # `bnlab serve` serves the model that was evaluated

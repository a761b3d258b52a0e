"""Team-scale behaviour: a DVC remote shared by two clones, two `dvc repro` at once, and
several training processes logging to one tracking store at once."""

import subprocess
import sys

import pytest
from mlflow import MlflowClient

from helpers import make_mnist, project_env, run, split_project

SMALL = {"epochs": 2, "seeds": [0], "hidden_units": [16]}


@pytest.mark.slow
def test_dvc_push_then_pull_in_a_second_clone_needs_no_retraining(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), SMALL)
    run(["dvc", "repro"], root)
    run(["dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], root)
    run(["dvc", "push"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "results"], root)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    assert (clone / "models/notebook/batchnorm-seed0/weights.npz").exists()
    assert (clone / "data/prepared/train.npz").exists()
    assert run(["dvc", "status", "--json"], clone).stdout.strip() == "{}"
    again = run(["dvc", "repro"], clone)
    assert "Running stage" not in again.stdout


@pytest.mark.slow
def test_a_second_dvc_repro_at_once_stops_with_dvcs_lock_message(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), {**SMALL, "epochs": 40})
    first = subprocess.Popen(
        ["dvc", "repro"], cwd=root, env=project_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # The data is split already, so no file tells when the first holds the lock: its words do
    before = []
    for line in first.stdout:
        before.append(line)
        if "Running stage 'train@notebook'" in line:
            break
    second = run(["dvc", "repro"], root, check=False)
    rest, _ = first.communicate(timeout=300)
    output = "".join(before) + rest
    assert second.returncode != 0
    # DVC's own words: the repo lock, or the lock on the outputs the first run is writing
    message = second.stderr + second.stdout
    assert "Unable to acquire lock" in message or ".dvc/tmp/rwlock" in message, message
    assert first.returncode == 0, output
    assert "Running stage 'report@notebook'" in output
    assert (root / "reports/notebook/metrics.json").exists()


LOGGER = """
from helpers import make_mnist
from mlflow import MlflowClient
from bnlab import KerasMLPClassifier
from bnlab.tracking import logged, runs
client, experiment_id = runs.connect("concurrency")
with runs.owned_run(client, experiment_id, "worker-{n}", {{}}) as run_id:
    m = make_mnist(200, 20, seed={n})
    epochs = logged.EpochLogger(runs.mlflow.get_tracking_uri(), run_id)
    KerasMLPClassifier(epochs={epochs}, hidden_units=(8,), random_state={n}, callbacks=[epochs]).fit(
        m.x_train.reshape(200, -1) / 255.0, m.y_train, validation_data=(m.x_test.reshape(20, -1) / 255.0, m.y_test))
    epochs.flush()  # what fit_into_run does when a fit ends: the last batch of metrics
"""


@pytest.mark.slow
def test_concurrent_training_processes_lose_no_metric(tmp_path):
    env = project_env()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'shared.db'}"
    epochs, workers = 30, 3
    run([sys.executable, "-c", "from bnlab.tracking import runs; runs.connect('concurrency')"], tmp_path, env=env)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LOGGER.format(n=n, epochs=epochs)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("concurrency")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == workers and {r.info.status for r in runs} == {"FINISHED"}
    for run_ in runs:
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run_.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs + 1)), (run_.info.run_name, key)

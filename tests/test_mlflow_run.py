"""`mlflow run .` from a clean clone, on small data passed as parameters."""

import numpy as np
import pytest
from mlflow import MlflowClient

from helpers import PROJECT, make_mnist, project_env, run, unpadded


@pytest.mark.slow
def test_mlflow_run_from_a_clean_clone_attaches_model_runs_to_the_project_run(tmp_path):
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(PROJECT), str(clone)], tmp_path)
    small = tmp_path / "small.npz"
    np.savez_compressed(small, **make_mnist(600, 200).arrays())
    env = project_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    done = run(
        [
            "mlflow",
            "run",
            ".",
            "--env-manager",
            "local",
            "--experiment-name",
            "batchnorm-mnist",
            "-P",
            "epochs=2",
            "-P",
            "seeds=0,1",
            "-P",
            "hidden_units=16",
            "-P",
            "val_size=100",
            "-P",
            f"data_path={small}",
            "-P",
            "fingerprints=skip",
        ],
        clone,
        env=env,
    )
    assert "| batchnorm |" in unpadded(done.stdout) and "gain over plain" in done.stdout

    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batchnorm-mnist")
    runs = client.search_runs([experiment.experiment_id])
    project_runs = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "main"]
    assert len(project_runs) == 1
    project_run = project_runs[0]
    assert project_run.info.status == "FINISHED"
    assert project_run.data.tags["bnlab.role"] == "pipeline"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == project_run.info.run_id]
    assert sorted(r.info.run_name for r in children) == [
        "notebook/batchnorm-seed0",
        "notebook/batchnorm-seed1",
        "notebook/plain-seed0",
        "notebook/plain-seed1",
    ]
    assert all("test_accuracy" in r.data.metrics for r in children)
    assert len(client.get_metric_history(children[0].info.run_id, "val_loss")) == 2
    figures = {a.path for a in client.list_artifacts(project_run.info.run_id, "figures")}
    assert "figures/train_loss.png" in figures
    assert len(runs) == 1 + 4 + 4 and {r.info.status for r in runs} == {"FINISHED"}  # and 4 evaluation runs

"""`bnlab summary`: the experiments' tables, and an address that opens the runs table of the
project's experiment in MLflow's model-training layout (a real SQLite store made by MLflow)."""

from mlflow import MlflowClient

from bnlab.pipeline.summary import MODEL_TRAINING, main, print_summary, runs_table_path
from bnlab.tracking.store import experiment_name

from helpers import PROJECT


def test_the_address_names_the_experiment_and_the_model_training_layout(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_experiment("another")
    experiment_id = client.create_experiment(experiment_name())
    assert runs_table_path(uri) == f"#/experiments/{experiment_id}/runs{MODEL_TRAINING}"
    assert runs_table_path(f"sqlite:///{tmp_path / 'none.db'}") == "#/experiments"  # no store yet


def test_summary_prints_each_reported_table_and_where_to_browse(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment(experiment_name())
    (tmp_path / "reports" / "notebook").mkdir(parents=True)
    (tmp_path / "reports" / "notebook" / "comparison.md").write_text("# notebook: the table\n")
    assert print_summary(["notebook"], PROJECT / "params.yaml") == 0
    out = capsys.readouterr().out
    assert "# notebook: the table" in out
    assert f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning" in out


def test_summary_url_prints_only_the_runs_tables_address(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment(experiment_name())
    assert main(["--url"]) == 0
    assert capsys.readouterr().out == (
        f"The runs table: http://127.0.0.1:5000/#/experiments/{experiment_id}/runs{MODEL_TRAINING}\n"
    )

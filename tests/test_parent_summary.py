"""A grid's seed-level summary on its parent run (a real SQLite store): each grid point's
numbers at its own step, in the grid's order, and a tag naming the point of each step."""

from mlflow import MlflowClient

from bnlab.analysis.report import parent_metrics
from bnlab.tracking.comparison import log_summary


def point(plain_mean: float) -> dict:
    return {
        "batchnorm": {"test_accuracy_mean": 0.97, "test_accuracy_std": 0.002, "test_loss_mean": 0.1},
        "plain": {"test_accuracy_mean": plain_mean, "test_accuracy_std": 0.005, "test_loss_mean": 0.2},
        "comparison": {
            "batchnorm": {
                "test_accuracy_gain": 0.97 - plain_mean,
                "gain_ci_low": 0.01,
                "gain_ci_high": 0.03,
                "p_value": 1e-4,
                "seeds": 10,
            }
        },
    }


def test_each_grid_point_is_a_step_of_the_parent_run_named_by_a_tag(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.create_run(client.create_experiment("grid")).info.run_id
    summary = {"learning_rate=0.001": point(0.95), "learning_rate=0.01": point(0.94), "learning_rate=0.1": point(0.5)}
    log_summary(client, parent, parent_metrics(summary, grid=True), list(summary))
    history = client.get_metric_history(parent, "plain_test_accuracy_mean")
    assert [(m.step, m.value) for m in history] == [(0, 0.95), (1, 0.94), (2, 0.5)]
    gains = client.get_metric_history(parent, "batchnorm_gain_ci_high")
    assert [m.step for m in gains] == [0, 1, 2]
    tags = client.get_run(parent).data.tags
    assert [tags[f"grid_step.{i}"] for i in range(3)] == list(summary)

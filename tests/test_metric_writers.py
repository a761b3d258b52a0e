"""A fit's metric writers (bnlab.tracking.logged): batched writes that lose nothing."""

from __future__ import annotations

import pytest

from bnlab.tracking import logged
from bnlab.tracking.runs import MlflowClient


@pytest.fixture
def run(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment_id = client.create_experiment("writers", artifact_location=(tmp_path / "artifacts").as_uri())
    return store, client, client.create_run(experiment_id).info.run_id


def history(client, run_id: str, name: str) -> list[tuple[int, float]]:
    return sorted((metric.step, metric.value) for metric in client.get_metric_history(run_id, name))


def test_metrics_are_written_in_batches_and_every_one_arrives(run, monkeypatch):
    store, client, run_id = run
    writer = logged.EpochLogger(store, run_id)
    for epoch in range(5):
        writer.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "accuracy": epoch / 10})
    assert history(client, run_id, "loss") == []  # gathered, not yet written
    monkeypatch.setattr(logged, "FLUSH_SECONDS", 0.0)
    writer.on_epoch_end(5, {"loss": 1 / 6, "accuracy": 0.5})  # the interval has passed: all written now
    assert history(client, run_id, "loss") == [(e + 1, pytest.approx(1.0 / (e + 1))) for e in range(6)]
    assert [step for step, _ in history(client, run_id, "accuracy")] == [1, 2, 3, 4, 5, 6]


def test_a_logger_used_as_a_plain_callback_writes_every_epoch_when_the_fit_ends(run, small_mnist):
    from bnlab.ml.estimator import KerasMLPClassifier

    store, client, run_id = run
    x, y = small_mnist.x_train.reshape(len(small_mnist.x_train), -1) / 255, small_mnist.y_train
    estimator = KerasMLPClassifier(hidden_units=(8,), epochs=3, random_state=0)
    estimator.set_params(callbacks=[logged.EpochLogger(store, run_id)])
    estimator.fit(x, y, validation_data=(x[:50], y[:50]))  # three epochs in well under FLUSH_SECONDS
    assert [step for step, _ in history(client, run_id, "train_loss")] == [1, 2, 3]


def test_more_metrics_than_one_mlflow_batch_holds_are_all_written(run):
    store, client, run_id = run
    writer = logged.EpochLogger(store, run_id)
    for step in range(1, 700):  # 1,398 metrics: two of MLflow's batches of 1,000
        writer._log({"a": step, "b": -step}, step)
    writer.flush()
    assert len(history(client, run_id, "a")) == len(history(client, run_id, "b")) == 699
    writer.flush()  # nothing left: writes nothing twice
    assert len(history(client, run_id, "a")) == 699


def test_a_pickled_writer_carries_no_unwritten_metrics(run):
    import pickle

    store, client, run_id = run
    writer = logged.EpochLogger(store, run_id)
    writer.on_epoch_end(0, {"loss": 0.5})
    copy = pickle.loads(pickle.dumps(writer))
    copy.flush()
    assert history(client, run_id, "loss") == []  # only the original holds (and writes) it
    writer.flush()
    assert history(client, run_id, "loss") == [(1, 0.5)]

"""One owner per run: a job's run is FINISHED only once it holds everything it must (its model,
``job/`` and its cache key); a failure before that ends it FAILED, and the next execution trains
that job again instead of restoring it from a run that lacks its files."""

import errno
import time

import pytest
import yaml
from mlflow import MlflowClient

from bnlab.core import layout
from bnlab.data.mnist import files_digest, save_npz
from bnlab.data.splits import split_mnist
from bnlab.execution.job import JobRequest, clear_splits_cache, run_job
from bnlab.experiments.jobs import jobs
from bnlab.experiments.params import parse_params
from bnlab.tracking import logged, runs
from bnlab.tracking.job_cache import ARTIFACT_DIR, JOB_KEY_TAG, code_fingerprint

from helpers import make_mnist, small_params


@pytest.fixture
def request_for_one_job(tmp_path, monkeypatch):
    """A job request for a tiny network, its store a fresh SQLite file, its parent run open."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mnist = make_mnist(300, 100)
    raw = small_params(mnist, tmp_path / "unused.npz", {"epochs": 1, "seeds": [0], "hidden_units": [8], "probes": None})
    params = parse_params(yaml.safe_load(yaml.safe_dump(raw)))
    files = []
    for stem, arrays in split_mnist(mnist, params.split.val_size, 0, "stratified").items():
        save_npz(layout.split_file(stem), arrays)
        files.append((layout.SPLITS[stem], str(layout.split_file(stem))))
    client, experiment_id = runs.connect()
    parent = runs.create_run(client, experiment_id, "parent", {}).info.run_id
    job = jobs("notebook", params.experiment("notebook"))[0]
    clear_splits_cache()
    return client, JobRequest(
        params,
        job,
        tuple(files[:2]),
        runs.mlflow.get_tracking_uri(),
        experiment_id,
        parent,
        (),
        files_digest([path for _, path in files[:2]]),
        code_fingerprint(),
    )


def job_runs(client, request) -> list:
    return client.search_runs([request.experiment_id], f"attributes.run_name = '{request.job.run_name}'")


def test_a_failed_upload_of_the_model_folder_leaves_a_failed_run_and_the_job_trains_again(
    request_for_one_job, monkeypatch
):
    client, request = request_for_one_job
    upload = MlflowClient.log_artifacts

    def disk_full_for_the_job_folder(self, run_id, local_dir, artifact_path=None):
        if artifact_path == ARTIFACT_DIR:
            raise OSError(errno.ENOSPC, "No space left on device", f"mlartifacts/{run_id}/job")
        return upload(self, run_id, local_dir, artifact_path)

    monkeypatch.setattr(MlflowClient, "log_artifacts", disk_full_for_the_job_folder)
    with pytest.raises(OSError, match="No space left"):
        run_job(request)
    [failed] = job_runs(client, request)
    assert failed.info.status == "FAILED"  # it has its model, but not job/: never FINISHED
    assert JOB_KEY_TAG not in failed.data.tags

    monkeypatch.setattr(MlflowClient, "log_artifacts", upload)
    result = run_job(request)
    assert not result.restored and result.summary.startswith("trained ")
    finished = [run for run in job_runs(client, request) if run.info.status == "FINISHED"]
    assert [run.info.run_id for run in finished] == [result.run_id]
    assert client.list_artifacts(result.run_id, ARTIFACT_DIR)


def test_a_finished_job_run_holds_its_model_folder_and_key_and_is_restored_next_time(request_for_one_job):
    client, request = request_for_one_job
    first = run_job(request)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[JOB_KEY_TAG]
    assert {item.path for item in client.list_artifacts(first.run_id, ARTIFACT_DIR)} >= {
        f"{ARTIFACT_DIR}/weights.npz",
        f"{ARTIFACT_DIR}/estimator.json",
    }
    again = run_job(request)
    assert again.restored and again.files == first.files
    assert client.get_run(again.run_id).info.status == "FINISHED"


def test_a_training_run_records_its_step_time_and_the_systems_load(request_for_one_job):
    client, request = request_for_one_job
    trained = client.get_run(run_job(request).run_id)
    [step_time] = client.get_metric_history(trained.info.run_id, "seconds_per_step")
    assert step_time.step == 1 and 0 < step_time.value < trained.data.metrics["fit_seconds"]
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(trained.data.metrics)


@pytest.mark.slow  # a fit of ten seconds, on purpose
def test_system_metrics_sample_a_ten_second_fit_at_least_five_times(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("monitored")).info.run_id
    with logged.system_metrics(f"sqlite:///{tmp_path / 'mlflow.db'}", run_id):
        time.sleep(10)
    samples = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(samples) >= 5 and [m.step for m in samples] == list(range(len(samples)))
    quick = client.create_run(client.get_experiment_by_name("monitored").experiment_id).info.run_id
    with logged.system_metrics(f"sqlite:///{tmp_path / 'mlflow.db'}", quick):
        pass  # shorter than one interval: still one sample
    assert len(client.get_metric_history(quick, "system/cpu_utilization_percentage")) == 1


def test_the_experiment_is_tagged_as_model_training_also_when_it_existed_untagged(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    untagged = client.create_experiment("made-elsewhere")
    assert runs.EXPERIMENT_KIND_TAG not in client.get_experiment(untagged).tags
    for name in ("made-elsewhere", "made-here"):
        _, experiment_id = runs.connect(name)
        assert client.get_experiment(experiment_id).tags[runs.EXPERIMENT_KIND_TAG] == "custom_model_development"

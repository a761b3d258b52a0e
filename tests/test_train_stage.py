"""The train stage's pieces: plan (a request per job, carrying the store's credentials without
showing them), run (bnlab.execution.runner) and write (each job's files into its folder)."""

import yaml

from bnlab.execution.job import JobResult
from bnlab.execution.runner import Placement, summary_line, write_job_files
from bnlab.experiments.jobs import Job, jobs
from bnlab.experiments.params import parse_params
from bnlab.pipeline.stages.train import plan, split_files
from bnlab.tracking.store import credentials, store_uri

from helpers import PROJECT

SECRET = "pa55-word"


def shipped_params():
    return parse_params(yaml.safe_load((PROJECT / "params.yaml").read_text()))


def test_plan_makes_one_request_per_job_with_the_stores_credentials_never_shown():
    uri = f"https://alice:{SECRET}@mlflow.example"
    params = shipped_params()
    files = split_files(params.experiment("lr_sweep"))
    job_list = jobs("lr_sweep", params.experiment("lr_sweep"))
    requests = plan(
        params, job_list, files, store_uri(uri), credentials(uri), "1", "parent", {"git_commit": "abc"}, "data"
    )
    assert [r.job for r in requests] == job_list
    assert {r.store for r in requests} == {"https://mlflow.example"}
    assert all(
        dict(r.credentials) == {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET}
        for r in requests
    )
    assert SECRET not in repr(requests)


def test_the_splits_a_job_reads_are_the_test_set_only_with_probes():
    params = shipped_params()
    assert [name for name, _ in split_files(params.experiment("notebook"))] == ["train", "validation", "test"]
    assert [name for name, _ in split_files(params.experiment("lr_sweep"))] == ["train", "validation"]


def test_each_job_gets_its_folder_and_the_log_counts_trained_and_restored(tmp_path):
    results = [
        JobResult(Job("e", "bn", 0), "r1", {"weights.npz": b"w", "sub/x.csv": b"x"}, "d", "trained"),
        JobResult(Job("e", "plain", 0), "r2", {"weights.npz": b"v"}, "d", "restored", restored=True),
    ]
    for result in results:
        write_job_files(tmp_path, result.job.name, result.files)
    assert (tmp_path / "bn-seed0" / "sub" / "x.csv").read_bytes() == b"x"
    assert (tmp_path / "plain-seed0" / "weights.npz").read_bytes() == b"v"
    assert summary_line(results, Placement(2, None, {})) == (
        "2 jobs: 1 trained, 1 restored from the runs that trained them before, on 2 worker(s)"
    )

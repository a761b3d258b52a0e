"""Stage `train@<experiment>`: every job of one experiment on the prepared split →
models/<experiment>/, each job an MLflow run, the jobs side by side on BNLAB_WORKERS processes.

models/<experiment>/ holds, per job, its parameters, classes and history (estimator.json), its
weights (weights.npz) and, with probes, probes.csv and steps.csv; plus pipeline.json: the key
by which later stages find the runs.
"""

import json
from contextlib import ExitStack, closing

from bnlab import data, job_cache, layout
from bnlab.atomic import atomic_path
from bnlab.config import load_params
from bnlab.experiments import jobs, model_dir
from bnlab.job_runner import JobRequest, load_splits, return_freed_memory, run_job, splits_env
from bnlab.store import tracking_uri
from bnlab.workers import (check_store_for_cluster, connect_scheduler, dask_scheduler, run_all, start_forkserver,
                           worker_count)

SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}  # MLflow's name → file


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    workers, scheduler = worker_count(), dask_scheduler()  # bad settings are refused before any work
    if scheduler:
        check_store_for_cluster(scheduler, tracking_uri())
    files = tuple((name, str(layout.split_file(stem))) for name, stem in SPLIT_NAMES.items()
                  if name != "test" or experiment.probes is not None)  # test: for probes only
    splits = load_splits(files)  # bad data files are reported before the slow imports
    if not scheduler and workers > 1 and len(jobs(experiment_name, experiment)) > 1:
        start_forkserver(splits_env(files))  # the workers' TensorFlow import runs there while MLflow's runs here
    # Only now the import that takes seconds (MLflow); TensorFlow only where jobs train.
    from bnlab import mlflow_logging, tracking

    output = layout.models_dir(experiment_name)
    cluster = connect_scheduler(scheduler) if scheduler else None
    client, experiment_id = tracking.connect()
    fingerprint = data.files_digest([path for _, path in files])
    key = tracking.pipeline_key(experiment_name, experiment.training_settings(), fingerprint)
    lineage = tracking.lineage(f"train@{experiment_name}", fingerprint)
    parent_id, owned = tracking.create_parent(client, experiment_id, experiment_name, key, lineage)

    def key_of(job) -> str:  # the per-job cache's key (bnlab.job_cache)
        return job_cache.job_key(experiment.settings(job.variant, job.point).model_dump(), job.seed,
                                 experiment.probes and experiment.probes.model_dump(), fingerprint)

    with ExitStack() as stack:
        stack.enter_context(tracking.terminated_on_exit(client, parent_id, owned))
        stack.enter_context(tracking.children_ended_on_error(client, experiment_id, parent_id))
        tmp = stack.enter_context(atomic_path(output, directory=True))
        if cluster is not None:
            stack.callback(cluster.close)
        mlflow_logging.log_params(client, parent_id, {"experiment": experiment.training_settings(),
                                                      "split": params.split.model_dump()})
        # The parent logs the datasets first: workers logging a new dataset at the same moment
        # would race to insert it.
        mlflow_logging.log_datasets(parent_id, {n: splits[n] for n, _ in files}, dict(files))
        requests = [JobRequest(params, job, files, tracking.mlflow.get_tracking_uri(), experiment_id, parent_id,
                               tuple(lineage.items()), key_of(job), job_cache.code_fingerprint(),
                               job_cache.find_cached(client, experiment_id, key_of(job)))
                    for job in jobs(experiment_name, experiment)]
        cached = sum(1 for request in requests if request.restore_from)
        where = (f"the Dask cluster at {scheduler}" if cluster is not None
                 else f"{min(workers, len(requests))} worker(s)")
        print(f"{len(requests)} jobs: {len(requests) - cached} to train, {cached} trained before (restored from "
              f"their runs), on {where}", flush=True)
        children = {}
        shared = splits if cluster is not None else None  # the cluster's machines may not have the files
        del splits  # local workers read the files themselves
        if workers > 1:  # jobs do not run here: 55 MB less in this process
            load_splits.cache_clear()
            return_freed_memory()
        results = stack.enter_context(closing(run_all(run_job, requests, workers, cluster, shared)))
        for result in results:
            write_files(model_dir(tmp, result.job), result.files)
            children[result.job.run_name] = (result.run_id, result.digest)
            print(result.summary, flush=True)
        # A Dask worker that died mid-job left its run RUNNING; the job ran again elsewhere.
        for run_id in tracking.end_running_children(client, experiment_id, parent_id, tracking.RunStatus.KILLED,
                                                    "its worker died; the job was run again"):
            print(f"ended run {run_id} KILLED: its worker died mid-job; the job was run again", flush=True)
        meta = {"pipeline_key": key, "data_fingerprint": fingerprint, "experiment": experiment_name}
        (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        # Identical models: DVC will skip evaluate and report, so bring their results along.
        if mlflow_logging.carry_over_results(client, experiment_id, key, parent_id, children):
            print("models are identical to an earlier run's: its test metrics and report were copied")


def write_files(folder, files: dict[str, bytes]) -> None:
    """A job's model folder, from the files its worker sent back."""
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)

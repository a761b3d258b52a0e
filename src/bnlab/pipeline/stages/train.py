"""Stage `train@<experiment>`: every job of one experiment on the prepared split →
models/<experiment>/, each job an MLflow run, the jobs side by side on BNLAB_WORKERS processes
or on a Dask cluster (:mod:`bnlab.execution.runner`).

models/<experiment>/ holds, per job, its parameters, classes and history (estimator.json), its
weights (weights.npz) and, with probes, probes.csv and steps.csv; plus pipeline.json: the key
by which later stages find the runs.
"""

import json
import sys
from contextlib import ExitStack

from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.data.mnist import files_digest
from bnlab.execution import runner
from bnlab.experiments.jobs import jobs
from bnlab.experiments.params import ExperimentParams, Params, load_params
from bnlab.pipeline.command import stage_main
from bnlab.tracking.store import credentials, tracking_uri


def split_files(experiment: ExperimentParams) -> tuple[tuple[str, str], ...]:
    """(MLflow's dataset name, file) of the splits training reads: test only for the probes."""
    return tuple(
        (name, str(layout.split_file(stem)))
        for stem, name in layout.SPLITS.items()
        if stem != "test" or experiment.probes is not None
    )


def plan(
    params: Params,
    name: str,
    files,
    store: str,
    credentials: dict[str, str],
    experiment_id: str,
    parent_id: str,
    lineage: dict,
    fingerprint: str,
) -> list:
    """One request per job: everything it needs to run anywhere, the store it writes to and that
    store's credentials included."""
    from bnlab.execution.job import JobRequest
    from bnlab.tracking.job_cache import code_fingerprint

    return [
        JobRequest(
            params,
            job,
            files,
            store,
            experiment_id,
            parent_id,
            tuple(lineage.items()),
            fingerprint,
            code_fingerprint(),
            tuple(credentials.items()),
        )
        for job in jobs(name, params.experiment(name))
    ]


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    files = split_files(experiment)
    store = tracking_uri()
    placement = runner.place(len(jobs(experiment_name, experiment)), files, store)
    # Only now the import that takes seconds (MLflow); TensorFlow only where jobs train.
    from bnlab.tracking import copies, logged, runs
    from bnlab.tracking.job_cache import code_fingerprint
    from bnlab.tracking.lineage import pipeline_key, stage_lineage

    output = layout.models_dir(experiment_name)
    client, experiment_id = runs.connect()
    fingerprint = files_digest([path for _, path in files])
    key = pipeline_key(experiment_name, experiment.training_settings(), fingerprint, code_fingerprint())
    lineage = stage_lineage(f"train@{experiment_name}", fingerprint)

    with ExitStack() as stack:
        parent_id = stack.enter_context(
            runs.pipeline_run(client, experiment_id, experiment_name, key, {**lineage, **runs.provenance(runs.TRAINED)})
        )
        stack.enter_context(runs.children_ended_on_error(client, experiment_id, parent_id))
        tmp = stack.enter_context(atomic_path(output, directory=True))
        logged.log_params(
            client, parent_id, {"experiment": experiment.training_settings(), "split": params.split.model_dump()}
        )
        # The parent logs the datasets first: workers logging a new dataset at the same moment
        # would race to insert it.
        logged.log_datasets(client, parent_id, {n: placement.splits[n] for n, _ in files}, dict(files))
        requests = plan(
            params,
            experiment_name,
            files,
            runs.mlflow.get_tracking_uri(),
            credentials(store),
            experiment_id,
            parent_id,
            lineage,
            fingerprint,
        )
        print(f"{len(requests)} jobs on {placement.describe(len(requests))}", flush=True)
        finished = []
        with runner.running(placement, requests) as results:
            for result in results:
                runner.write_job_files(tmp, result.job.name, result.files)
                finished.append(result)
                print(result.summary, flush=True)
        print(runner.summary_line(finished, placement), flush=True)
        # A Dask worker that died mid-job left its run RUNNING; the job ran again elsewhere.
        for run_id in runs.end_running_children(
            client, experiment_id, parent_id, runs.RunStatus.KILLED, "its worker died; the job was run again"
        ):
            print(f"ended run {run_id} KILLED: its worker died mid-job; the job was run again", flush=True)
        meta = {"pipeline_key": key, "data_fingerprint": fingerprint, "experiment": experiment_name}
        (tmp / layout.PIPELINE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        # Identical models: DVC will skip evaluate and report, so bring their results along.
        children = {result.job.run_name: (result.run_id, result.digest) for result in finished}
        if copies.carry_over_results(client, experiment_id, key, parent_id, children):
            print("models are identical to an earlier run's: its test metrics and report were copied")


def main(argv: list[str] | None = None) -> int:
    return stage_main("train", __doc__.splitlines()[0], run, argv, per_experiment=True)


if __name__ == "__main__":
    sys.exit(main())

"""Stage `train@<experiment>`: every job of one experiment on the prepared split →
models/<experiment>/, each job an MLflow run, the jobs side by side on BNLAB_WORKERS processes
or on a Dask cluster (:mod:`bnlab.execution.runner`). An experiment that tunes trains its
selection first, then its comparison at the settings the selection chose
(:mod:`bnlab.experiments.selection`).

models/<experiment>/ holds, per job, its parameters, classes and history (estimator.json), its
weights (weights.npz) and, with probes, probes.csv and steps.csv; the selection's jobs under
selection/; plus pipeline.json: the key by which later stages find the runs.
"""

import json
import sys
from contextlib import ExitStack

from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.data.mnist import files_digest
from bnlab.execution import runner
from bnlab.experiments.jobs import Job, jobs, point_label, selection_jobs
from bnlab.experiments.params import ExperimentParams, Params, load_params
from bnlab.experiments.selection import read_selected
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
    job_list: list[Job],
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
        for job in job_list
    ]


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    files = split_files(experiment)
    store = tracking_uri()
    # Every comparison job, whatever settings the selection will choose ({}: none chosen yet).
    n_jobs = len(selection_jobs(experiment_name, experiment)) + len(jobs(experiment_name, experiment, {}))
    placement = runner.place(n_jobs, files, store)
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
        stack.callback(placement.close)
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

        def train(job_list: list[Job]) -> list:
            requests = plan(
                params,
                job_list,
                files,
                runs.mlflow.get_tracking_uri(),
                credentials(store),
                experiment_id,
                parent_id,
                lineage,
                fingerprint,
            )
            print(f"{len(requests)} jobs on {placement.describe(len(requests))}", flush=True)
            with runner.running(placement, requests) as results:
                for result in results:
                    runner.write_job_files(tmp, result.job.name, result.files)
                    finished.append(result)
                    print(result.summary, flush=True)

        finished = []
        if experiment.tune is not None:
            print(f"selection: {experiment.tune.metric} on the validation split, each variant's best", flush=True)
            train(selection_jobs(experiment_name, experiment))
        selected = read_selected(tmp, experiment_name, experiment)
        for (variant, label), chosen in (selected or {}).items():
            print(f"selected for {' '.join(filter(None, (variant, label)))}: {point_label(chosen)}", flush=True)
        train(jobs(experiment_name, experiment, selected))
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

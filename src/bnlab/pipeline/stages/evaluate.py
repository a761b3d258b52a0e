"""Stage `evaluate@<experiment>`: each model of the comparison on the official test set →
eval/<experiment>/ (a selection's models are never tested); test metrics and MLflow's
classifier evaluation (per-class metrics, confusion matrix) to its MLflow run. The models are
tested side by side on BNLAB_WORKERS processes (:mod:`bnlab.execution.model_evaluation`)."""

import contextlib
import json
import sys

import pandas as pd

from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.data.splits import load_split
from bnlab.execution.job import splits_env
from bnlab.execution.local import run_all, start_forkserver, uses_workers
from bnlab.execution.model_evaluation import EvaluationRequest, evaluate_model, network
from bnlab.execution.settings import worker_count
from bnlab.experiments.jobs import jobs, model_dir
from bnlab.experiments.params import load_params
from bnlab.experiments.selection import read_selected
from bnlab.pipeline.command import stage_main
from bnlab.tracking.store import credentials, tracking_uri


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    test = layout.split_file("test")
    models, output = layout.models_dir(experiment_name), layout.eval_dir(experiment_name)
    _, y_test = load_split(test)  # a bad file is reported before the slow imports
    workers, store = worker_count(), tracking_uri()
    meta = json.loads((models / layout.PIPELINE_FILE).read_text())
    selected = read_selected(models, experiment_name, experiment)  # never the selection's models
    job_list = jobs(experiment_name, experiment, selected)
    files = ((layout.SPLITS["test"], str(test)),)
    if uses_workers(workers, len(job_list)):  # its TensorFlow import runs while this process connects
        start_forkserver(splits_env(files))
    # Only now the imports that take seconds (MLflow; TensorFlow where the models are tested).
    from bnlab.tracking import copies, runs
    from bnlab.tracking.lineage import stage_lineage

    client, experiment_id = runs.connect()
    lineage = stage_lineage(f"evaluate@{experiment_name}", meta["data_fingerprint"])

    with (
        copies.results_run(client, experiment_id, experiment_name, meta["pipeline_key"], lineage) as parent_id,
        atomic_path(output, directory=True) as tmp,
    ):
        requests = [
            EvaluationRequest(
                params,
                job,
                str(model_dir(models, job)),
                files,
                runs.mlflow.get_tracking_uri(),
                experiment_id,
                parent_id,
                tuple(lineage.items()),
                tuple(credentials(store).items()),
            )
            for job in job_list
        ]
        evaluated = {}
        try:
            for result in run_all(evaluate_model, requests, workers, key=network):
                evaluated[result.job.name] = result
                scores = {k: result.row[k] for k in runs.TEST_METRICS}
                print(f"evaluated {result.job.run_name}: {scores}", flush=True)
        except BaseException:
            # A worker stopped half-way (the first error kills them all) left its runs RUNNING.
            # Ending them is best effort: when the store itself failed, its error is the one to show.
            with contextlib.suppress(Exception):
                runs.end_orphaned_runs(client, experiment_id)
            raise
        ordered = [evaluated[job.name] for job in job_list]  # the job order, wherever each ran
        results = {result.job.name: result.row for result in ordered}
        (tmp / layout.TEST_METRICS_FILE).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        pd.concat(result.predictions(y_test) for result in ordered).to_csv(tmp / "predictions.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", __doc__.splitlines()[0], run, argv, per_experiment=True)


if __name__ == "__main__":
    sys.exit(main())

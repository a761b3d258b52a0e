"""Stage `evaluate@<experiment>`: each model of the comparison on the official test set →
eval/<experiment>/ (a selection's models are never tested); test metrics and MLflow's
classifier evaluation (per-class metrics, confusion matrix) to its MLflow run."""

import json
import sys

import numpy as np
import pandas as pd

from bnlab.core import layout
from bnlab.core.atomic import atomic_path
from bnlab.data.mnist import file_digest
from bnlab.data.splits import flat_pixels, load_split
from bnlab.experiments.jobs import jobs, model_dir, point_columns
from bnlab.experiments.params import load_params
from bnlab.experiments.selection import read_selected
from bnlab.pipeline.command import stage_main


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    test = layout.split_file("test")
    models, output = layout.models_dir(experiment_name), layout.eval_dir(experiment_name)
    x_test, y_test = load_split(test)
    meta = json.loads((models / layout.PIPELINE_FILE).read_text())
    selected = read_selected(models, experiment_name, experiment)  # never the selection's models
    # Only now the imports that take seconds (TensorFlow, MLflow): bad inputs are reported first.
    from bnlab.ml import bn_statistics
    from bnlab.ml.estimator import KerasMLPClassifier
    from bnlab.ml.evaluation import accuracy_by_statistics, evaluate
    from bnlab.tracking import copies, logged, runs
    from bnlab.tracking.evaluation import evaluate_predictions
    from bnlab.tracking.job_runs import record_restored_model
    from bnlab.tracking.lineage import stage_lineage

    client, experiment_id = runs.connect()
    lineage = stage_lineage(f"evaluate@{experiment_name}", meta["data_fingerprint"])

    results, predictions = {}, []
    with (
        copies.results_run(client, experiment_id, experiment_name, meta["pipeline_key"], lineage) as parent_id,
        atomic_path(output, directory=True) as tmp,
    ):
        for job in jobs(experiment_name, experiment, selected):
            folder = model_dir(models, job)
            estimator, digest = KerasMLPClassifier.load(folder), file_digest(folder / "weights.npz")
            metrics = evaluate(estimator, flat_pixels(x_test), y_test)
            # The run that holds this very model; a model no run holds (DVC restored it) gets one.
            run_id = runs.find_child(client, experiment_id, parent_id, job, digest) or record_restored_model(
                client, experiment_id, parent_id, params, job, estimator, lineage, digest
            )
            scores = {k: metrics[k] for k in runs.TEST_METRICS}
            logged.log_metrics(client, run_id, scores)
            logged.log_datasets(
                client, run_id, {layout.SPLITS["test"]: (x_test, y_test)}, {layout.SPLITS["test"]: str(test)}
            )
            evaluate_predictions(
                client,
                experiment_id,
                run_id,
                y_test,
                metrics["predicted"],
                estimator.classes_.tolist(),
                str(test),
                lineage,
                digest,
            )
            point = point_columns(job.point)  # a grid's settings, as columns beside variant and seed
            results[job.name] = {"variant": job.variant, "seed": job.seed, **point, **scores}
            if (folder / bn_statistics.FILE).exists():  # a BN network: tested with each kind too
                with np.load(folder / bn_statistics.FILE, allow_pickle=False) as arrays:
                    results[job.name] |= accuracy_by_statistics(estimator, dict(arrays), flat_pixels(x_test), y_test)
            predictions.append(
                pd.DataFrame(
                    {
                        "variant": job.variant,
                        "seed": job.seed,
                        **point,
                        "actual": y_test,
                        "predicted": metrics["predicted"],
                    }
                )
            )
            print(f"evaluated {job.run_name}: {scores}", flush=True)
        (tmp / layout.TEST_METRICS_FILE).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        pd.concat(predictions).to_csv(tmp / "predictions.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", __doc__.splitlines()[0], run, argv, per_experiment=True)


if __name__ == "__main__":
    sys.exit(main())

"""Stage `evaluate@<experiment>`: each model on the official test set → eval/<experiment>/,
test metrics to its MLflow run."""

import json

import pandas as pd

from bnlab import data, layout
from bnlab.atomic import atomic_path
from bnlab.config import load_params
from bnlab.experiments import jobs, model_dir, point_columns


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    test = layout.split_file("test")
    models, output = layout.models_dir(experiment_name), layout.eval_dir(experiment_name)
    x_test, y_test = data.load_split(test)
    meta = json.loads((models / "pipeline.json").read_text())
    # Only now the imports that take seconds (TensorFlow, MLflow): bad inputs are reported first.
    from bnlab import mlflow_logging, tracking
    from bnlab.estimator import KerasMLPClassifier
    from bnlab.evaluation import evaluate
    from bnlab.training import flat_pixels, record_restored_model

    client, experiment_id = tracking.connect()
    lineage = tracking.lineage(f"evaluate@{experiment_name}", meta["data_fingerprint"])
    parent_id, owned = tracking.parent_for_results(client, experiment_id, experiment_name,
                                                   meta["pipeline_key"], lineage)

    results, predictions = {}, []
    with tracking.terminated_on_exit(client, parent_id, owned), atomic_path(output, directory=True) as tmp:
        for job in jobs(experiment_name, experiment):
            estimator = KerasMLPClassifier.load(model_dir(models, job))
            metrics = evaluate(estimator, flat_pixels(x_test), y_test)
            run_id = (tracking.find_child(client, experiment_id, parent_id, job)
                      or record_restored_model(client, experiment_id, parent_id, params, job,
                                               estimator, lineage))
            scores = {k: metrics[k] for k in ("test_loss", "test_accuracy")}
            mlflow_logging.log_metrics(client, run_id, scores)
            mlflow_logging.log_datasets(run_id, {"test": (x_test, y_test)}, {"test": str(test)})
            point = point_columns(job.point)  # a grid's settings, as columns beside variant and seed
            results[job.name] = {"variant": job.variant, "seed": job.seed, **point, **scores,
                                 "confusion_matrix": metrics["confusion_matrix"]}
            predictions.append(pd.DataFrame({"variant": job.variant, "seed": job.seed, **point,
                                             "actual": y_test, "predicted": metrics["predicted"]}))
            print(f"evaluated {job.run_name}: {scores}", flush=True)
        (tmp / "test_metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        pd.concat(predictions).to_csv(tmp / "predictions.csv", index=False)

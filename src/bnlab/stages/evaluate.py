"""Stage `evaluate`: each model on the official test set → eval/, test metrics to its MLflow run."""

import json
from pathlib import Path

import pandas as pd

from bnlab import data, mlflow_logging, tracking
from bnlab.atomic import atomic_path
from bnlab.config import load_params
from bnlab.estimator import KerasMLPClassifier
from bnlab.evaluation import evaluate
from bnlab.training import VARIANTS, flat_pixels, model_dir, pairs, record_restored_model

MODELS = Path("models")
TEST = Path("data/prepared/test.npz")
OUTPUT = Path("eval")


def run(params_path: str = "params.yaml", models: Path = MODELS, test: Path = TEST,
        output: Path = OUTPUT) -> None:
    params = load_params(params_path)
    x_test, y_test = data.load_split(test)
    meta = json.loads((models / "pipeline.json").read_text())
    client, experiment_id = tracking.connect(params.mlflow.experiment)
    lineage = {**tracking.git_state(), "data_fingerprint": meta["data_fingerprint"], "dvc_stage": "evaluate"}
    parent_id, owned = tracking.parent_for_results(client, experiment_id, meta["pipeline_key"], lineage)

    results, predictions = {}, {variant: [] for variant in VARIANTS}
    with tracking.terminated_on_exit(client, parent_id, owned), atomic_path(output, directory=True) as tmp:
        for variant, seed in pairs(params):
            estimator = KerasMLPClassifier.load(model_dir(models, variant, seed))
            metrics = evaluate(estimator, flat_pixels(x_test), y_test)
            run_id = (tracking.find_child(client, experiment_id, parent_id, variant, seed)
                      or record_restored_model(client, experiment_id, parent_id, params, variant,
                                               seed, estimator, lineage))
            scores = {k: metrics[k] for k in ("test_loss", "test_accuracy")}
            mlflow_logging.log_metrics(client, run_id, scores)
            mlflow_logging.log_datasets(run_id, {"test": (x_test, y_test)}, {"test": str(test)})
            results[tracking.run_name(variant, seed)] = {
                "variant": variant, "seed": seed, **scores, "confusion_matrix": metrics["confusion_matrix"]}
            predictions[variant].append(pd.DataFrame({"seed": seed, "actual": y_test,
                                                      "predicted": metrics["predicted"]}))
            print(f"evaluated {tracking.run_name(variant, seed)}: {scores}", flush=True)
        (tmp / "test_metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (tmp / "predictions").mkdir()
        for variant, frames in predictions.items():
            pd.concat(frames).to_csv(tmp / "predictions" / f"{variant}.csv", index=False)

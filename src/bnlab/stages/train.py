"""Stage `train`: every (variant, seed) model on the prepared split → models/, each an MLflow run.

models/ holds, per model, its parameters, classes and history (estimator.json) and its
weights (weights.npz), plus pipeline.json: the key by which later stages find the runs.
"""

import json
from pathlib import Path

from bnlab import data, mlflow_logging, tracking
from bnlab.atomic import atomic_path
from bnlab.config import load_params
from bnlab.training import model_dir, pairs, train_model

PREPARED = Path("data/prepared")
OUTPUT = Path("models")


def run(params_path: str = "params.yaml", prepared: Path = PREPARED, output: Path = OUTPUT) -> None:
    params = load_params(params_path)
    files = {"train": prepared / "train.npz", "validation": prepared / "val.npz"}
    splits = {name: data.load_split(path) for name, path in files.items()}
    client, experiment_id = tracking.connect(params.mlflow.experiment)

    fingerprint = data.files_digest(list(files.values()))
    key = tracking.pipeline_key(params.train.model_dump(), fingerprint)
    lineage = {**tracking.git_state(), "data_fingerprint": fingerprint, "dvc_stage": "train"}
    sources = {name: str(path) for name, path in files.items()}
    parent_id, owned = tracking.create_parent(client, experiment_id, key, lineage)

    with tracking.terminated_on_exit(client, parent_id, owned), atomic_path(output, directory=True) as tmp:
        mlflow_logging.log_params(client, parent_id, {"train": params.train.model_dump(),
                                                "split": params.split.model_dump()})
        children = {}
        for variant, seed in pairs(params):
            estimator, run_id = train_model(client, experiment_id, parent_id, params, variant, seed,
                                            splits, sources, lineage)
            folder = estimator.save(model_dir(tmp, variant, seed), format="npz")
            digest = data.file_digest(folder / "weights.npz")
            client.set_tag(run_id, "model_digest", digest)
            children[tracking.run_name(variant, seed)] = (run_id, digest)
            last = {k: round(v[-1], 4) for k, v in estimator.history_.items()}
            print(f"trained {tracking.run_name(variant, seed)}: {last}", flush=True)
        meta = {"pipeline_key": key, "data_fingerprint": fingerprint}
        (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        # Identical models: DVC will skip evaluate and report, so bring their results along.
        if mlflow_logging.carry_over_results(client, experiment_id, key, parent_id, children):
            print("models are identical to an earlier run's: its test metrics and report were copied")

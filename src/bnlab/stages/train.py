"""Stage `train@<experiment>`: every job of one experiment on the prepared split →
models/<experiment>/, each job an MLflow run.

models/<experiment>/ holds, per job, its parameters, classes and history (estimator.json), its
weights (weights.npz) and, with probes, probes.csv and steps.csv; plus pipeline.json: the key
by which later stages find the runs.
"""

import json

import pandas as pd

from bnlab import data, layout
from bnlab.atomic import atomic_path
from bnlab.columns import PROBE_COLUMNS, STEP_COLUMNS
from bnlab.config import load_params
from bnlab.experiments import jobs, model_dir

SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}  # MLflow's name → file


def run(experiment_name: str, params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    experiment = params.experiment(experiment_name)
    files = {name: layout.split_file(stem) for name, stem in SPLIT_NAMES.items()
             if name != "test" or experiment.probes is not None}  # test: for probes only
    splits = {name: data.load_split(path) for name, path in files.items()}
    # Only now the imports that take seconds (TensorFlow, MLflow): bad params and bad data
    # files are reported first, in well under a second.
    from bnlab import mlflow_logging, tracking
    from bnlab.training import train_job

    output = layout.models_dir(experiment_name)
    client, experiment_id = tracking.connect()

    fingerprint = data.files_digest(list(files.values()))
    key = tracking.pipeline_key(experiment_name, experiment.training_settings(), fingerprint)
    lineage = {**tracking.git_state(), "data_fingerprint": fingerprint, "dvc_stage": f"train@{experiment_name}"}
    sources = {name: str(files[name]) for name in ("train", "validation")}
    parent_id, owned = tracking.create_parent(client, experiment_id, experiment_name, key, lineage)

    with tracking.terminated_on_exit(client, parent_id, owned), atomic_path(output, directory=True) as tmp:
        mlflow_logging.log_params(client, parent_id, {"experiment": experiment.training_settings(),
                                                      "split": params.split.model_dump()})
        children = {}
        for job in jobs(experiment_name, experiment):
            estimator, run_id, probes = train_job(client, experiment_id, parent_id, params, job,
                                                  splits, sources, lineage)
            folder = estimator.save(model_dir(tmp, job), format="npz")
            if probes is not None:
                write_csv(probes.probe_rows, PROBE_COLUMNS, folder / "probes.csv")
                write_csv(probes.step_rows, STEP_COLUMNS, folder / "steps.csv")
            digest = data.file_digest(folder / "weights.npz")
            client.set_tag(run_id, "model_digest", digest)
            children[job.run_name] = (run_id, digest)
            last = {k: round(v[-1], 4) for k, v in estimator.history_.items()}
            print(f"trained {job.run_name} ({estimator.n_steps_} steps): {last}", flush=True)
        meta = {"pipeline_key": key, "data_fingerprint": fingerprint, "experiment": experiment_name}
        (tmp / "pipeline.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        # Identical models: DVC will skip evaluate and report, so bring their results along.
        if mlflow_logging.carry_over_results(client, experiment_id, key, parent_id, children):
            print("models are identical to an earlier run's: its test metrics and report were copied")


def write_csv(rows: list[dict], columns: tuple[str, ...], path) -> None:
    # Rounded: stable, readable files; the values are far less precise than float64 anyway.
    pd.DataFrame(rows, columns=list(columns)).round(6).to_csv(path, index=False)

"""Log a trained network as an MLflow model that serves digits (:mod:`bnlab.tracking.served_model`)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

from bnlab.ml import fixed_order, residual, tf_runtime
from bnlab.ml.model import inference_network
from bnlab.tracking import served_model as serving
from bnlab.tracking.runs import mlflow

# Pinned from this environment, so MLflow need not infer them (that loads the model in a
# subprocess: seconds per model). The served model imports these and nothing of bnlab.
SERVED_PACKAGES = (("tensorflow-cpu", "tensorflow"), ("keras",), ("numpy",), ("mlflow",))


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for names in SERVED_PACKAGES:
        for name in names:
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return pins


def signature(n_features: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_features), serving.INPUT)]),
        outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,), serving.OUTPUTS[0])]),
        params=ParamSchema([ParamSpec(serving.OUTPUT_PARAM, "string", serving.OUTPUTS[0])]),
    )


def log_served_model(client, run_id: str, network, n_features: int) -> None:
    """Log ``network`` (logits out) to run ``run_id`` as ``model``: a pyfunc from code whose
    ``predict`` takes raw pixel rows and gives digits, or probabilities on request."""
    # No fluent run: the logged model is made in the run's experiment by this client (MLflow's
    # own would go to the fluent API's active experiment) and linked to the run by Model.log
    # (mlflow.pyfunc.log_model takes no run).
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network.keras"
        inference_network(network).save(path)
        # input_example is left out: with Keras 3.15 it fails in MLflow 3.17.
        with warnings.catch_warnings():
            # MLflow warns that there is no input example: the signature above says what the
            # model takes and gives.
            warnings.simplefilter("ignore", UserWarning)
            mlflow.models.Model.log(
                artifact_path=None,
                name="model",
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,
                python_model=serving.__file__,
                artifacts={serving.NETWORK: str(path)},
                code_paths=[tf_runtime.__file__, fixed_order.__file__, residual.__file__],
                signature=signature(n_features),
                pip_requirements=pip_requirements(),
            )
